"""Large data for UI timings, written with Core bulk inserts (no HTTP, no ORM units of work).

Used by bench/ui.py and the browser timing test: a ~1,000-task run of the ui_demo pipeline
(its loop has ~500 iterations), a flat 1,000-task DAG, and hundreds of thousands of artifacts.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert

from kfpd.db.engine import Database
from kfpd.db.models import Artifact, ArtifactTask, Experiment, Run, Task
from kfpd.domain.enums import ArtifactType, IOType, RunState, StorageState, TaskState, TaskType
from kfpd.domain.timeutil import now_us, to_rfc3339


def _id() -> str:
    return str(uuid.uuid4())


def _history(state: str, at: int) -> list[dict[str, Any]]:
    return [
        {"update_time": to_rfc3339(at), "state": "RUNNING"},
        {"update_time": to_rfc3339(at + 1000), "state": state},
    ]


def _experiment(db: Database) -> str:
    exp_id = _id()
    with db.write_session() as s:
        s.execute(
            insert(Experiment),
            [
                {
                    "id": exp_id,
                    "namespace": "",
                    "display_name": f"bench-{exp_id[:8]}",
                    "description": "",
                    "created_at": now_us(),
                    "storage_state": int(StorageState.AVAILABLE),
                    "last_run_created_at": now_us(),
                }
            ],
        )
    return exp_id


def _run_row(
    run_id: str, exp_id: str, name: str, spec: dict[str, Any], state: RunState, at: int
) -> dict[str, Any]:
    return {
        "id": run_id,
        "namespace": "",
        "experiment_id": exp_id,
        "display_name": name,
        "description": "",
        "pipeline_id": None,
        "pipeline_version_id": None,
        "pipeline_name": "bench",
        "pipeline_spec": spec,
        "platform_spec": None,
        "spec_inline": 1,
        "runtime_config": {"parameters": {}},
        "service_account": "",
        "storage_state": int(StorageState.AVAILABLE),
        "state": int(state),
        "state_history": [{"update_time": to_rfc3339(at), "state": state.name}],
        "error": None,
        "created_at": at,
        "scheduled_at": at,
        "finished_at": at + 5_000_000 if state.is_terminal else 0,
        "recurring_run_id": None,
    }


def _task_row(
    run_id: str,
    parent: str | None,
    name: str,
    scope: str,
    ttype: TaskType,
    at: int,
    *,
    state: TaskState = TaskState.SUCCEEDED,
    iteration: int | None = None,
    attrs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": _id(),
        "run_id": run_id,
        "namespace": "",
        "parent_task_id": parent,
        "name": name,
        "display_name": name,
        "scope_path": scope,
        "type": int(ttype),
        "state": int(state),
        "state_history": _history(state.name, at),
        "status_metadata": None,
        "type_attributes": attrs or {},
        "iteration_index": iteration,
        "pods": [],
        "cache_fingerprint": "",
        "input_parameters": [],
        "output_parameters": [],
        "created_at": at,
        "started_at": at,
        "finished_at": at + 1000,
        "logical_key": None,
    }


def seed_loop_run(
    db: Database, spec: dict[str, Any], tasks: int = 1000, name: str = "bench loop run"
) -> dict[str, Any]:
    """The ui_demo graph with a loop of (tasks - 7) / 2 iterations; one iteration still RUNNING."""
    iterations = max(1, (tasks - 7) // 2)
    exp_id = _experiment(db)
    run_id = _id()
    t0 = now_us()
    rows: list[dict[str, Any]] = []

    def add(*args: Any, **kwargs: Any) -> str:
        row = _task_row(run_id, *args, **kwargs)
        rows.append(row)
        return str(row["id"])

    root = add(None, "ROOT", "root", TaskType.ROOT, t0, state=TaskState.RUNNING)
    handler = add(
        root,
        "exit-handler-1",
        "root.exit-handler-1",
        TaskType.EXIT_HANDLER,
        t0,
        state=TaskState.RUNNING,
    )
    add(handler, "make-data", "root.exit-handler-1.make-data", TaskType.RUNTIME, t0 + 1)
    loop = add(
        handler,
        "for-loop-3",
        "root.exit-handler-1.for-loop-3",
        TaskType.LOOP,
        t0 + 2,
        state=TaskState.RUNNING,
        attrs={"iteration_count": str(iterations)},
    )
    for i in range(iterations):
        state = TaskState.RUNNING if i == iterations - 1 else TaskState.SUCCEEDED
        it = add(
            loop,
            "for-loop-3",
            "root.exit-handler-1.for-loop-3",
            TaskType.LOOP_ITERATION,
            t0 + 3 + i,
            state=state,
            iteration=i,
            attrs={"iteration_index": i},
        )
        add(
            it,
            "train",
            "root.exit-handler-1.for-loop-3.train",
            TaskType.RUNTIME,
            t0 + 3 + i,
            state=state,
            iteration=i,
            attrs={"iteration_index": i},
        )
    cond = add(
        handler,
        "condition-4",
        "root.exit-handler-1.condition-4",
        TaskType.CONDITION_BRANCH,
        t0 + 5000,
    )
    add(cond, "evaluate", "root.exit-handler-1.condition-4.evaluate", TaskType.RUNTIME, t0 + 5001)
    add(root, "notify", "root.notify", TaskType.RUNTIME, t0 + 5002, state=TaskState.RUNNING)
    with db.write_session() as s:
        s.execute(insert(Run), [_run_row(run_id, exp_id, name, spec, RunState.RUNNING, t0)])
        s.execute(insert(Task), rows)
    return {"run_id": run_id, "tasks": len(rows), "iterations": iterations}


def flat_spec(tasks: int) -> dict[str, Any]:
    """An IR with one DAG of `tasks` container tasks; task i depends on task (i-1)//2."""
    dag = {}
    for i in range(tasks):
        task: dict[str, Any] = {
            "componentRef": {"name": "comp-step"},
            "taskInfo": {"name": f"step-{i}"},
        }
        if i:
            task["dependentTasks"] = [f"step-{(i - 1) // 2}"]
        dag[f"step-{i}"] = task
    return {
        "pipelineInfo": {"name": "flat"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.0",
        "root": {"dag": {"tasks": dag}},
        "components": {"comp-step": {"executorLabel": "exec-step"}},
        "deploymentSpec": {
            "executors": {"exec-step": {"container": {"image": "python:3.11", "command": ["true"]}}}
        },
    }


def seed_flat_run(db: Database, tasks: int = 1000) -> dict[str, Any]:
    exp_id = _experiment(db)
    run_id = _id()
    t0 = now_us()
    root = _task_row(run_id, None, "ROOT", "root", TaskType.ROOT, t0, state=TaskState.RUNNING)
    rows = [root] + [
        _task_row(run_id, root["id"], f"step-{i}", f"root.step-{i}", TaskType.RUNTIME, t0 + i + 1)
        for i in range(tasks - 1)
    ]
    with db.write_session() as s:
        s.execute(
            insert(Run),
            [
                _run_row(
                    run_id, exp_id, "bench flat run", flat_spec(tasks - 1), RunState.RUNNING, t0
                )
            ],
        )
        s.execute(insert(Task), rows)
    return {"run_id": run_id, "tasks": len(rows)}


ARTIFACT_TYPES = [
    ArtifactType.Dataset,
    ArtifactType.Model,
    ArtifactType.Metric,
    ArtifactType.Artifact,
]


def seed_artifacts(
    db: Database, count: int, *, batch: int = 20_000, produced_by: dict[str, Any] | None = None
) -> int:
    """`count` artifacts; the newest ones link to runtime tasks of `produced_by` (a seeded run)."""
    t0 = now_us() - count
    producers: list[tuple[str, str]] = []
    if produced_by is not None:
        with db.read_session() as s:
            producers = [
                (t.id, t.name)
                for t in s.query(Task)
                .filter(Task.run_id == produced_by["run_id"], Task.type == int(TaskType.RUNTIME))
                .limit(200)
            ]
    written = 0
    while written < count:
        n = min(batch, count - written)
        arts = []
        for k in range(n):
            i = written + k
            atype = ARTIFACT_TYPES[i % len(ARTIFACT_TYPES)]
            arts.append(
                {
                    "id": _id(),
                    "namespace": "",
                    "type": int(atype),
                    "name": f"artifact-{i:06d}",
                    "uri": None if atype == ArtifactType.Metric else f"file:///bench/{i}",
                    "uri_hash": "",
                    "description": "",
                    "created_at": t0 + i,
                    "last_update": t0 + i,
                    "metadata_": {},
                    "number_value": float(i) if atype == ArtifactType.Metric else None,
                    "identity_key": None,
                }
            )
        links = []
        if producers and written + n == count:
            for (task_id, task_name), art in zip(producers, reversed(arts), strict=False):
                links.append(
                    {
                        "id": _id(),
                        "artifact_id": art["id"],
                        "task_id": task_id,
                        "run_id": produced_by["run_id"],  # type: ignore[index]
                        "type": int(IOType.OUTPUT),
                        "iteration": -1,
                        "producer": {"task_name": task_name},
                        "key": "out",
                        "created_at": art["created_at"],
                    }
                )
        with db.write_session() as s:
            s.execute(insert(Artifact), arts)
            if links:
                s.execute(insert(ArtifactTask), links)
        written += n
    return written
