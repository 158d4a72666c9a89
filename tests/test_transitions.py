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
LIVE_TASK = [T.PENDING, T.RUNNING]
TASK_CASES = (
    [(T.RUNTIME_STATE_UNSPECIFIED, to, "change") for to in [*LIVE_TASK, *FINAL_TASK]]
    + [(f, f, "same") for f in LIVE_TASK]
    + [(f, to, "change") for f in LIVE_TASK for to in [*LIVE_TASK, *FINAL_TASK] if to != f]
    + [(f, f, "same") for f in FINAL_TASK]
    + [(f, to, "refused") for f in FINAL_TASK for to in [*LIVE_TASK, *FINAL_TASK] if to != f]
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


# ---------------------------------------------------------------------------- named events

from kfpd.domain.transitions import (  # noqa: E402
    RUN_EVENTS,
    Phase,
    RunEvent,
    TaskEvent,
    phase_of,
    run_event,
    task_event,
)

P = Phase
FINAL_PHASES = {P.SUCCEEDED, P.CACHED, P.SKIPPED, P.FAILED, P.CANCELED}
# event -> the (from, to) pairs it allows; every other pair is refused.
LIVE = (P.NEW, P.PENDING, P.RUNNING)
STARTED = (P.PENDING, P.RUNNING)  # launched: running, or queued for an executor slot
TASK_EVENT_ALLOWED: dict[TaskEvent, set[tuple[Phase, Phase]]] = {
    TaskEvent.REPORT: {(f, to) for f in LIVE for to in {P.RUNNING} | FINAL_PHASES},
    TaskEvent.START: {(P.NEW, P.RUNNING)},
    TaskEvent.QUEUE: {(f, P.PENDING) for f in (P.NEW, P.RUNNING, P.AWAITING_RETRY)},
    TaskEvent.BEGIN: {(P.PENDING, P.RUNNING)},
    TaskEvent.FINISH: {(f, P.SUCCEEDED) for f in LIVE},
    TaskEvent.SKIP: {(f, P.SKIPPED) for f in LIVE},
    TaskEvent.FAIL: {(f, P.FAILED) for f in (*LIVE, P.AWAITING_RETRY)},
    TaskEvent.CACHE_HIT: {(f, P.CACHED) for f in LIVE},
    TaskEvent.ATTEMPT_FAILED: {(f, P.AWAITING_RETRY) for f in STARTED},
    TaskEvent.RELAUNCH: {(P.AWAITING_RETRY, P.RUNNING)},
    TaskEvent.RECOVER_LOST: {(f, P.FAILED) for f in STARTED},
    TaskEvent.ROLL_UP: {(P.RUNNING, to) for to in FINAL_PHASES},
    TaskEvent.CANCEL: {(f, P.CANCELED) for f in (*STARTED, P.AWAITING_RETRY)},
    TaskEvent.RESET: {(f, P.RUNNING) for f in (*LIVE, P.AWAITING_RETRY, P.FAILED, P.CANCELED)},
}
TASK_EVENT_CASES = [
    (event, f, to, (f, to) in allowed)
    for event, allowed in TASK_EVENT_ALLOWED.items()
    for f in Phase
    for to in Phase
    if not (event == TaskEvent.REPORT and f.wire == to.wire)
]


def test_every_task_event_is_in_the_matrix() -> None:
    assert set(TASK_EVENT_ALLOWED) == set(TaskEvent)


@pytest.mark.parametrize(("event", "current", "new", "allowed"), TASK_EVENT_CASES)
def test_task_events(event: TaskEvent, current: Phase, new: Phase, allowed: bool) -> None:
    if allowed:
        assert task_event(event, current, new) is True
    else:
        with pytest.raises(FailedPrecondition):
            task_event(event, current, new)


def test_a_repeated_report_changes_nothing() -> None:
    for phase in Phase:
        assert task_event(TaskEvent.REPORT, phase, phase) is False
    # AWAITING_RETRY is RUNNING on the wire: a RUNNING report keeps it waiting.
    assert task_event(TaskEvent.REPORT, P.AWAITING_RETRY, P.RUNNING) is False


@pytest.mark.parametrize(
    ("state", "history", "phase"),
    [
        (T.RUNTIME_STATE_UNSPECIFIED, [], P.NEW),
        (T.RUNNING, [], P.RUNNING),
        (T.PENDING, [{"state": "PENDING"}], P.PENDING),
        (T.PENDING, [{"state": "RUNNING"}, {"state": "FAILED"}, {"state": "PENDING"}], P.PENDING),
        (T.RUNNING, [{"state": "RUNNING"}], P.RUNNING),
        (T.RUNNING, [{"state": "RUNNING"}, {"state": "FAILED"}], P.AWAITING_RETRY),
        (T.RUNNING, [{"state": "FAILED"}, {"state": "RUNNING"}], P.RUNNING),
        (T.FAILED, [{"state": "FAILED"}], P.FAILED),
        (T.CACHED, None, P.CACHED),
    ],
)
def test_phase_of_a_row(
    state: TaskState, history: list[dict[str, str]] | None, phase: Phase
) -> None:
    assert phase_of(int(state), history) == phase
    assert phase.wire == state


RUN_EVENT_CASES = [
    (event, f, to, f == to or (f in sources and to in targets))
    for event, (sources, targets) in RUN_EVENTS.items()
    for f in RunState
    for to in RunState
]


@pytest.mark.parametrize(("event", "current", "new", "allowed"), RUN_EVENT_CASES)
def test_run_events(event: RunEvent, current: RunState, new: RunState, allowed: bool) -> None:
    if current == new:
        assert run_event(event, current, new) is False
    elif allowed:
        assert run_event(event, current, new) is True
    else:
        with pytest.raises(FailedPrecondition):
            run_event(event, current, new)


def test_retry_is_the_way_back_from_a_failed_run() -> None:
    assert run_event(RunEvent.RETRY, R.FAILED, R.RUNNING)
    assert run_event(RunEvent.RETRY, R.CANCELED, R.RUNNING)
    with pytest.raises(FailedPrecondition):
        run_event(RunEvent.RETRY, R.SUCCEEDED, R.RUNNING)
