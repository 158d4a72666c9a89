"""State-transition rules for tasks and runs, as small tables.

Every task or run state change is a named event (:class:`TaskEvent`, :class:`RunEvent`)
checked against :data:`TASK_EVENTS` / :data:`RUN_EVENTS` by the one state machine,
``services/state.py``, under the run's row lock. A plain state report (the task API, the
launcher) is further bounded by :data:`TASK_TRANSITIONS`.

A task the executor has no free slot for yet is PENDING (a kfpd extension of TaskState): QUEUE
gives it that state instead of RUNNING, BEGIN makes it RUNNING once its launcher is handed a slot.

A pending retry is an explicit phase, :attr:`Phase.AWAITING_RETRY`: a failed attempt of a task
with retries left. On the wire (and in the ``state`` column) it stays RUNNING, as KFP clients
expect; the row tells it by its history ending in the failed attempt (see :func:`phase_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from kfpd.domain.enums import RunState, TaskState
from kfpd.domain.errors import FailedPrecondition

_ANY_TASK = frozenset(TaskState) - {TaskState.RUNTIME_STATE_UNSPECIFIED}

# from-state -> states a plain update may move a task to.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.RUNTIME_STATE_UNSPECIFIED: _ANY_TASK,
    TaskState.PENDING: _ANY_TASK,
    TaskState.RUNNING: _ANY_TASK,
    TaskState.SUCCEEDED: frozenset({TaskState.SUCCEEDED}),
    TaskState.CACHED: frozenset({TaskState.CACHED}),
    TaskState.SKIPPED: frozenset({TaskState.SKIPPED}),
    TaskState.FAILED: frozenset({TaskState.FAILED}),
    TaskState.CANCELED: frozenset({TaskState.CANCELED}),
}

RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.RUNTIME_STATE_UNSPECIFIED: frozenset({RunState.PENDING, RunState.RUNNING}),
    RunState.PENDING: frozenset(
        {
            RunState.PENDING,
            RunState.RUNNING,
            RunState.PAUSED,
            RunState.CANCELING,
            RunState.CANCELED,
            RunState.SUCCEEDED,
            RunState.FAILED,
            RunState.SKIPPED,
        }
    ),
    RunState.RUNNING: frozenset(
        {
            RunState.RUNNING,
            RunState.PAUSED,
            RunState.CANCELING,
            RunState.CANCELED,
            RunState.SUCCEEDED,
            RunState.FAILED,
            RunState.SKIPPED,
        }
    ),
    RunState.PAUSED: frozenset(
        {RunState.PAUSED, RunState.RUNNING, RunState.CANCELING, RunState.CANCELED}
    ),
    RunState.CANCELING: frozenset({RunState.CANCELING, RunState.CANCELED}),
    RunState.SUCCEEDED: frozenset({RunState.SUCCEEDED}),
    RunState.SKIPPED: frozenset({RunState.SKIPPED}),
    RunState.FAILED: frozenset({RunState.FAILED}),
    RunState.CANCELED: frozenset({RunState.CANCELED}),
}

# Retry is the one way out of a finished run, and only for runs that did not succeed.
RETRYABLE_RUN_STATES = frozenset({RunState.FAILED, RunState.CANCELED})


def task_transition(current: TaskState, new: TaskState) -> bool:
    """Return True when ``new`` changes the state; raise if the move is not allowed."""
    if new == TaskState.RUNTIME_STATE_UNSPECIFIED:
        return False
    if new not in TASK_TRANSITIONS[current]:
        raise FailedPrecondition(f"task state cannot change from {current.name} to {new.name}")
    return new != current


def run_transition(current: RunState, new: RunState) -> bool:
    """Return True when ``new`` changes the run state; raise if the move is not allowed."""
    if new not in RUN_TRANSITIONS[current]:
        raise FailedPrecondition(f"run state cannot change from {current.name} to {new.name}")
    return new != current


def rolled_up_state(children: list[TaskState]) -> TaskState:
    """The state of a group task once all of its children are final.

    Any failure fails the group; a cancel cancels it; a group whose children were all
    served from cache is CACHED, all skipped is SKIPPED; anything else SUCCEEDED.
    """
    if TaskState.FAILED in children:
        return TaskState.FAILED
    if TaskState.CANCELED in children:
        return TaskState.CANCELED
    if children and all(s == TaskState.CACHED for s in children):
        return TaskState.CACHED
    if children and all(s == TaskState.SKIPPED for s in children):
        return TaskState.SKIPPED
    return TaskState.SUCCEEDED


def run_state_for_root(root_state: TaskState, current: RunState) -> RunState:
    """The run state implied by its ROOT task reaching a final state."""
    if current == RunState.CANCELING:
        return RunState.CANCELED
    return {
        TaskState.SUCCEEDED: RunState.SUCCEEDED,
        TaskState.CACHED: RunState.SUCCEEDED,
        TaskState.SKIPPED: RunState.SKIPPED,
        TaskState.FAILED: RunState.FAILED,
        TaskState.CANCELED: RunState.CANCELED,
    }[root_state]


# ---------------------------------------------------------------------------- named events


class Phase(Enum):
    """A task's lifecycle phase: its wire state, plus the internal AWAITING_RETRY."""

    NEW = "NEW"  # a row being created (wire RUNTIME_STATE_UNSPECIFIED)
    PENDING = "PENDING"  # launched, waiting for a free executor slot
    RUNNING = "RUNNING"
    AWAITING_RETRY = "AWAITING_RETRY"  # wire RUNNING
    SUCCEEDED = "SUCCEEDED"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @classmethod
    def of_state(cls, state: TaskState) -> Phase:
        if state == TaskState.RUNTIME_STATE_UNSPECIFIED:
            return cls.NEW
        return cls(state.name)

    @property
    def wire(self) -> TaskState:
        if self == Phase.NEW:
            return TaskState.RUNTIME_STATE_UNSPECIFIED
        if self == Phase.AWAITING_RETRY:
            return TaskState.RUNNING
        return TaskState[self.value]


