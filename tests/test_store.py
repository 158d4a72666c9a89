"""Service-layer tests on every dialect: data built through the real services."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from kfpd.db.engine import Database
from kfpd.db.listing import ListRequest
from kfpd.db.models import Experiment
from kfpd.domain.enums import IOType, RunState, TaskState
from kfpd.domain.errors import AlreadyExists, RunIsTerminal
from kfpd.schemas.artifacts import Artifact, CreateArtifactRequest
from kfpd.schemas.experiments import ExperimentCreate
from kfpd.schemas.runs import RunCreate
from kfpd.schemas.tasks import PipelineTask
from kfpd.services import artifacts, experiments, runs, taskdata, tasks
from tests.helpers import compiled, fan_spec


def _run(db: Database, spec: dict[str, Any], name: str = "r") -> str:
    with db.write_session() as s:
        return runs.create_run(s, RunCreate(display_name=name, pipeline_spec=spec)).id


def _task(db: Database, run_id: str, **fields: Any) -> str:
    with db.write_session() as s:
        return tasks.create_task(s, run_id, PipelineTask.model_validate(fields)).id


def _state(db: Database, run_id: str) -> RunState:
    with db.read_session() as s:
        return RunState(runs.get_run(s, run_id).run.state)


@pytest.mark.parametrize("width", [24])
def test_concurrent_finishes_roll_up_without_lost_updates(db: Database, width: int) -> None:
    """Many tasks of one run finish at once: exactly one of them completes the run."""
    run_id = _run(db, fan_spec(width))
    root = _task(db, run_id, name="ROOT", type="ROOT", scope_path="root")
    ids = [
        _task(
            db, run_id, name=f"t{i}", type="RUNTIME", scope_path=f"root.t{i}", parent_task_id=root
        )
        for i in range(width)
    ]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def finish(chunk: list[str]) -> None:
        try:
            barrier.wait()
            for task_id in chunk:
                with db.write_session() as s:
                    tasks.update_task(s, run_id, task_id, PipelineTask(state=TaskState.SUCCEEDED))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _state(db, run_id) == RunState.SUCCEEDED
    with db.read_session() as s:
        view = runs.get_run(s, run_id, runs.ViewMode.FULL)
        root_row = next(t for t in view.tasks if t.name == "ROOT")
        assert TaskState(root_row.state) == TaskState.SUCCEEDED
        assert [h["state"] for h in root_row.state_history] == ["RUNNING", "SUCCEEDED"]
        assert [h["state"] for h in view.run.state_history] == ["PENDING", "RUNNING", "SUCCEEDED"]


def test_create_task_is_idempotent_and_update_merges_parameters(db: Database) -> None:
    run_id = _run(db, fan_spec(2))
    root = _task(db, run_id, name="ROOT", type="ROOT", scope_path="root")
    param = {"parameter_key": "x", "type": "OUTPUT", "value": 1, "producer": {"task_name": "t0"}}
    fields = {"name": "t0", "type": "RUNTIME", "scope_path": "root.t0", "parent_task_id": root}
    first = _task(db, run_id, **fields)
    assert _task(db, run_id, **fields) == first
    with db.write_session() as s:
        tasks.update_task(
            s, run_id, first, PipelineTask.model_validate({"outputs": {"parameters": [param]}})
        )
        newer = {**param, "value": 2}
        other = {**param, "parameter_key": "y"}
        row = tasks.update_task(
            s,
            run_id,
            first,
            PipelineTask.model_validate({"outputs": {"parameters": [newer, other]}}),
        )
        values = {p["parameter_key"]: p["value"] for p in row.output_parameters}
    assert values == {"x": 2, "y": 1}


def test_cache_lookup_matches_only_succeeded_tasks_in_the_namespace(db: Database) -> None:
    run_a = _run(db, fan_spec(2), "a")
    root = _task(db, run_a, name="ROOT", type="ROOT", scope_path="root")
    failed = _task(
        db,
        run_a,
        name="t0",
        type="RUNTIME",
        scope_path="root.t0",
        parent_task_id=root,
        cache_fingerprint="fp",
    )
    with db.write_session() as s:
        tasks.update_task(s, run_a, failed, PipelineTask(state=TaskState.FAILED))
    with db.read_session() as s:
        assert taskdata.find_cached_task(s, "", "fp") is None, "a failed task never serves a hit"
    run_b = _run(db, fan_spec(2), "b")
    root_b = _task(db, run_b, name="ROOT", type="ROOT", scope_path="root")
    running = _task(
        db,
        run_b,
        name="t0",
        type="RUNTIME",
        scope_path="root.t0",
        parent_task_id=root_b,
        cache_fingerprint="fp",
    )
    with db.read_session() as s:
        assert taskdata.find_cached_task(s, "", "fp") is None, "matchable only once SUCCEEDED"
    with db.write_session() as s:
        tasks.update_task(s, run_b, running, PipelineTask(state=TaskState.SUCCEEDED))
        _cached = tasks.create_task(
            s,
            run_b,
            PipelineTask.model_validate(
                {
                    "name": "t1",
                    "type": "RUNTIME",
                    "scope_path": "root.t1",
                    "parent_task_id": root_b,
                    "state": "CACHED",
                    "cache_fingerprint": "fp",
                }
            ),
        )
    with db.read_session() as s:
        hit = taskdata.find_cached_task(s, "", "fp")
        assert hit is not None and hit.id == running
        assert taskdata.find_cached_task(s, "other-namespace", "fp") is None


def test_artifact_reuse_and_io_types(db: Database) -> None:
    run_id = _run(db, fan_spec(1))
    root = _task(db, run_id, name="ROOT", type="ROOT", scope_path="root")
    imp = _task(db, run_id, name="t0", type="IMPORTER", scope_path="root.t0", parent_task_id=root)

    def create(**over: Any) -> str:
        req = CreateArtifactRequest(
            run_id=run_id,
            task_id=imp,
            producer_key="artifact",
            reuse_if_exists=True,
            artifact=Artifact.model_validate(
                {"name": "m", "type": "Model", "uri": "s3://b/m", "metadata": {"k": 1}}
            ),
            **over,
        )
        with db.write_session() as s:
            return artifacts.create_artifacts(s, [req])[0].id

    first = create()
    assert create() == first, "reuse_if_exists finds the same artifact"
    as_input = create(type=IOType.COMPONENT_INPUT)
    assert as_input == first
    with db.read_session() as s:
        page = artifacts.list_artifact_tasks(
            s, task_ids=[imp], run_ids=[], artifact_ids=[], io_type=None, request=ListRequest()
        )
        assert sorted(IOType(x.type).name for x in page.items) == ["COMPONENT_INPUT", "OUTPUT"]
        found = artifacts.list_artifacts(
            s,
            "",
            ListRequest(
                filter='{"predicates":[{"operation":1,"key":"uri","stringValue":"s3://b/m"}]}'
            ),
        )
        assert [a.id for a in found.items] == [first]


def test_terminate_cancels_and_guards(db: Database) -> None:
    run_id = _run(db, fan_spec(2))
    root = _task(db, run_id, name="ROOT", type="ROOT", scope_path="root")
    t0 = _task(db, run_id, name="t0", type="RUNTIME", scope_path="root.t0", parent_task_id=root)
    with db.write_session() as s:
        runs.terminate_run(s, run_id)
    assert _state(db, run_id) == RunState.CANCELED
    with db.read_session() as s:
        assert TaskState(tasks.get_task(s, run_id, t0).state) == TaskState.CANCELED
    with pytest.raises(RunIsTerminal), db.write_session() as s:
        tasks.update_task(s, run_id, t0, PipelineTask(state=TaskState.SUCCEEDED))
    with db.write_session() as s:
        runs.retry_run(s, run_id)
    assert _state(db, run_id) == RunState.RUNNING
    with db.write_session() as s:
        tasks.update_task(s, run_id, t0, PipelineTask(state=TaskState.SUCCEEDED))
        tasks.create_task(
            s,
            run_id,
            PipelineTask.model_validate(
                {
                    "name": "t1",
                    "type": "RUNTIME",
                    "scope_path": "root.t1",
                    "parent_task_id": root,
                    "state": "SUCCEEDED",
                }
            ),
        )
    assert _state(db, run_id) == RunState.SUCCEEDED


def test_keyset_pages_cover_ties_exactly_once(db: Database) -> None:
    with db.write_session() as s:
        for i in range(45):
            experiments.create_experiment(s, ExperimentCreate(display_name=f"e{i:02d}"))
        # Force ties on the sort column.
        for row in s.scalars(select(Experiment)):
            row.created_at = 1_000_000 * (int(row.display_name[1:]) // 10)
    for sort in ("created_at", "created_at desc", "display_name desc"):
        seen: list[str] = []
        token = None
        while True:
            with db.read_session() as s:
                page = experiments.list_experiments(
                    s,
                    "",
                    ListRequest(page_size=7, page_token=token, sort_by=None if token else sort),
                )
            assert page.total_size == 45
            seen += [e.display_name for e in page.items]
            token = page.next_page_token or None
            if token is None:
                break
        assert sorted(seen) == [f"e{i:02d}" for i in range(45)], sort
    with db.write_session() as s, pytest.raises(AlreadyExists):
        experiments.create_experiment(s, ExperimentCreate(display_name="e00"))


def test_spec_of_compiled_pipeline_is_accepted(db: Database) -> None:
    assert _state(db, _run(db, compiled("graph_demo"))) == RunState.PENDING


def test_exit_handler_keeps_the_run_open_after_a_failure(db: Database) -> None:
    import yaml

    from tests.conftest import CORPUS, require_corpus

    require_corpus()

    spec = yaml.safe_load(
        (CORPUS / "critical" / "pipeline_with_input_status_state.yaml").read_text()
    )
    run_id = _run(db, spec)
    root = _task(db, run_id, name="ROOT", type="ROOT", scope_path="root")
    handler = _task(
        db,
        run_id,
        name="exit-handler-1",
        type="EXIT_HANDLER",
        scope_path="root.exit-handler-1",
        parent_task_id=root,
    )
    body = _task(
        db,
        run_id,
        name="some-task",
        type="RUNTIME",
        scope_path="root.exit-handler-1.some-task",
        parent_task_id=handler,
    )
    with db.write_session() as s:
        tasks.update_task(
            s,
            run_id,
            body,
            PipelineTask.model_validate(
                {"state": "FAILED", "status_metadata": {"message": "user code raised"}}
            ),
        )
    with db.read_session() as s:
        assert TaskState(tasks.get_task(s, run_id, handler).state) == TaskState.FAILED
    assert _state(db, run_id) == RunState.RUNNING, (
        "echo-state (ALL_UPSTREAM_TASKS_COMPLETED) must still run"
    )
    exit_task = _task(
        db,
        run_id,
        name="echo-state",
        type="RUNTIME",
        scope_path="root.echo-state",
        parent_task_id=root,
    )
    with db.write_session() as s:
        tasks.update_task(s, run_id, exit_task, PipelineTask(state=TaskState.SUCCEEDED))
    assert _state(db, run_id) == RunState.FAILED
    with db.read_session() as s:
        run = runs.get_run(s, run_id).run
        assert run.error is not None and "user code raised" in run.error["message"]


def _chain_spec(length: int) -> dict[str, Any]:
    spec = fan_spec(length)
    tasks_ = spec["root"]["dag"]["tasks"]
    for i in range(1, length):
        tasks_[f"t{i}"]["dependentTasks"] = [f"t{i - 1}"]
    # Downstream-first order, the worst case for a recursive walk.
    spec["root"]["dag"]["tasks"] = dict(reversed(list(tasks_.items())))
    return spec


@pytest.mark.parametrize("length", [3, 3000])
def test_a_failure_early_in_a_chain_fails_the_run(db: Database, length: int) -> None:
    run_id = _run(db, _chain_spec(length))
    root = _task(db, run_id, name="ROOT", type="ROOT", scope_path="root")
    first = _task(db, run_id, name="t0", type="RUNTIME", scope_path="root.t0", parent_task_id=root)
    with db.write_session() as s:
        tasks.update_task(s, run_id, first, PipelineTask(state=TaskState.FAILED))
    assert _state(db, run_id) == RunState.FAILED, "downstream tasks can never start"
