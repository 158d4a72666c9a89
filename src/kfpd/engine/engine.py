"""One thread, one queue: run events and task exits become orchestration steps.

Each step is one transaction (services/orchestration.py) under the run's row lock; launches
are handed to the executor only after the step committed, so a crash never leaves a process
running for a task that was not recorded. Everything the engine keeps in memory (which task
runs where, retry timers) can be rebuilt from the database: see :meth:`Engine.start`.

Task processes outlive the server: on start the engine asks the executor about every task the
database says was launched (server-restart recovery, :meth:`Engine._adopt`): it adopts those
still running, launches those that never started and fails only those whose process is gone.

No run can monopolise the engine: a step that throws, or runs longer than
``step_timeout`` (interrupted by :class:`~kfpd.engine.watchdog.StepWatchdog`), fails its run
with a message and the engine moves on to the other runs' events.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from kfpd.db.engine import Database
from kfpd.engine.watchdog import EngineStopping, StepTimeout, StepWatchdog
from kfpd.executors.base import AdoptingExecutor, Executor, QueueingExecutor, TaskExit
from kfpd.logs import bound
from kfpd.services import orchestration
from kfpd.services.orchestration import OrchestratorConfig, Step

DEFAULT_STEP_TIMEOUT = 30.0  # seconds one orchestration step may take before its run fails

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Event:
    kind: str  # start | resume | exit | advance | relaunch | started | terminate | stop
    run_id: str = ""
    task_id: str = ""
    reason: str = ""


class Engine:
    def __init__(
        self,
        database: Database,
        executor: Executor,
        config: OrchestratorConfig,
        *,
        step_timeout: float = DEFAULT_STEP_TIMEOUT,
    ) -> None:
        self.database = database
        self.executor = executor
        if isinstance(executor, QueueingExecutor):
            # Launches beyond the free slots are recorded PENDING, RUNNING once started.
            config = replace(config, free_slots=executor.free_slots)
            executor.watch_starts(self._on_started)
        self.config = config
        self._events: queue.Queue[_Event] = queue.Queue()
        self._timers: list[tuple[float, int, _Event]] = []
        self._seq = itertools.count()
        self._running: dict[str, str] = {}  # task id -> run id
        self._reported: set[str] = set()  # running tasks whose launcher already reported
        self._waiting: set[str] = set()  # tasks recorded PENDING, until the executor starts them
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._launched_at: dict[str, float] = {}  # task id -> monotonic launch time
        # Called with each task process's wall time (the /metrics histogram), if set.
        self.task_seconds: Callable[[float], None] | None = None
        self._watchdog = StepWatchdog(step_timeout)
        self._stopping = threading.Event()
        self._never_started: frozenset[str] = frozenset()  # at start-up, see _adopt

    # -- public API (any thread)

    def start(self) -> None:
        if self._thread is not None:
            return
        with self.database.read_session() as session:
            running = orchestration.running_container_tasks(session)
            active = orchestration.active_run_ids(session)
        self._adopt(running)
        for run_id in active:
            self._events.put(_Event("resume", run_id))
        self._thread = threading.Thread(target=self._loop, name="kfpd-engine", daemon=True)
        self._thread.start()
        self._watchdog.start(self._thread)

    def _adopt(self, running: dict[str, str]) -> None:
        """Server-restart recovery. Tasks still running under the executor since before the
        restart (local launchers, Kubernetes pods) are watched again rather than failed by
        ``resume``; those the executor never started (queued for a slot) are launched."""
        if not running:
            return
        if isinstance(self.executor, QueueingExecutor):
            try:
                self._never_started = frozenset(self.executor.never_started(running))
            except Exception:
                log.exception("could not tell which tasks never started before the restart")
        if not isinstance(self.executor, AdoptingExecutor):
            return
        try:
            adopted = self.executor.adopt(running, self._on_exit)
        except Exception:
            log.exception("could not adopt tasks still running from before the restart")
            return
        with self._lock:
            self._running.update({task_id: running[task_id] for task_id in adopted})
        if adopted or self._never_started:
            log.info(
                "adopted %d running task(s) from before the restart; %d never started",
                len(adopted),
                len(self._never_started),
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (a stuck step is interrupted after ``timeout``/2), then the executor.
        Whether tasks keep running is the executor's choice (``--on-stop``); when it kills
        them, their exits are recorded first."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        cancel = getattr(self.executor, "on_stop", None) == "cancel"
        if cancel:
            self.executor.shutdown()  # the exits queue ahead of the stop event
        self._events.put(_Event("stop"))
        thread.join(timeout / 2)
        if thread.is_alive():
            log.warning("an orchestration step is still running at shutdown: interrupting it")
            self._watchdog.interrupt(EngineStopping)
            thread.join(timeout / 2)
        self._watchdog.stop()
        self._thread = None
        if not cancel:
            self.executor.shutdown()

    def run_created(self, run_id: str) -> None:
        self._events.put(_Event("start", run_id))

    def run_retried(self, run_id: str) -> None:
        self._events.put(_Event("resume", run_id))

    def run_terminated(self, run_id: str) -> None:
        self._events.put(_Event("terminate", run_id))

    def task_finished(self, run_id: str, task_id: str) -> None:
        """A launcher reported (the :finish call committed): advance without waiting for
        its process to exit. The exit that follows is then only bookkeeping."""
        with self._lock:
            if task_id not in self._running:
                return
            self._reported.add(task_id)
        self._events.put(_Event("exit", run_id, task_id, "reported"))

    def running_tasks(self) -> dict[str, str]:
        with self._lock:
            return dict(self._running)

    def queue_depth(self) -> int:
        return self._events.qsize()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop

    def _on_started(self, task_id: str) -> None:
        """The executor gave a task a slot: one recorded PENDING becomes RUNNING."""
        with self._lock:
            if task_id not in self._waiting:
                return
            self._waiting.discard(task_id)
            run_id = self._running.get(task_id, "")
        self._events.put(_Event("started", run_id, task_id))

    def _on_exit(self, exit: TaskExit) -> None:
        with self._lock:
            self._waiting.discard(exit.task_id)
            run_id = self._running.pop(exit.task_id, "")
            reported = exit.task_id in self._reported
            self._reported.discard(exit.task_id)
            launched = self._launched_at.pop(exit.task_id, None)
        if launched is not None and self.task_seconds is not None:
            self.task_seconds(time.monotonic() - launched)
        with bound(run_id=run_id, task_id=exit.task_id):
            log.info("task process exited", extra={"returncode": exit.returncode})
        if reported and exit.returncode == 0:
            return  # already advanced when the report came in
        reason = exit.reason or (
            f"the launcher exited with code {exit.returncode} without reporting a result"
        )
        self._events.put(_Event("exit", run_id, exit.task_id, reason))

    def _run_step(self, event: _Event, step: Callable[..., Step]) -> Step | None:
        """One transaction, bounded in time; on failure the run fails and None is returned."""
        try:
            with self._watchdog.guard(), self.database.write_session() as session:
                return step(session)
        except EngineStopping:
            raise  # rolled back: the next server does this step again
        except StepTimeout:
            log.error("orchestration of run %s took too long on %s", event.run_id, event.kind)
            self._drop_pooled_connections()
            message = (
                f"orchestrator error: one orchestration step took longer than "
                f"{self._watchdog.timeout:g} s (the run is too large or loops)"
            )
        except Exception as exc:
            log.exception("orchestration of run %s failed on %s", event.run_id, event.kind)
            message = f"orchestrator error: {exc}"
        try:
            with self.database.write_session() as session:
                orchestration.fail_run(session, event.run_id, message)
        except Exception:
            log.exception("could not mark run %s failed", event.run_id)
        return None

    def _drop_pooled_connections(self) -> None:
        """An interrupted step may have left its driver connection mid-protocol (seen with
        PyMySQL): a server database's pool is renewed rather than lending it again."""
        write_engine = self.database.write_engine
        if write_engine.dialect.name != "sqlite":
            write_engine.dispose()

    def _next_timeout(self) -> float | None:
        if not self._timers:
            return None
        return max(self._timers[0][0] - time.monotonic(), 0.0)

    def _loop(self) -> None:
        try:
            self._turns()
        except EngineStopping:
            log.info("the orchestration step in progress was interrupted by the shutdown")

    def _turns(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=self._next_timeout())
            except queue.Empty:
                event = None
            if event is not None and event.kind == "stop":
                return
            if event is not None:
                self._handle(event)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, due = heapq.heappop(self._timers)
                self._handle(due)

    def _handle(self, event: _Event) -> None:
        with bound(run_id=event.run_id or None, task_id=event.task_id or None):
            log.debug("orchestration event %s", event.kind)
            try:
                self._handle_event(event)
            except Exception:  # the loop must survive whatever one event does
                log.exception("orchestration event %s failed", event.kind)

    def _handle_event(self, event: _Event) -> None:
        if event.kind == "terminate":
            for task_id, run_id in self.running_tasks().items():
                if run_id == event.run_id:
                    self.executor.cancel(task_id)
            return
        if not event.run_id:
            return
        if event.kind == "relaunch" and event.task_id in self.running_tasks():
            # The failed attempt reported before its process exited: wait for the exit.
            heapq.heappush(self._timers, (time.monotonic() + 0.05, next(self._seq), event))
            return
        step_of: dict[str, Callable[..., Step]] = {
            "start": lambda s: orchestration.start_run(s, event.run_id, self.config),
            "resume": lambda s: orchestration.resume_run(
                s,
                event.run_id,
                self.config,
                adopted=set(self.running_tasks()),
                never_started=self._never_started,
            ),
            "exit": lambda s: orchestration.task_exited(
                s, event.run_id, event.task_id, event.reason, self.config
            ),
            "advance": lambda s: orchestration.advance_group(
                s, event.run_id, event.task_id, self.config
            ),
            "relaunch": lambda s: orchestration.relaunch_task(
                s, event.run_id, event.task_id, self.config
            ),
            "started": lambda s: orchestration.task_started(
                s, event.run_id, event.task_id, self.config
            ),
        }
        step = self._run_step(event, step_of[event.kind])
        if step is None:
            return
        for group_id in step.follow_ups:
            self._events.put(_Event("advance", event.run_id, group_id))
        for delay, task_id in step.retries:
            due = _Event("relaunch", event.run_id, task_id)
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), due))
        if self._stopping.is_set():
            # Recorded as launched but never started: the next server launches them.
            return
        self._submit(step, event.run_id)

    def _submit(self, step: Step, run_id: str) -> None:
        """Hand a committed step's launches to the executor."""
        for spec in step.launches:
            with self._lock:
                self._running[spec.task_id] = run_id
                self._launched_at[spec.task_id] = time.monotonic()
                if spec.task_id in step.queued:
                    self._waiting.add(spec.task_id)
            log.info("launching task", extra={"task_id": spec.task_id})
            try:
                self.executor.submit(spec, self._on_exit)
            except Exception as exc:
                log.exception("could not launch task %s", spec.task_id)
                self._on_exit(TaskExit(spec.task_id, None, f"could not start the task: {exc}"))
