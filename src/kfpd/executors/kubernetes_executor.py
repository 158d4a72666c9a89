"""Runs each task as a Pod in the component's image (``pip install 'kfpd[kubernetes]'``).

``submit`` creates a Secret with the launch spec and the Pod (``kubernetes_pods``), then hands
the Secret to the Pod (ownerReference) so Kubernetes deletes it with the Pod. One watch over
every pod this server manages (label ``kfpd.io/managed-by``) follows them all; each event goes
through :func:`pod_outcome`, a pure decision:

- Succeeded → the launcher exited 0 (it reported).
- Failed → the Kubernetes reason: OOMKilled, Evicted, DeadlineExceeded, the exit code.
- Waiting on ErrImagePull / ImagePullBackOff / InvalidImageName / CreateContainerConfigError
  (a missing secret or config map) → failed with that reason; the pod is deleted.
- Pending longer than ``pending_timeout_s`` → failed with the scheduler's message.
- Phase Unknown (its node stopped reporting) or deleted by someone else → failed.

``cancel`` deletes the pod (the DELETED event then reports it canceled). Pods of finished
tasks are deleted once their outcome is known (the launcher already sent logs and outputs).
After a restart, :meth:`adopt` finds the server's pods by label and watches them again
instead of failing their tasks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kfpd.executors.base import ExitCallback, TaskExit
from kfpd.executors.kubernetes_pods import (
    LABEL_MANAGED,
    LABEL_TASK,
    MAIN_CONTAINER,
    PodSpecError,
    build_pod,
    spec_secret,
    workspace_claim_manifest,
)
from kfpd.schemas.launch import LaunchSpec

log = logging.getLogger("kfpd.executors.kubernetes")

# Waiting reasons that do not resolve by waiting: the task fails at once.
FATAL_WAITING = {
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
}
WATCH_TIMEOUT_S = 30
# kfp-kubernetes compiles CreatePVC / DeletePVC to these placeholder images.
VOLUME_TASKS = {"argostub/createpvc": "createpvc", "argostub/deletepvc": "deletepvc"}


def pvc_manifest(spec: LaunchSpec, namespace: str) -> dict[str, Any]:
    """The PersistentVolumeClaim a CreatePVC task asks for (its inputs, as upstream names them):
    ``pvc_name`` or a generated name ending in ``pvc_name_suffix``, ``access_modes``, ``size``,
    ``storage_class_name``, ``volume_name``, ``annotations``."""
    params = spec.parameter_values
    name = str(params.get("pvc_name") or "")
    if not name:
        name = f"kfpd-{spec.task_id[:8]}{params.get('pvc_name_suffix') or '-pvc'}"
    claim_spec: dict[str, Any] = {
        "accessModes": list(params.get("access_modes") or ["ReadWriteOnce"]),
        "resources": {"requests": {"storage": str(params.get("size") or "1Gi")}},
    }
    if params.get("storage_class_name"):
        claim_spec["storageClassName"] = str(params["storage_class_name"])
    if params.get("volume_name"):
        claim_spec["volumeName"] = str(params["volume_name"])
    metadata: dict[str, Any] = {"name": name.lower(), "namespace": namespace}
    if params.get("annotations"):
        metadata["annotations"] = {str(k): str(v) for k, v in params["annotations"].items()}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": claim_spec,
    }


@dataclass(frozen=True)
class Outcome:
    returncode: int | None
    reason: str | None = None

    def exit(self, task_id: str) -> TaskExit:
        return TaskExit(task_id, self.returncode, self.reason)


def _statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == MAIN_CONTAINER:
            state = container.get("state") or {}
            found: dict[str, Any] | None = state.get("terminated")
            return found
    return None


def _failed(pod: dict[str, Any]) -> Outcome:
    status = pod.get("status") or {}
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    if reason:  # pod-level: Evicted, DeadlineExceeded, NodeLost, ...
        return Outcome(None, f"the pod failed: {reason}: {message}".rstrip(": "))
    for container in _statuses(pod):
        terminated = (container.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if code in (None, 0):
            continue
        why = terminated.get("reason") or "Error"
        if why == "OOMKilled":
            text = f"OOMKilled: container {container.get('name')} ran out of memory"
        else:
            text = f"{why}: container {container.get('name')} exited with code {code}"
        detail = terminated.get("message")
        return Outcome(int(code), f"the pod failed: {text}" + (f": {detail}" if detail else ""))
    return Outcome(None, "the pod failed")


def _waiting_failure(pod: dict[str, Any]) -> Outcome | None:
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            message = waiting.get("message") or ""
            text = f"{waiting['reason']} (container {container.get('name')})"
            return Outcome(
                None, f"the pod cannot start: {text}" + (f": {message}" if message else "")
            )
    return None


def _unscheduled(pod: dict[str, Any]) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
    return ""


def pod_outcome(
    pod: dict[str, Any], *, pending_for: float, pending_timeout: float
) -> Outcome | None:
    """What a pod's current state means for its task; None while it is still on its way."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Succeeded":
        return Outcome(0)
    if phase == "Failed":
        return _failed(pod)
    if phase == "Unknown":
        reason = status.get("reason") or "its node stopped reporting"
        return Outcome(None, f"the pod was lost: phase Unknown ({reason})")
    terminated = _terminated(pod)
    if terminated is not None and terminated.get("exitCode") not in (None, 0):
        return _failed(pod)  # the main container ended badly; the phase may lag behind
    waiting = _waiting_failure(pod)
    if waiting is not None:
        return waiting
    if phase == "Pending" and pending_for > pending_timeout:
        why = _unscheduled(pod)
        text = f"the pod stayed Pending for more than {pending_timeout:.0f} s"
        return Outcome(None, f"{text}: {why}" if why else text)
    return None


