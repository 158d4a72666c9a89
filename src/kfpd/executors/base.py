"""What the orchestrator needs from an executor, whatever runs the launcher.

The orchestrator builds a :class:`LaunchSpec` and calls ``submit``; the launcher reports the
task's outcome to the server itself (``:finish``). ``on_exit`` then tells the orchestrator
that the launcher process is gone: with ``returncode == 0`` the launcher delivered its report;
otherwise (crashed, killed, canceled, never started) the report may be missing, and
``reason`` says why, so the orchestrator can fail the task if it is not final yet.

A remote backend (a Kubernetes pod, a Ray task) implements the same three methods: start
``python -m kfpd.launcher`` with the spec wherever it runs, watch it, call ``on_exit`` once.

Task processes outlive the server. An executor that can find them again after a restart also
implements :class:`RecoveringExecutor`: the restarted server asks it about each task the
database says was launched, adopts those still running and fails only those that are gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kfpd.schemas.launch import LaunchSpec


@dataclass(frozen=True)
class TaskExit:
    task_id: str
    # The launcher's exit code; negative: killed by that signal; None: it never started.
    returncode: int | None
    # Why the launcher ended abnormally (None when it exited 0).
    reason: str | None = None

    @property
    def reported(self) -> bool:
        """The launcher exited normally, so its report reached the server."""
        return self.returncode == 0


ExitCallback = Callable[[TaskExit], None]
StartCallback = Callable[[str], None]  # a task id

log = logging.getLogger("kfpd.executors")


def deliver_exit(on_exit: ExitCallback, exit_: TaskExit) -> None:
    """Call an executor's ``on_exit``; a failing callback is logged, never raised into the
    executor's own thread (which must go on watching its other tasks)."""
    try:
        on_exit(exit_)
    except Exception:
        log.exception("on_exit callback for task %s failed", exit_.task_id)


class IgnoredImageWarning:
    """Warns once that an executor runs commands without the component's image."""

    def __init__(self, executor: str, where: str) -> None:
        self._executor = executor
        self._where = where
        self._warned = False

    def __call__(self, spec: LaunchSpec) -> None:
        if spec.container.image and not self._warned:
            self._warned = True
            log.warning(
                "the %s executor ignores container images (first seen: %s); commands run %s",
                self._executor,
                spec.container.image,
                self._where,
            )


class Executor(Protocol):
    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        """Start (or queue) the task's launcher; never blocks on the task.

        ``on_exit`` is called exactly once, from any thread, after the launcher ended.
        """

    def cancel(self, task_id: str) -> None:
        """Kill the task's launcher and everything it started; ``on_exit`` still fires."""

    def shutdown(self) -> None:
        """Stop every task (each ``on_exit`` fires) and release the executor's resources."""


@runtime_checkable
class AdoptingExecutor(Executor, Protocol):
    """An executor whose tasks outlive the server (Kubernetes pods): after a restart it takes
    back the ones still running instead of the orchestrator failing them."""

    def adopt(self, running: dict[str, str], on_exit: ExitCallback) -> set[str]:
        """``running``: the RUNNING container tasks of active runs (task id -> run id).
        Returns those it found still running and now watches (``on_exit`` fires for each)."""


@runtime_checkable
class QueueingExecutor(Executor, Protocol):
    """An executor that queues tasks for a free slot: at a stop, some it was given never
    started, and a restarted server must launch them rather than fail them. The orchestrator
    records the tasks it hands over beyond ``free_slots`` as PENDING, and makes them RUNNING
    when ``watch_starts`` tells it they got a slot."""

    def free_slots(self) -> int:
        """How many tasks submitted now would start at once (0 while draining)."""

    def watch_starts(self, callback: StartCallback) -> None:
        """Call ``callback`` with each task's id as its launcher is given a slot (at
        ``submit``, or later when a slot frees); never while holding the executor's lock."""

    def never_started(self, running: dict[str, str]) -> set[str]:
        """Of ``running`` (task id -> run id, as for ``adopt``), the tasks that an earlier
        server handed to this executor and that never started."""


class RecordingExecutor:
    """A stand-in for tests: keeps what was submitted; the test decides when tasks end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submitted: list[LaunchSpec] = []
        self.canceled: list[str] = []
        self._callbacks: dict[str, ExitCallback] = {}

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        with self._lock:
            self.submitted.append(spec)
            self._callbacks[spec.task_id] = on_exit

    def running(self) -> list[str]:
        with self._lock:
            return list(self._callbacks)

    def exit(self, task_id: str, returncode: int | None = 0, reason: str | None = None) -> None:
        """End a submitted task as if its launcher had exited."""
        with self._lock:
            callback = self._callbacks.pop(task_id)
        callback(TaskExit(task_id, returncode, reason))

    def cancel(self, task_id: str) -> None:
        with self._lock:
            self.canceled.append(task_id)
            known = task_id in self._callbacks
        if known:
            self.exit(task_id, -9, "canceled")

    def shutdown(self) -> None:
        for task_id in self.running():
            self.exit(task_id, None, "the executor shut down")
