"""State-transition rules for tasks and runs, as small ordered tables.

Every state write goes through :func:`task_transition` or :func:`run_transition`;
the services apply them under the run's row lock (see services/tasks.py).
"""

from __future__ import annotations

from kfpd.domain.enums import RunState, TaskState
from kfpd.domain.errors import FailedPrecondition

_ANY_TASK = frozenset(TaskState) - {TaskState.RUNTIME_STATE_UNSPECIFIED}

# from-state -> states a plain update may move a task to.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.RUNTIME_STATE_UNSPECIFIED: _ANY_TASK,
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
