"""Every state change goes through the run state machine (services/state.py).

Each code path that changes states — launcher finish, cancel/terminate, RetryRun, server
restart recovery, cache hit, retry backoff — is run for real (orchestrated server, Python
stand-in components) while the machine's transitions are observed. Then every task row's state
history and the run's must be exactly what the observed transitions wrote: a state written
anywhere else would add an entry nobody observed. A source check keeps state columns out of
every other module. Runs on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import ast
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kfpd.client.http import KfpdClient
from kfpd.domain.transitions import RunEvent, TaskEvent
from kfpd.schemas.runs import Run
from kfpd.services import state
from tests.fake_executor import FunctionExecutor
from tests.test_orchestrator import wait_final
from tests.test_run_lifecycle import _start

SRC = Path(__file__).resolve().parents[1] / "src" / "kfpd"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[state.Transition] = []

    def __call__(self, transition: state.Transition) -> None:
        with self.lock:
            self.seen.append(transition)

    def events(self, subject: str | None = None) -> list[Any]:
        with self.lock:
            return [t.event for t in self.seen if subject is None or t.subject == subject]

    def causes(self) -> set[Any]:
        with self.lock:
            return {t.cause for t in self.seen}

    def count_by_subject(self) -> Counter[str]:
        with self.lock:
            return Counter(t.subject for t in self.seen)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    with state.observed(rec):
        yield rec


def assert_all_observed(run: Run, recorder: Recorder) -> None:
    """Each history entry of the run and its tasks is one observed transition."""
    counts = recorder.count_by_subject()
    for task in run.tasks or []:
        history = task.state_history or []
        assert len(history) == counts[task.task_id or ""], (task.name, history)
    # The run's first entry (PENDING) is written when it is created.
    assert len(run.state_history or []) == 1 + counts[run.run_id or ""]


HANDLERS = {
    "make_dataset": lambda _p: {},
    "read_dataset": lambda p: {"Output": p["__artifacts__"]["data"][0]},
}


def test_launcher_finish_and_cache_hit(orchestrated_server: Any, recorder: Recorder) -> None:
    url = orchestrated_server(FunctionExecutor(HANDLERS))
    with KfpdClient(url) as client:
        first = wait_final(client, _start(client, "lifecycle:cacheable", text="sm"))
        second = wait_final(client, _start(client, "lifecycle:cacheable", text="sm"))
    assert first.state and first.state.name == "SUCCEEDED"
    events = recorder.events()
    assert TaskEvent.REPORT in events and TaskEvent.START in events
    assert events.count(TaskEvent.CACHE_HIT) == 2  # both tasks of the second run
    assert TaskEvent.ROLL_UP in events and RunEvent.FINISH in events and RunEvent.START in events
    assert_all_observed(first, recorder)
    assert_all_observed(second, recorder)


def test_retry_backoff_then_relaunch(orchestrated_server: Any, recorder: Recorder) -> None:
    calls: list[int] = []

    def flaky(p: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return {"Output": p["x"]}

    url = orchestrated_server(FunctionExecutor({"flaky": flaky}))
    with KfpdClient(url) as client:
        run = wait_final(client, _start(client, "lifecycle:retrying", x=3))
    assert run.state and run.state.name == "SUCCEEDED", run.error
    flaky_task = next(t for t in run.tasks or [] if t.name == "flaky")
    assert recorder.events(flaky_task.task_id) == [
        TaskEvent.START,
        TaskEvent.ATTEMPT_FAILED,
        TaskEvent.RELAUNCH,
        TaskEvent.REPORT,
    ]
    assert_all_observed(run, recorder)


def test_terminate_and_retry_run(orchestrated_server: Any, recorder: Recorder) -> None:
    release = threading.Event()
    first_attempt = threading.Event()

    def slow(p: dict[str, Any]) -> dict[str, Any]:
        if not first_attempt.is_set():
            first_attempt.set()
            release.wait(30)
        return {"Output": p["seconds"]}

    url = orchestrated_server(FunctionExecutor({"slow": slow}))
    try:
        with KfpdClient(url) as client:
            run_id = _start(client, "lifecycle:slow_pipeline", seconds=1)
            assert first_attempt.wait(20)
            client.terminate_run(run_id)
            canceled = wait_final(client, run_id)
            assert canceled.state and canceled.state.name == "CANCELED"
            assert_all_observed(canceled, recorder)
            client.retry_run(run_id)
            run = wait_final(client, run_id)
    finally:
        release.set()
    assert run.state and run.state.name == "SUCCEEDED", run.error
    events = recorder.events()
    for expected in (TaskEvent.CANCEL, TaskEvent.RESET, RunEvent.TERMINATE, RunEvent.RETRY):
        assert expected in events
    assert_all_observed(run, recorder)


def test_restart_recovery(orchestrated_server: Any, recorder: Recorder) -> None:
    stuck = threading.Event()
    reading = threading.Event()

    def hang(_p: dict[str, Any]) -> dict[str, Any]:
        reading.set()
        stuck.wait(30)
        raise RuntimeError("never reported")

    url_a = orchestrated_server(
        FunctionExecutor({"make_dataset": lambda _p: {}, "read_dataset": hang})
    )
    try:
        with KfpdClient(url_a) as client:
            run_id = _start(client, "lifecycle:cacheable", text=f"lost-{time.time()}")
            assert reading.wait(20)
        orchestrated_server.stop(url_a)
        url_b = orchestrated_server(FunctionExecutor(HANDLERS))
        with KfpdClient(url_b) as client:
            run = wait_final(client, run_id)
    finally:
        stuck.set()
    assert run.state and run.state.name == "FAILED"
    assert TaskEvent.RECOVER_LOST in recorder.causes()
    assert_all_observed(run, recorder)


# Columns only the state machine writes, and the modules allowed to name them in a write.
_STATE_COLUMNS = {"state", "state_history"}
_WRITERS = {
    "services/state.py",
    "services/taskdata.py",  # the row constructor (a new row's empty state)
    "services/mlmd_mapping.py",  # copies imported MLMD history as it was (no transition)
}


def _state_writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr in _STATE_COLUMNS:
                    found.append(f"line {node.lineno}: .{target.attr} =")
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.slice, ast.Constant)
                    and target.slice.value in _STATE_COLUMNS
                ):
                    found.append(f"line {node.lineno}: [{target.slice.value!r}] =")
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and key.value == "state_history":
                    found.append(f"line {node.lineno}: {{'state_history': …}}")
    return found


def test_no_state_writes_outside_the_machine() -> None:
    offenders = {}
    # api/ builds wire dicts from rows and never writes them; engine/ goes through services.
    for path in sorted((SRC / "services").rglob("*.py")) + sorted((SRC / "engine").rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel in _WRITERS:
            continue
        writes = _state_writes(path)
        if writes:
            offenders[rel] = writes
    assert offenders == {}