class TaskEvent(Enum):
    REPORT = "report"  # the task API / launcher reports a state (bounded by TASK_TRANSITIONS)
    START = "start"  # the orchestrator creates a task that runs
    QUEUE = "queue"  # the orchestrator launches a task the executor has no free slot for
    BEGIN = "begin"  # the executor handed a queued task's launcher a slot
    FINISH = "finish"  # the orchestrator completes a task itself (importer, empty DAG)
    SKIP = "skip"  # a false condition, a zero-item loop
    FAIL = "fail"  # the orchestrator fails a task (inputs, launch, process exit)
    CACHE_HIT = "cache_hit"  # outputs taken from an earlier task
    ATTEMPT_FAILED = "attempt_failed"  # a failed attempt with retries left
    RELAUNCH = "relaunch"  # the backoff of a pending retry elapsed
    RECOVER_LOST = "recover_lost"  # server restart: the task's process is gone
    ROLL_UP = "roll_up"  # a group's children settled its state
    CANCEL = "cancel"  # terminate, or orchestration gave up on the run
    RESET = "reset"  # RetryRun: a task that did not finish well runs again


_FINAL_PHASES = frozenset(
    {Phase.SUCCEEDED, Phase.CACHED, Phase.SKIPPED, Phase.FAILED, Phase.CANCELED}
)
_LIVE = frozenset({Phase.NEW, Phase.PENDING, Phase.RUNNING})

# Launched: running, or queued for a slot (a queued task's launcher may report before BEGIN
# is recorded, and a restart may find it gone).
_STARTED = frozenset({Phase.PENDING, Phase.RUNNING})