@dataclass
class _PodTask:
    task_id: str
    namespace: str
    pod_name: str
    on_exit: ExitCallback
    started: float
    canceled: bool = False
    last: dict[str, Any] = field(default_factory=dict)


class KubernetesExecutor:
    """Pods through a ``CoreV1Api``-like client; ``watch_factory`` makes a ``Watch``."""

    def __init__(
        self,
        core: Any,
        *,
        namespace: str = "",
        launcher_image: str,
        pending_timeout_s: float = 600.0,
        manager: str = "kfpd",
        watch_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        start_watch: bool = True,
    ) -> None:
        self._core = core
        self.namespace = namespace
        self.launcher_image = launcher_image
        self.pending_timeout_s = pending_timeout_s
        self.manager = manager
        self._watch_factory = watch_factory or _default_watch
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, _PodTask] = {}  # by task id
        self._by_pod: dict[tuple[str, str], str] = {}  # (namespace, pod) -> task id
        self._closed = False
        self._watch: Any = None
        self._watcher: threading.Thread | None = None
        if start_watch:
            self._watcher = threading.Thread(
                target=self._watch_loop, name="kfpd-k8s-watch", daemon=True
            )
            self._watcher.start()

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None,
        namespace: str,
        launcher_image: str,
        pending_timeout_s: float,
    ) -> KubernetesExecutor:
        from kubernetes import client, config

        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig)
        else:
            config.load_incluster_config()
        return cls(
            client.CoreV1Api(),
            namespace=namespace,
            launcher_image=launcher_image,
            pending_timeout_s=pending_timeout_s,
        )

    @property
    def selector(self) -> str:
        return f"{LABEL_MANAGED}={self.manager}"

    # -- Executor

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        namespace = self.namespace or spec.namespace or "default"
        volume_task = VOLUME_TASKS.get(spec.container.image)
        if volume_task is not None:  # kfp-kubernetes CreatePVC / DeletePVC: no pod
            worker = threading.Thread(
                target=self._volume_task,
                args=(volume_task, spec, namespace, on_exit),
                name=f"kfpd-{volume_task}",
                daemon=True,
            )
            worker.start()
            return
        try:
            pod = build_pod(
                spec, namespace=namespace, launcher_image=self.launcher_image, manager=self.manager
            )
        except PodSpecError as exc:
            on_exit(TaskExit(spec.task_id, None, f"cannot build the task's pod: {exc}"))
            return
        name = pod["metadata"]["name"]
        task = _PodTask(spec.task_id, namespace, name, on_exit, self._clock())
        with self._lock:
            closed = self._closed
            if not closed:
                self._tasks[spec.task_id] = task
                self._by_pod[(namespace, name)] = spec.task_id
        if closed:
            on_exit(TaskExit(spec.task_id, None, "the executor is shut down"))
            return
        secret = spec_secret(spec, namespace=namespace, manager=self.manager)
        try:
            if "workspace" in spec.kubernetes and spec.workspace_path:
                self._ensure_workspace(spec, namespace)
            self._core.create_namespaced_secret(namespace, secret)
            created = self._core.create_namespaced_pod(namespace, pod)
            uid = _field(created, "metadata", "uid")
            owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}
            self._core.patch_namespaced_secret(
                secret["metadata"]["name"], namespace, {"metadata": {"ownerReferences": [owner]}}
            )
        except Exception as exc:
            self._delete(namespace, name, secret["metadata"]["name"])
            self._finish(
                spec.task_id, Outcome(None, f"could not create the pod: {_api_error(exc)}")
            )

    def _ensure_workspace(self, spec: LaunchSpec, namespace: str) -> None:
        """Create the run's workspace claim unless an earlier task of the run did."""
        claim = workspace_claim_manifest(spec, namespace, self.manager)
        try:
            self._core.create_namespaced_persistent_volume_claim(namespace, claim)
        except Exception as exc:
            if getattr(exc, "status", None) != 409:  # 409: it exists already
                raise

    def cancel(self, task_id: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            task.canceled = True
        self._delete(task.namespace, task.pod_name, f"{task.pod_name}-spec")
        # The watch's DELETED event reports it; a pod that was never created reports now.
        if not task.last:
            self._finish(task_id, Outcome(-9, "canceled"))

    def shutdown(self) -> None:
        """Stop watching; pods keep running so a restarted server can adopt them."""
        with self._lock:
            self._closed = True
            tasks = list(self._tasks.values())
            self._tasks.clear()
            self._by_pod.clear()
        watch = self._watch
        if watch is not None:
            with contextlib.suppress(Exception):
                watch.stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                task.on_exit(TaskExit(task.task_id, None, "the server stopped watching the pod"))

    def adopt(self, running: dict[str, str], on_exit: ExitCallback) -> set[str]:
        """Watch again the pods of these RUNNING tasks (task id -> run id) after a restart;
        returns the task ids adopted (those that still have a pod)."""
        listed = self._list_pods()
        adopted: set[str] = set()
        for pod in listed:
            labels = (pod.get("metadata") or {}).get("labels") or {}
            task_id = labels.get(LABEL_TASK, "")
            if task_id not in running:
                continue
            namespace = pod["metadata"].get("namespace", "default")
            name = pod["metadata"]["name"]
            task = _PodTask(task_id, namespace, name, on_exit, self._clock(), last=pod)
            with self._lock:
                self._tasks[task_id] = task
                self._by_pod[(namespace, name)] = task_id
            adopted.add(task_id)
            self.handle_event("MODIFIED", pod)
        return adopted

    # -- kfp-kubernetes volume tasks (upstream's driver does these without a pod)

    def _volume_task(
        self, kind: str, spec: LaunchSpec, namespace: str, on_exit: ExitCallback
    ) -> None:
        from kfpd.launcher.reporter import Reporter
        from kfpd.schemas.launch import FinishTaskRequest

        params = spec.parameter_values
        try:
            if kind == "createpvc":
                claim = pvc_manifest(spec, namespace)
                self._core.create_namespaced_persistent_volume_claim(namespace, claim)
                name = claim["metadata"]["name"]
                result = FinishTaskRequest(state="SUCCEEDED", output_parameters={"name": name})
            else:
                self._core.delete_namespaced_persistent_volume_claim(
                    str(params.get("pvc_name") or ""), namespace
                )
                result = FinishTaskRequest(state="SUCCEEDED")
        except Exception as exc:
            result = FinishTaskRequest(
                state="FAILED", error_message=f"{kind} failed: {_api_error(exc)}"
            )
        reporter = Reporter(spec.server_url, spec.token)
        try:
            reporter.finish(spec.run_id, spec.task_id, result)
            code, reason = 0, None
        except Exception as exc:
            code, reason = 3, f"could not report the {kind} task: {exc}"
        finally:
            reporter.close()
        on_exit(TaskExit(spec.task_id, code, reason))

    # -- watching

    def _list_pods(self) -> list[dict[str, Any]]:
        if self.namespace:
            answer = self._core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        else:
            answer = self._core.list_pod_for_all_namespaces(label_selector=self.selector)
        return [_as_dict(p) for p in _field(answer, "items") or []]

    def _watch_loop(self) -> None:
        while not self._closed:
            try:
                self._watch_once()
            except Exception as exc:
                log.warning("pod watch ended (%s); watching again", _api_error(exc))
                time.sleep(1.0)
            self.check_pending()

    def _watch_once(self) -> None:
        self._watch = watch = self._watch_factory()
        if self.namespace:
            func: Any = self._core.list_namespaced_pod
            args: tuple[Any, ...] = (self.namespace,)
        else:
            func, args = self._core.list_pod_for_all_namespaces, ()
        timeout = max(1, min(WATCH_TIMEOUT_S, int(self.pending_timeout_s)))
        stream: Iterable[dict[str, Any]] = watch.stream(
            func, *args, label_selector=self.selector, timeout_seconds=timeout
        )
        for event in stream:
            if self._closed:
                return
            self.handle_event(str(event.get("type", "")), _as_dict(event.get("object")))

    def handle_event(self, kind: str, pod: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) for one of this server's pods."""
        metadata = pod.get("metadata") or {}
        key = (metadata.get("namespace", "default"), metadata.get("name", ""))
        with self._lock:
            task_id = self._by_pod.get(key)
            task = self._tasks.get(task_id) if task_id else None
            if task is None:
                return
            if kind != "DELETED":
                task.last = pod
        outcome: Outcome | None
        if kind == "DELETED":
            outcome = self._deleted(task, pod)
        else:
            outcome = pod_outcome(
                pod,
                pending_for=self._clock() - task.started,
                pending_timeout=self.pending_timeout_s,
            )
        if outcome is not None:
            if kind != "DELETED":
                self._delete(task.namespace, task.pod_name, f"{task.pod_name}-spec")
            self._finish(task.task_id, outcome)

    def _deleted(self, task: _PodTask, pod: dict[str, Any]) -> Outcome:
        if task.canceled:
            return Outcome(-9, "canceled")
        final = pod_outcome(pod, pending_for=0.0, pending_timeout=float("inf"))
        if final is not None:
            return final
        return Outcome(None, "the pod was deleted before it finished (not by kfpd)")

    def check_pending(self) -> None:
        """Fail tasks whose pod stayed Pending too long (also when no event arrives)."""
        now = self._clock()
        with self._lock:
            late = [t for t in self._tasks.values() if now - t.started > self.pending_timeout_s]
        for task in late:
            phase = ((task.last.get("status") or {}).get("phase")) or "Pending"
            if phase == "Pending":
                self.handle_event("MODIFIED", task.last or _placeholder(task))

    # -- helpers

    def _finish(self, task_id: str, outcome: Outcome) -> None:
        with self._lock:
            task = self._tasks.pop(task_id, None)
            if task is not None:
                self._by_pod.pop((task.namespace, task.pod_name), None)
        if task is None:
            return
        try:
            task.on_exit(outcome.exit(task_id))
        except Exception:
            log.exception("on_exit callback for task %s failed", task_id)

    def _delete(self, namespace: str, pod: str, secret: str) -> None:
        with contextlib.suppress(Exception):
            self._core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)
        with contextlib.suppress(Exception):
            self._core.delete_namespaced_secret(secret, namespace)


def _placeholder(task: _PodTask) -> dict[str, Any]:
    return {"metadata": {"name": task.pod_name, "namespace": task.namespace}, "status": {}}


def _default_watch() -> Any:
    from kubernetes import watch

    return watch.Watch()


def _as_dict(obj: Any) -> dict[str, Any]:
    """A client model (V1Pod) as the API's JSON (camelCase), or a dict as it is."""
    if isinstance(obj, dict):
        return obj
    from kubernetes.client import ApiClient

    found: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    return found


def _field(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj


def _api_error(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None:
        return f"{status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
