"""Which executor runs the tasks: ``kfpd server --executor {local,ray,kubernetes}``.

One table from a name to a factory; the local executor is the default. Remote executors are
imported only when chosen, so their client libraries stay optional extras
(``kfpd[ray]``, ``kfpd[kubernetes]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kfpd.executors.base import Executor

EXECUTOR_KINDS = ("local", "ray", "kubernetes")
# Where a run's workspace volume is mounted in Kubernetes pods ({{$.workspace_path}} below it).
WORKSPACE_MOUNT = "/kfp-workspace"


class ExecutorConfigError(ValueError):
    """The chosen executor cannot be built from these settings."""


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"
    max_parallel: int = 1  # local: tasks at once
    work_root: Path | None = None  # local: task directories
    ray_address: str = ""  # ray: HOST:PORT of the cluster's GCS
    namespace: str = ""  # kubernetes: where pods go (default: the run's namespace, else "default")
    kubeconfig: str = ""  # kubernetes: a kubeconfig file; empty: the in-cluster service account
    launcher_image: str = ""  # kubernetes: the image holding the launcher bundle
    pending_timeout_s: float = 600.0  # kubernetes: a pod unscheduled this long fails the task
    task_user: str = ""  # local: run tasks as this user (the server runs as root)
    task_dirs: tuple[Path, ...] = ()  # local, with task_user: directories tasks write into
    task_python: str = ""  # local: the interpreter launchers run with (default: the server's)
    on_stop: Literal["leave", "drain", "cancel"] = "leave"  # local: tasks at a graceful stop

    @property
    def applies_platform_locally(self) -> bool:
        """kfp-kubernetes config becomes local env (True) or goes to a pod builder (False)."""
        return self.kind != "kubernetes"


def _local(config: ExecutorConfig) -> Executor:
    from kfpd.executors.local import LocalExecutor, TaskUserError

    try:
        return LocalExecutor(
            max_parallel=config.max_parallel,
            work_root=config.work_root,
            on_stop=config.on_stop,
            task_user=config.task_user or None,
            task_dirs=config.task_dirs,
            python=config.task_python or None,
        )
    except TaskUserError as exc:
        raise ExecutorConfigError(str(exc)) from exc


def _ray(config: ExecutorConfig) -> Executor:
    if not config.ray_address:
        raise ExecutorConfigError("--executor ray needs --ray-address HOST:PORT")
    try:
        from kfpd.executors.ray_executor import RayExecutor
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExecutorConfigError(
            f"the Ray executor needs `pip install 'kfpd[ray]'`: {exc}"
        ) from exc
    return RayExecutor(config.ray_address)


def _kubernetes(config: ExecutorConfig) -> Executor:
    if not config.launcher_image:
        raise ExecutorConfigError("--executor kubernetes needs --launcher-image IMAGE")
    try:
        from kfpd.executors.kubernetes_executor import KubernetesExecutor
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ExecutorConfigError(
            f"the Kubernetes executor needs `pip install 'kfpd[kubernetes]'`: {exc}"
        ) from exc
    return KubernetesExecutor.connect(
        kubeconfig=config.kubeconfig or None,
        namespace=config.namespace,
        launcher_image=config.launcher_image,
        pending_timeout_s=config.pending_timeout_s,
    )


_FACTORIES: dict[str, Callable[[ExecutorConfig], Executor]] = {
    "local": _local,
    "ray": _ray,
    "kubernetes": _kubernetes,
}


def create_executor(config: ExecutorConfig) -> Executor:
    factory = _FACTORIES.get(config.kind)
    if factory is None:
        choices = ", ".join(EXECUTOR_KINDS)
        raise ExecutorConfigError(f"unknown executor {config.kind!r} (choose one of {choices})")
    return factory(config)