# event -> (phases it may start from, phases it may lead to)
TASK_EVENTS: dict[TaskEvent, tuple[frozenset[Phase], frozenset[Phase]]] = {
    TaskEvent.REPORT: (_LIVE, frozenset({Phase.RUNNING}) | _FINAL_PHASES),
    TaskEvent.START: (frozenset({Phase.NEW}), frozenset({Phase.RUNNING})),
    TaskEvent.QUEUE: (
        frozenset({Phase.NEW, Phase.RUNNING, Phase.AWAITING_RETRY}),
        frozenset({Phase.PENDING}),
    ),
    TaskEvent.BEGIN: (frozenset({Phase.PENDING}), frozenset({Phase.RUNNING})),
    TaskEvent.FINISH: (_LIVE, frozenset({Phase.SUCCEEDED})),
    TaskEvent.SKIP: (_LIVE, frozenset({Phase.SKIPPED})),
    TaskEvent.FAIL: (_LIVE | {Phase.AWAITING_RETRY}, frozenset({Phase.FAILED})),
    TaskEvent.CACHE_HIT: (_LIVE, frozenset({Phase.CACHED})),
    TaskEvent.ATTEMPT_FAILED: (_STARTED, frozenset({Phase.AWAITING_RETRY})),
    TaskEvent.RELAUNCH: (frozenset({Phase.AWAITING_RETRY}), frozenset({Phase.RUNNING})),
    TaskEvent.RECOVER_LOST: (_STARTED, frozenset({Phase.FAILED})),
    TaskEvent.ROLL_UP: (frozenset({Phase.RUNNING}), _FINAL_PHASES),
    TaskEvent.CANCEL: (_STARTED | {Phase.AWAITING_RETRY}, frozenset({Phase.CANCELED})),
    TaskEvent.RESET: (
        _STARTED | {Phase.NEW, Phase.AWAITING_RETRY, Phase.FAILED, Phase.CANCELED},
        frozenset({Phase.RUNNING}),
    ),
}

# Events whose FAILED outcome becomes a pending retry when the task's policy has retries left.
RETRYABLE_EVENTS = frozenset({TaskEvent.REPORT, TaskEvent.FAIL, TaskEvent.RECOVER_LOST})


def task_event(event: TaskEvent, current: Phase, new: Phase) -> bool:
    """Check a named task event: True when it changes the phase; raise if not allowed.

    A report of the state a task is already in changes nothing (a repeated report)."""
    if event == TaskEvent.REPORT and current.wire == new.wire:
        return False
    sources, targets = TASK_EVENTS[event]
    if current not in sources or new not in targets:
        raise FailedPrecondition(f"task cannot {event.value} from {current.value} to {new.value}")
    return True


def phase_of(state: int, history: Sequence[dict[str, Any]] | None) -> Phase:
    """A row's phase: RUNNING whose history ends in a failed attempt awaits a retry."""
    phase = Phase.of_state(TaskState(state))
    if phase == Phase.RUNNING and history and history[-1].get("state") == Phase.FAILED.value:
        return Phase.AWAITING_RETRY
    return phase


class RunEvent(Enum):
    START = "start"  # its first task started
    FINISH = "finish"  # its ROOT task is final
    TERMINATE = "terminate"  # the user stopped it (CANCELING, then CANCELED)
    RETRY = "retry"  # RetryRun: back to RUNNING
    FAIL = "fail"  # it cannot run (bad runtime parameters, orchestration broke)


_RUN_FINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.SKIPPED})
RUN_EVENTS: dict[RunEvent, tuple[frozenset[RunState], frozenset[RunState]]] = {
    RunEvent.START: (frozenset({RunState.PENDING}), frozenset({RunState.RUNNING})),
    RunEvent.FINISH: (
        frozenset({RunState.PENDING, RunState.RUNNING, RunState.CANCELING}),
        _RUN_FINAL,
    ),
    RunEvent.TERMINATE: (
        frozenset({RunState.PENDING, RunState.RUNNING, RunState.PAUSED, RunState.CANCELING}),
        frozenset({RunState.CANCELING, RunState.CANCELED}),
    ),
    RunEvent.RETRY: (RETRYABLE_RUN_STATES, frozenset({RunState.RUNNING})),
    RunEvent.FAIL: (
        frozenset({RunState.PENDING, RunState.RUNNING, RunState.CANCELING}),
        frozenset({RunState.FAILED}),
    ),
}


def run_event(event: RunEvent, current: RunState, new: RunState) -> bool:
    """Check a named run event: True when it changes the state; raise if not allowed."""
    if current == new:
        return False
    sources, targets = RUN_EVENTS[event]
    if current not in sources or new not in targets:
        raise FailedPrecondition(f"run cannot {event.value} from {current.name} to {new.name}")
    return True
