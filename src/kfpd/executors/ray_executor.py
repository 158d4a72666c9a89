"""Runs each task's launcher as a Ray task on an existing Ray cluster (``pip install 'kfpd[ray]'``).

The Ray task (:func:`run_launcher`, on whichever node has the resources) starts
``python -m kfpd.launcher`` as a child process and hands it the spec on stdin; the launcher
reports to the server over HTTP as everywhere else. So every node needs kfpd installed (the
same version as the server) and must reach the server's URL and the pipeline root: an
``s3://`` root for a real cluster (``file://`` only works while all nodes share a disk).
Container images are ignored, as on the local executor: Ray would need the image's Python
and Ray to match the cluster's.

- Resources: cpu → ``num_cpus``, memory → ``memory`` (bytes), a GPU accelerator →
  ``num_gpus``, any other accelerator type → a custom resource of that name.
- The run token travels only as an argument of the Ray task, never in a ``runtime_env``
  (which Ray's dashboard shows).
- ``cancel`` is ``ray.cancel(force=True)``: Ray kills the worker process (and its direct
  children, the launcher among them), and a small detached guard process kills the launcher's
  process group (the component and what it started) when that worker is gone.
- A killed worker, a lost node or Ray's OOM killer fail the Ray task; the owner (this server)
  learns it within seconds and reports the task failed with Ray's message (an OOM kill as
  ``OOM: Ray's memory monitor killed …`` with Ray's usage / threshold figures). Ray does not
  retry (``max_retries=0``): the orchestrator retries per the task's retry policy.
- The launcher records where it ran (Ray node id, Ray task id, host) in the task's
  pods/status metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfpd.executors.base import ExitCallback, IgnoredImageWarning, TaskExit, deliver_exit
from kfpd.executors.resources import QuantityError, requests_of
from kfpd.launcher.main import EXECUTOR_ENV, PLACEMENT_ENV
from kfpd.launcher.process import describe_exit
from kfpd.schemas.launch import LaunchSpec

log = logging.getLogger("kfpd.executors.ray")

# Runs beside the launcher: when the Ray worker that started it dies (canceled with
# force=True, OOM-killed, its node lost) it kills the launcher's process group, where the
# component runs. It detaches first (forks and lets its parent exit): Ray kills a dead worker's
# direct children, which would take the guard along before it acts. The worker is known by its
# pid and start time, so a reused pid is not mistaken for it.
_GUARD = """
import os, signal, sys, time
group, worker = int(sys.argv[1]), int(sys.argv[2])
def started(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
born = started(worker)
if os.fork():
    os._exit(0)
os.setsid()
while True:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        os._exit(0)
    if born is None or started(worker) != born:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os._exit(0)
    time.sleep(0.5)
"""


def ray_options(resources: dict[str, Any]) -> dict[str, Any]:
    """``.options(...)`` for a task with these PipelineSpec resources."""
    requests = requests_of(resources)
    options: dict[str, Any] = {}
    if requests.cpu is not None:
        options["num_cpus"] = requests.cpu
    if requests.memory_bytes is not None:
        options["memory"] = int(requests.memory_bytes)
    accelerator = requests.accelerator
    if accelerator is not None:
        if accelerator.is_gpu:
            options["num_gpus"] = accelerator.count
        else:
            options["resources"] = {accelerator.type: accelerator.count}
    return options


def _tail(path: Path, max_chars: int = 2000) -> str:
    try:
        return path.read_bytes()[-max_chars:].decode("utf-8", "replace").strip()
    except OSError:
        return ""


def run_launcher(spec_json: str) -> dict[str, Any]:
    """The Ray task: run one launcher on this node and return its exit code and log tail."""
    import ray

    context = ray.get_runtime_context()
    placement = {
        "executor": "ray",
        "ray_node_id": context.get_node_id(),
        "ray_task_id": context.get_task_id() or "",
        "host": socket.gethostname(),
    }
    work = Path(tempfile.mkdtemp(prefix="kfpd-ray-"))
    spec = json.loads(spec_json)
    spec["work_dir"] = str(work / "task")
    env = {**os.environ, EXECUTOR_ENV: "ray", PLACEMENT_ENV: json.dumps(placement)}
    log_path = work / "launcher.log"
    try:
        with log_path.open("wb") as out:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "kfpd.launcher"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=work,
                env=env,
                start_new_session=True,
            )
        # The guard forks and its first process exits at once; the second one leaves when
        # the launcher's group is gone.
        subprocess.run(
            [sys.executable, "-c", _GUARD, str(launcher.pid), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            check=False,
        )
        launcher.communicate(json.dumps(spec).encode())
        code = launcher.wait()
        return {"returncode": code, "log_tail": _tail(log_path), "placement": placement}
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class _RayTask:
    spec: LaunchSpec
    on_exit: ExitCallback
    ref: Any
    canceled: bool = False


class RayExecutor:
    """Submits launchers to the Ray cluster at ``address`` (``HOST:PORT`` of its GCS)."""

    def __init__(self, address: str, *, namespace: str = "kfpd", poll_s: float = 0.5) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            ray.init(
                address=address,
                namespace=namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        self._remote = ray.remote(max_retries=0, retry_exceptions=False)(run_launcher)
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tasks: dict[str, _RayTask] = {}
        self._closed = False
        self._warn_image = IgnoredImageWarning("Ray", "in the Ray workers' environment")
        self._waiter = threading.Thread(target=self._wait_loop, name="kfpd-ray-waiter", daemon=True)
        self._waiter.start()

    # -- Executor

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        self._warn_image(spec)
        try:
            options = ray_options(spec.resources)
        except QuantityError as exc:
            on_exit(TaskExit(spec.task_id, None, str(exc)))
            return
        with self._lock:
            if self._closed:
                closed = True
            elif spec.task_id in self._tasks:
                raise ValueError(f"task {spec.task_id} is already submitted")
            else:
                closed = False
                name = f"kfpd:{spec.run_id}:{spec.task_name}"[:200]
                ref = self._remote.options(name=name, **options).remote(spec.model_dump_json())
                self._tasks[spec.task_id] = _RayTask(spec, on_exit, ref)
                self._changed.notify_all()
        if closed:
            on_exit(TaskExit(spec.task_id, None, "the executor is shut down"))

    def cancel(self, task_id: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            task.canceled = True
        with contextlib.suppress(Exception):  # already finished: its exit arrives anyway
            self._ray.cancel(task.ref, force=True)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            ids = list(self._tasks)
        for task_id in ids:
            self.cancel(task_id)
        with self._lock:
            self._changed.notify_all()
            if not self._changed.wait_for(lambda: not self._tasks, timeout=60):
                log.error("Ray tasks still running after shutdown: %s", sorted(self._tasks))
        self._waiter.join(timeout=5)
        with contextlib.suppress(Exception):
            self._ray.shutdown()

    def running(self) -> list[str]:
        with self._lock:
            return list(self._tasks)

    # -- watching

    def _wait_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed and not self._tasks:
                    self._changed.notify_all()
                    return
                if not self._tasks:
                    self._changed.wait(self._poll_s)
                    continue
                by_ref = {task.ref: task for task in self._tasks.values()}
            try:
                ready, _ = self._ray.wait(
                    list(by_ref), num_returns=1, timeout=self._poll_s, fetch_local=False
                )
            except Exception:
                log.exception("ray.wait failed")
                ready = []
            for ref in ready:
                task = by_ref[ref]
                self._finish(task, self._outcome(task))

    def _outcome(self, task: _RayTask) -> TaskExit:
        task_id = task.spec.task_id
        try:
            result = self._ray.get(task.ref)
        except Exception as exc:
            if task.canceled:
                return TaskExit(task_id, None, "canceled")
            if isinstance(exc, self._ray.exceptions.OutOfMemoryError):
                return TaskExit(task_id, None, oom_message(exc))
            return TaskExit(task_id, None, f"the Ray task failed: {_describe(exc)}")
        code = int(result.get("returncode", 1))
        if code == 0:
            return TaskExit(task_id, 0)
        if task.canceled:
            return TaskExit(task_id, code, "canceled")
        tail = str(result.get("log_tail") or "")
        what = "the launcher " + describe_exit(code)
        return TaskExit(task_id, code, f"{what}: {tail}" if tail else what)

    def _finish(self, task: _RayTask, exit_: TaskExit) -> None:
        with self._lock:
            if self._tasks.get(task.spec.task_id) is not task:
                return
            del self._tasks[task.spec.task_id]
            self._changed.notify_all()
        deliver_exit(task.on_exit, exit_)


def _describe(exc: BaseException) -> str:
    """Ray's error, without its multi-line traceback banner when it has a short form."""
    name = type(exc).__name__
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    for line in text.splitlines():  # Ray puts the cause (OOM, node died) in a later line
        lowered = line.lower()
        if any(w in lowered for w in ("memory", "node", "died", "killed", "crash", "exit")):
            first = line.strip()
            break
    return f"{name}: {first}" if first else name


def oom_message(exc: BaseException) -> str:
    """A task killed by Ray's memory monitor (``ray.exceptions.OutOfMemoryError``): say OOM
    first, then Ray's own figures (usage against the node's kill threshold), not its
    multi-kilobyte report of the object store and the node's top processes."""
    lines = [line.strip() for line in str(exc).splitlines()]
    reason = next((ln for ln in lines if ln.startswith("OOM kill reason:")), "")
    reason = reason.removeprefix("OOM kill reason:").strip()
    node = next((ln for ln in lines if "running low on memory" in ln), "")
    detail = reason or node or (lines[0] if lines else "")
    return (
        "OOM: Ray's memory monitor killed the task's worker, the node was running low on "
        f"memory ({detail or 'no detail from Ray'}). Request more memory for the task "
        "(set_memory_request/limit: Ray then runs fewer tasks beside it) or free memory on "
        "the node; Ray's kill threshold is RAY_memory_usage_threshold."
    )
