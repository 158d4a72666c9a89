"""`kfpd import-mlmd` on real ML Metadata 1.17.1 stores (tests/fixtures/mlmd, made by its
generate.py replaying KFP's driver/launcher writes), read back through the public API and the
UI's API on SQLite, PostgreSQL and MariaDB; idempotence, dry run, crash + resume and the
server's start-up gate; a MySQL-format store (MariaDB) imports the same as the SQLite one."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, delete, insert, select, text
from sqlalchemy.exc import SAWarning

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.db.mlmd_source import MlmdSource
from kfpd.db.models import Artifact, ArtifactTask, MlmdImport, Run, Task
from kfpd.services import mlmd_import
from kfpd.services.mlmd_import import ImportIncomplete, ImportOptions, import_mlmd
from kfpd.services.mlmd_validate import validate_import
from tests.conftest import DB_PREFIX, fresh_database_url
from tests.helpers import ok

FIXTURES = Path(__file__).parent / "fixtures" / "mlmd"
MLMD = f"sqlite:///{FIXTURES / 'kfp_history.sqlite'}"
KFP = f"sqlite:///{FIXTURES / 'mlpipeline.sqlite'}"
RUN_A = "7a1d0c5e-0000-4000-8000-00000000000a"
RUN_B = "7a1d0c5e-0000-4000-8000-00000000000b"
RUN_C = "7a1d0c5e-0000-4000-8000-00000000000c"
V2 = "/apis/v2beta1"


def _tasks(run: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [t for t in run["tasks"] if t["name"] == name]


def _one(run: dict[str, Any], name: str, ttype: str | None = None) -> dict[str, Any]:
    found = [t for t in _tasks(run, name) if ttype is None or t["type"] == ttype]
    assert len(found) == 1, [(t["name"], t["type"]) for t in run["tasks"]]
    return found[0]


def _artifacts(task: dict[str, Any], side: str = "outputs") -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for io in task[side].get("artifacts", []):
        out.setdefault(io["artifact_key"], []).extend(io["artifacts"])
    return out


def _snapshot(db: Database) -> dict[str, Any]:
    """Every imported row, comparable across databases (times and JSON as stored)."""
    out: dict[str, Any] = {}
    with db.read_session() as s:
        for model, order in ((Run, Run.id), (Task, Task.id), (Artifact, Artifact.id),
                             (ArtifactTask, ArtifactTask.id)):  # fmt: skip
            table = model.__table__
            cols = [c for c in table.c if c.name != "display_name_folded"]
            out[table.name] = [tuple(r) for r in s.execute(select(*cols).order_by(order))]
    return out


def test_import_reads_back_through_the_api(api: TestClient, db: Database) -> None:
    report = import_mlmd(db, ImportOptions(MLMD, KFP))
    assert report.imported == Counter(
        runs=3, tasks=33, artifacts=27, links=34, experiments=1, pipelines=1, pipeline_versions=1
    )
    assert report.skipped["artifact: already stored (shared with an earlier run)"] == 2

    a = ok(api.get(f"{V2}/runs/{RUN_A}", params={"view": "FULL"}))
    assert a["display_name"] == "nightly A" and a["state"] == "SUCCEEDED"
    assert a["experiment_id"] == "e0000000-0000-4000-8000-000000000001"
    assert a["pipeline_version_reference"]["pipeline_id"] == "p0000000-0000-4000-8000-000000000001"
    assert a["task_count"] == 24 and a["runtime_config"]["parameters"] == {"rounds": 2, "lr": 0.1}
    root = _one(a, "ROOT")
    assert root["type"] == "ROOT" and root["state"] == "SUCCEEDED"
    assert _one(a, "importer")["type"] == "IMPORTER"
    assert _one(a, "exit-handler-1")["type"] == "EXIT_HANDLER"
    # The loop, its iterations and the loop nested in each iteration.
    loop = _one(a, "for-loop-2", "LOOP")
    assert loop["type_attributes"] == {"iteration_count": "2"}
    iterations = [t for t in _tasks(a, "for-loop-2") if t["type"] == "LOOP_ITERATION"]
    assert sorted(t["type_attributes"]["iteration_index"] for t in iterations) == ["0", "1"]
    assert {t["parent_task_id"] for t in iterations} == {loop["task_id"]}
    inner_loops = [t for t in _tasks(a, "for-loop-4") if t["type"] == "LOOP"]
    assert {t["parent_task_id"] for t in inner_loops} == {t["task_id"] for t in iterations}
    evaluates = _tasks(a, "evaluate")
    assert len(evaluates) == 4 and all(t["state"] == "SUCCEEDED" for t in evaluates)
    assert evaluates[0]["scope_path"] == "root.exit-handler-1.for-loop-2.for-loop-4.evaluate"
    # If/Else: the taken branch ran, the other was not triggered (MLMD CANCELED -> SKIPPED).
    assert _one(a, "condition-branches-5")["type"] == "DAG"
    assert _one(a, "condition-6")["type"] == "CONDITION_BRANCH"
    assert _one(a, "condition-7")["state"] == "SKIPPED"
    # Metrics: one Metric artifact per value; classification metrics keep their struct.
    train = next(t for t in _tasks(a, "train") if t["type"] == "RUNTIME")
    assert train["cache_fingerprint"].startswith("fp-train-")
    metrics = {m["name"]: m["number_value"] for m in _artifacts(train)["metrics"]}
    assert set(metrics) == {"accuracy", "loss"} and all(
        isinstance(v, float) for v in metrics.values()
    )
    assert _artifacts(train)["model"][0]["type"] == "Model"
    with db.read_session() as s:
        sessions = {a.store_session_info["Provider"] for a in s.scalars(select(Artifact))}
    assert sessions == {"minio"}  # the launcher's store_session_info, parsed
    (confusion,) = _artifacts(evaluates[0])["confusion"]
    assert confusion["type"] == "ClassificationMetric"
    assert confusion["metadata"]["confusionMatrix"]["struct"]["rows"][1] == {"row": [2.0, 7.0]}
    # Links keep the event's path key and the IO type that matches where the artifact came from.
    preprocess = _one(a, "preprocess")
    (consumed,) = _artifacts(train, "inputs")["data"]
    (produced,) = _artifacts(preprocess)["train_data"]
    assert consumed["artifact_id"] == produced["artifact_id"]
    inputs = train["inputs"]["artifacts"]
    assert (
        inputs[0]["type"] == "TASK_OUTPUT_INPUT"
        and inputs[0]["producer"]["task_name"] == "preprocess"
    )
    assert preprocess["inputs"]["parameters"] == [
        {"value": 2, "type": "COMPONENT_INPUT", "parameter_key": "rounds"}
    ]
    assert preprocess["outputs"]["parameters"][0]["value"] == 120
    (logs,) = _artifacts(preprocess)["executor-logs"]  # as kfpd records its own tasks' logs
    assert logs["uri"].endswith("/preprocess/executor-logs") and logs["type"] == "Artifact"

    b = ok(api.get(f"{V2}/runs/{RUN_B}", params={"view": "FULL"}))
    assert b["state"] == "FAILED" and "train-check" in b["error"]["message"]
    hit = _one(b, "preprocess")
    assert hit["state"] == "CACHED" and hit["cache_fingerprint"] == "fp-preprocess-a"
    # A cache hit's republished artifact and the importer's reused artifact are the same rows.
    assert _artifacts(hit)["train_data"][0]["artifact_id"] == produced["artifact_id"]
    assert (
        _artifacts(_one(b, "importer"))["artifact"][0]["artifact_id"]
        == _artifacts(_one(a, "importer"))["artifact"][0]["artifact_id"]
    )
    side = _one(b, "side-job")
    assert (
        side["state"] == "FAILED" and "RUNNING in ML Metadata" in side["status_metadata"]["message"]
    )
    assert _one(b, "train-check")["state"] == "FAILED"
    assert _one(b, "train-check").get("cache_fingerprint") is None  # only successful ones kept
    assert (
        _one(b, "exit-handler-1")["state"] == "FAILED"
        and _one(b, "cleanup")["state"] == "SUCCEEDED"
    )

    # Run C had no KFP row: built from MLMD alone.
    c = ok(api.get(f"{V2}/runs/{RUN_C}", params={"view": "FULL"}))
    assert c["state"] == "SUCCEEDED" and c["display_name"] == "other-000c"
    assert c.get("experiment_id") is None and c["runtime_config"]["pipeline_root"].endswith(RUN_C)
    # No IR in MLMD: a spec of the run's shape lets the UI draw it.
    spec = ok(api.get(f"/ui/api/runs/{RUN_C}/graph", params={"spec": "true"}))["spec"]
    assert spec["sdkVersion"] == "kfpd-mlmd-import"
    assert list(spec["root"]["dag"]["tasks"]) == ["score"]
    listed = ok(api.get(f"{V2}/runs", params={"page_size": 10}))
    assert {r["run_id"] for r in listed["runs"]} == {RUN_A, RUN_B, RUN_C}

    # Tasks, artifacts, links and lineage endpoints.
    tasks = ok(api.get(f"{V2}/runs/{RUN_A}/tasks", params={"page_size": 100}))
    assert tasks["total_size"] == 24
    arts = ok(api.get(f"{V2}/artifacts", params={"page_size": 100}))
    assert arts["total_size"] == 27  # 12 of them executor-logs
    links = ok(
        api.get(
            f"{V2}/artifact_tasks",
            params={"artifact_ids": produced["artifact_id"], "page_size": 50},
        )
    )
    kinds = Counter(link["type"] for link in links["artifact_tasks"])
    # Made by A, republished by B's cache hit; read by both trains of A and by B's check.
    assert kinds == Counter(OUTPUT=2, TASK_OUTPUT_INPUT=3)
    lineage = ok(
        api.get(f"{V2}/artifacts/{produced['artifact_id']}/lineage", params={"max_hops": 1})
    )
    names = {n.get("name") for n in lineage["nodes"] if n["kind"] == "TASK"}
    assert {"preprocess", "train"} <= names
    # The UI's own endpoints.
    graph = ok(api.get(f"/ui/api/runs/{RUN_A}/graph"))
    assert len(graph["tasks"]) == 24
    ui_metrics = ok(api.get(f"/ui/api/runs/{RUN_A}/metrics"))
    assert ui_metrics and "accuracy" in str(ui_metrics)
    validation = validate_import(db, MLMD, KFP)
    assert validation.differences == []
    assert validation.counts == {"runs": (3, 3), "tasks": (33, 33), "edges": (34, 34)}


def test_dry_run_writes_nothing_and_a_second_import_changes_nothing(db: Database) -> None:
    dry = import_mlmd(db, ImportOptions(MLMD, KFP, dry_run=True))
    assert _snapshot(db) == {"runs": [], "tasks": [], "artifacts": [], "artifact_tasks": []}
    with db.read_session() as s:
        assert s.scalars(select(MlmdImport)).all() == []
    first = import_mlmd(db, ImportOptions(MLMD, KFP))
    assert dry.imported == first.imported and dry.skipped == first.skipped
    before = _snapshot(db)
    again = import_mlmd(db, ImportOptions(MLMD, KFP))
    assert sum(again.imported.values()) == 0 and again.skipped["run: already imported"] == 3
    assert _snapshot(db) == before
    with db.read_session() as s:
        (row,) = s.scalars(select(MlmdImport)).all()
        assert row.state == mlmd_import.IMPORT_COMPLETE and row.report is not None


def test_namespace_selects_runs(db: Database) -> None:
    report = import_mlmd(db, ImportOptions(MLMD, namespace="team-b"))
    assert report.imported["runs"] == 1
    with db.read_session() as s:
        assert s.scalars(select(Run.id)).all() == [RUN_C]
        assert s.scalars(select(Run.namespace)).all() == ["team-b"]
    assert validate_import(db, MLMD, namespace="team-b").differences == []


def test_validation_prints_differences(db: Database) -> None:
    import_mlmd(db, ImportOptions(MLMD))
    with db.write_session() as s:
        link = s.scalars(select(ArtifactTask).where(ArtifactTask.run_id == RUN_C)).first()
        assert link is not None
        s.execute(delete(ArtifactTask).where(ArtifactTask.id == link.id))
    differences = validate_import(db, MLMD).differences
    assert len(differences) == 1 and "1 lineage edges missing" in differences[0], differences


def test_crash_resumes_and_the_server_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'kfpd.sqlite'}"
    upgrade(url)
    db = Database(url)
    original = mlmd_import.Importer._write
    calls: list[int] = []

    def crash_on_second_batch(self: mlmd_import.Importer, batch: list[Any]) -> None:
        if batch:
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("killed")
        original(self, batch)

    monkeypatch.setattr(mlmd_import.Importer, "_write", crash_on_second_batch)
    with pytest.raises(RuntimeError, match="killed"):
        import_mlmd(db, ImportOptions(MLMD, KFP, batch_executions=1))  # one run per batch
    with db.read_session() as s:
        assert s.scalars(select(Run.id)).all() == [RUN_A]  # the first batch was committed
    with pytest.raises(ImportIncomplete) as refused:
        create_app(Settings(data_dir=tmp_path, db_url=url, orchestrate=False))
    message = str(refused.value)
    assert "kfpd import-mlmd --mlmd-db" in message and "--kfp-db" in message
    monkeypatch.setattr(mlmd_import.Importer, "_write", original)
    resumed = import_mlmd(db, ImportOptions(MLMD, KFP, batch_executions=1))
    assert resumed.imported["runs"] == 2 and resumed.skipped["run: already imported"] == 1
    assert validate_import(db, MLMD, KFP).differences == []
    create_app(Settings(data_dir=tmp_path, db_url=url, orchestrate=False))  # the gate opens
    clean = Database(f"sqlite:///{tmp_path / 'clean.sqlite'}")
    upgrade(str(clean.url))
    import_mlmd(clean, ImportOptions(MLMD, KFP))
    assert _snapshot(db) == _snapshot(clean)
    db.dispose()
    clean.dispose()


def _copy_to_mariadb(tmp_path: Path, worker_id: str) -> str:
    """Create MLMD's MySQL schema (as ml-metadata made it on MariaDB) and copy the rows."""
    url = fresh_database_url("mariadb", tmp_path, f"{DB_PREFIX}_mlmd_store_{worker_id}")
    target = create_engine(url)
    source = create_engine(MLMD)
    try:
        with target.begin() as conn:
            for ddl in (FIXTURES / "mlmd_mysql_schema.sql").read_text().split(";"):
                body = "\n".join(x for x in ddl.splitlines() if not x.startswith("--")).strip()
                if body:
                    conn.execute(text(body))
        meta = MetaData()
        with warnings.catch_warnings():  # MLMD declares TINYINT(1) columns in SQLite
            warnings.simplefilter("ignore", SAWarning)
            meta.reflect(source)
        with source.connect() as read, target.begin() as write:
            for table in meta.sorted_tables:
                if table.name == "sqlite_sequence":
                    continue
                rows = [dict(r._mapping) for r in read.execute(select(table))]
                if rows:
                    write.execute(insert(table), rows)  # same names in both schemas
    finally:
        target.dispose()
        source.dispose()
    return url


