"""No run can monopolise the engine: a step that throws or runs too long fails its run with a
message, other runs keep moving, terminate answers, and stopping the engine interrupts a
stuck step. The pathological steps are injected (a busy loop stands for a run that never
stops creating work; validation rejects the known causes, this is the safety net)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kfpd.client.http import KfpdClient
from kfpd.db.models import Run as RunRow
from kfpd.schemas.runs import RunCreate
from kfpd.services import orchestration
from kfpd.services.orchestration import OrchestratorConfig, Step
from tests.fake_executor import FunctionExecutor
from tests.helpers import compiled
from tests.test_orchestrator import HANDLERS, wait_final

pytestmark = pytest.mark.needs_orchestrator


def _spin_forever() -> None:
    while True:  # pure Python: what a runaway step looks like
        pass


def _pathological_start(
    original: Callable[[Session, str, OrchestratorConfig], Step],
) -> Callable[[Session, str, OrchestratorConfig], Step]:
    def start_run(session: Session, run_id: str, config: OrchestratorConfig) -> Step:
        name = session.scalar(select(RunRow.display_name).where(RunRow.id == run_id))
        if name == "spins":
            _spin_forever()
        if name == "throws":
            raise RuntimeError("injected failure")
        return original(session, run_id, config)

    return start_run


@functools.cache
def _control_flow() -> dict[str, Any]:
    return compiled("control_flow")


def _create(client: KfpdClient, name: str) -> str:
    run = client.create_run(
        RunCreate(
            display_name=name,
            pipeline_spec=_control_flow(),
            runtime_config={"parameters": {"n": 3}},
        )
    )
    return run.run_id or ""


def test_a_runaway_or_throwing_step_fails_its_run_and_others_keep_moving(
    orchestrated_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestration, "start_run", _pathological_start(orchestration.start_run))
    url = orchestrated_server(FunctionExecutor(HANDLERS), step_timeout=3.0)
    with KfpdClient(url) as client:
        spins = _create(client, "spins")
        throws = _create(client, "throws")
        healthy = _create(client, "healthy")
        victim = _create(client, "terminated while the engine is busy")
        began = time.monotonic()
        client.terminate_run(victim)  # answers although the engine is inside a runaway step
        assert time.monotonic() - began < 8
        assert wait_final(client, healthy).state.name == "SUCCEEDED"  # type: ignore[union-attr]
        failed = wait_final(client, spins)
        terminated = wait_final(client, victim)
        thrown = wait_final(client, throws)
    assert failed.state and failed.state.name == "FAILED"
    assert failed.error and "took longer than 3 s" in (failed.error.message or "")
    assert thrown.state and thrown.state.name == "FAILED"
    assert thrown.error and "injected failure" in (thrown.error.message or "")
    assert terminated.state and terminated.state.name == "CANCELED"


def test_stopping_the_engine_interrupts_a_stuck_step(
    orchestrated_server: Any, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the engine's shutdown does not depend on the database: SQLite only")
    monkeypatch.setattr(orchestration, "start_run", _pathological_start(orchestration.start_run))
    url = orchestrated_server(FunctionExecutor(HANDLERS), step_timeout=600.0)
    with KfpdClient(url) as client:
        stuck = _create(client, "spins")
        time.sleep(0.5)  # the engine is inside the runaway step now
        began = time.monotonic()
        orchestrated_server.stop(url)
        assert time.monotonic() - began < 15, "a stuck step does not hold the shutdown"
    engines = [t for t in threading.enumerate() if t.name == "kfpd-engine"]
    assert not engines, "the runaway step was interrupted, the engine thread ended"
    del stuck
