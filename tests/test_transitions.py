"""Transition rules as a matrix: every (from, to) pair for tasks and runs."""

from __future__ import annotations

import pytest

from kfpd.domain.enums import RunState, TaskState
from kfpd.domain.errors import FailedPrecondition
from kfpd.domain.transitions import (
    rolled_up_state,
    run_state_for_root,
    run_transition,
    task_transition,
)

T = TaskState
R = RunState
FINAL_TASK = [T.SUCCEEDED, T.SKIPPED, T.FAILED, T.CACHED, T.CANCELED]

# (from, to) -> "change" | "same" | "refused"
TASK_CASES = (
    [(T.RUNTIME_STATE_UNSPECIFIED, to, "change") for to in [T.RUNNING, *FINAL_TASK]]
    + [(T.RUNNING, T.RUNNING, "same")]
    + [(T.RUNNING, to, "change") for to in FINAL_TASK]
    + [(f, f, "same") for f in FINAL_TASK]
    + [(f, to, "refused") for f in FINAL_TASK for to in [T.RUNNING, *FINAL_TASK] if to != f]
)


@pytest.mark.parametrize(("current", "new", "expected"), TASK_CASES)
def test_task_transitions(current: TaskState, new: TaskState, expected: str) -> None:
    if expected == "refused":
        with pytest.raises(FailedPrecondition):
            task_transition(current, new)
    else:
        assert task_transition(current, new) is (expected == "change")


def test_unspecified_task_state_is_no_change() -> None:
    for state in TaskState:
        assert task_transition(state, T.RUNTIME_STATE_UNSPECIFIED) is False


RUN_ALLOWED = {
    R.PENDING: {R.RUNNING, R.PAUSED, R.CANCELING, R.CANCELED, R.SUCCEEDED, R.FAILED, R.SKIPPED},
    R.RUNNING: {R.PAUSED, R.CANCELING, R.CANCELED, R.SUCCEEDED, R.FAILED, R.SKIPPED},
    R.PAUSED: {R.RUNNING, R.CANCELING, R.CANCELED},
    R.CANCELING: {R.CANCELED},
    R.SUCCEEDED: set(),
    R.SKIPPED: set(),
    R.FAILED: set(),
    R.CANCELED: set(),
}
RUN_CASES = [
    (f, to, "same" if f == to else ("change" if to in allowed else "refused"))
    for f, allowed in RUN_ALLOWED.items()
    for to in RunState
    if to != R.RUNTIME_STATE_UNSPECIFIED
]


@pytest.mark.parametrize(("current", "new", "expected"), RUN_CASES)
def test_run_transitions(current: RunState, new: RunState, expected: str) -> None:
    if expected == "refused":
        with pytest.raises(FailedPrecondition):
            run_transition(current, new)
    else:
        assert run_transition(current, new) is (expected == "change")


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ([], T.SUCCEEDED),
        ([T.SUCCEEDED, T.SKIPPED], T.SUCCEEDED),
        ([T.SUCCEEDED, T.FAILED, T.CANCELED], T.FAILED),
        ([T.SUCCEEDED, T.CANCELED], T.CANCELED),
        ([T.CACHED, T.CACHED], T.CACHED),
        ([T.CACHED, T.SUCCEEDED], T.SUCCEEDED),
        ([T.SKIPPED, T.SKIPPED], T.SKIPPED),
    ],
)
def test_roll_up(children: list[TaskState], expected: TaskState) -> None:
    assert rolled_up_state(children) == expected


@pytest.mark.parametrize(
    ("root", "current", "expected"),
    [
        (T.SUCCEEDED, R.RUNNING, R.SUCCEEDED),
        (T.CACHED, R.RUNNING, R.SUCCEEDED),
        (T.FAILED, R.RUNNING, R.FAILED),
        (T.SKIPPED, R.RUNNING, R.SKIPPED),
        (T.CANCELED, R.RUNNING, R.CANCELED),
        (T.SUCCEEDED, R.CANCELING, R.CANCELED),
    ],
)
def test_run_state_from_root(root: TaskState, current: RunState, expected: RunState) -> None:
    assert run_state_for_root(root, current) == expected