def test_a_mysql_format_store_imports_the_same(tmp_path: Path, worker_id: str) -> None:
    mysql_store = _copy_to_mariadb(tmp_path, worker_id)
    assert MlmdSource(mysql_store).schema_version == MlmdSource(MLMD).schema_version == 10
    results = []
    for name, store in (("from_sqlite", MLMD), ("from_mysql", mysql_store)):
        db = Database(f"sqlite:///{tmp_path / (name + '.sqlite')}")
        upgrade(str(db.url))
        report = import_mlmd(db, ImportOptions(store, KFP))
        assert validate_import(db, store, KFP).differences == []
        results.append((report.imported, report.skipped, _snapshot(db)))
        db.dispose()
    assert results[0] == results[1]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"])
def test_rows_stored_before_0008_survive_it(dialect: str, tmp_path: Path, worker_id: str) -> None:
    url = fresh_database_url(dialect, tmp_path, f"{DB_PREFIX}_mlmd_migrate_{worker_id}")
    upgrade(url, "0005")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (id, namespace, display_name, description, pipeline_name,"
                    " pipeline_spec, spec_inline, runtime_config, service_account, storage_state,"
                    " state, state_history, created_at, scheduled_at, finished_at)"
                    " VALUES ('r1', '', 'kept', '', '', '{}', 1, '{}', '', 1, 3, '[]', 1, 0, 0)"
                )
            )
        upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT display_name FROM runs")).scalar_one() == "kept"
            assert conn.execute(text("SELECT COUNT(*) FROM mlmd_imports")).scalar_one() == 0
    finally:
        engine.dispose()
    db = Database(url)
    try:
        mlmd_import.check_no_incomplete_import(db)  # nothing imported: the gate is open
    finally:
        db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the lookup is SQL-agnostic
def test_imported_history_is_no_cache_source_for_new_runs(
    db: Database, orchestrated_server: Any
) -> None:
    """Imported fingerprints are kept and found by an exact lookup, but kfpd computes its own
    keys (canonical JSON over kfpd artifact ids; upstream hashed its cache key over MLMD ids),
    so a new run launches its tasks instead of reusing imported results."""
    from kfpd.client.http import KfpdClient
    from kfpd.services.taskdata import find_cached_task
    from tests.fake_executor import FunctionExecutor
    from tests.test_orchestrator import wait_final
    from tests.test_run_lifecycle import _start

    import_mlmd(db, ImportOptions(MLMD, KFP))
    with db.read_session() as s:
        imported = set(
            s.scalars(select(Task.cache_fingerprint).where(Task.cache_fingerprint != ""))
        )
    assert imported == {"fp-preprocess-a", "fp-train-0", "fp-train-1", "fp-score"}
    executor = FunctionExecutor(
        {
            "make_dataset": lambda _p: {},
            "read_dataset": lambda p: {"Output": p["__artifacts__"]["data"][0]},
        }
    )
    with db.read_session() as s:  # the lookup a cacheable task makes (the launcher's findCached)
        found = find_cached_task(s, "team-b", "fp-score")
        assert found is not None and found.name == "score" and found.run_id == RUN_C
    url = orchestrated_server(executor)
    with KfpdClient(url) as client:
        run = wait_final(client, _start(client, "lifecycle:cacheable", text="x"))
    assert run.state is not None and run.state.name == "SUCCEEDED"
    runtime = [t for t in run.tasks or [] if t.type is not None and t.type.name == "RUNTIME"]
    assert runtime and all(t.state is not None and t.state.name == "SUCCEEDED" for t in runtime)
    assert len(executor.launched) == 2
    assert not {t.cache_fingerprint for t in runtime} & imported


def _execution(type_name: str, task_name: str, state: str = "COMPLETE", **props: Any) -> Any:
    from kfpd.db.mlmd_source import Execution

    return Execution(1, type_name, state, None, 1, 2, {"task_name": task_name, **props})


@pytest.mark.parametrize(
    ("type_name", "task_name", "props", "expected"),
    [
        ("system.DAGExecution", "", {}, "ROOT"),
        ("system.DAGExecution", "for-loop-2", {"parent_dag_id": 1, "iteration_count": 3}, "LOOP"),
        (
            "system.DAGExecution",
            "for-loop-2",
            {"parent_dag_id": 1, "iteration_index": 0},
            "LOOP_ITERATION",
        ),
        ("system.DAGExecution", "condition-3", {"parent_dag_id": 1}, "CONDITION_BRANCH"),
        ("system.DAGExecution", "condition-branches-1", {"parent_dag_id": 1}, "DAG"),
        ("system.DAGExecution", "exit-handler-1", {"parent_dag_id": 1}, "EXIT_HANDLER"),
        ("system.DAGExecution", "inner-pipeline", {"parent_dag_id": 1}, "DAG"),
        ("system.ContainerExecution", "train", {"parent_dag_id": 1}, "RUNTIME"),
        ("system.ImporterExecution", "importer", {"parent_dag_id": 1}, "IMPORTER"),
        ("system.ImporterWorkspaceExecution", "importer", {"parent_dag_id": 1}, "IMPORTER"),
    ],
)
def test_task_types_by_execution_type_and_task_name(
    type_name: str, task_name: str, props: dict[str, Any], expected: str
) -> None:
    from kfpd.services.mlmd_mapping import task_type

    assert task_type(_execution(type_name, task_name, **props)).name == expected


def test_states_and_roll_up() -> None:
    from kfpd.domain.enums import TaskState
    from kfpd.services.mlmd_mapping import leaf_state, rolled_up

    states = {s: leaf_state(_execution("system.ContainerExecution", "t", s)) for s in
              ("COMPLETE", "CACHED", "FAILED", "CANCELED", "RUNNING", "NEW")}  # fmt: skip
    assert {k: v[0].name for k, v in states.items()} == {
        "COMPLETE": "SUCCEEDED", "CACHED": "CACHED", "FAILED": "FAILED", "CANCELED": "SKIPPED",
        "RUNNING": "FAILED", "NEW": "FAILED",
    }  # fmt: skip
    assert "NEW in ML Metadata" in states["NEW"][1] and states["COMPLETE"][1] == ""
    ok_, cached, skipped, failed = (TaskState.SUCCEEDED, TaskState.CACHED, TaskState.SKIPPED,
                                    TaskState.FAILED)  # fmt: skip
    assert rolled_up([cached, cached]) == cached
    assert rolled_up([cached, ok_, skipped]) == ok_
    assert rolled_up([skipped, skipped]) == skipped
    assert rolled_up([ok_, failed, cached]) == failed


def test_struct_properties_decode() -> None:
    import base64

    from google.protobuf import struct_pb2

    from kfpd.db.mlmd_source import decode_struct

    message = struct_pb2.Struct()
    message.update({"lr": 0.1, "name": "x", "nested": {"a": [1, 2]}})
    text = "mlmd-struct::" + base64.b64encode(message.SerializeToString()).decode()
    assert decode_struct(text) == {"lr": 0.1, "name": "x", "nested": {"a": [1.0, 2.0]}}
