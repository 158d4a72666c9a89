"""Finished runs with tasks, artifacts and shared lineage, written with Core bulk inserts.

Used by tests/test_retention.py and bench/gc.py (100,000 runs). Run ``i`` of experiment
``e`` finished ``age_days(i)`` days ago, produced one artifact, and every ``share_every``-th
run also consumed the artifact of the run made just before it in the same experiment, so
expiring the older run must keep that artifact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert

from kfpd.db.engine import Database
from kfpd.db.models import Artifact, ArtifactTask, Experiment, Run, Task
from kfpd.domain.enums import ArtifactType, IOType, RunState, StorageState, TaskState, TaskType
from kfpd.domain.timeutil import now_us

DAY_US = 86_400 * 1_000_000


@dataclass
class Seeded:
    experiments: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # id, experiment_id, finished_at
    artifacts: dict[str, str] = field(default_factory=dict)  # run id -> artifact id it produced
    consumed: dict[str, str] = field(default_factory=dict)  # run id -> artifact id it read


def _experiment_row(exp_id: str, namespace: str, at: int) -> dict[str, Any]:
    return {
        "id": exp_id,
        "namespace": namespace,
        "display_name": f"exp-{exp_id[:8]}",
        "description": "",
        "created_at": at,
        "storage_state": int(StorageState.AVAILABLE),
        "last_run_created_at": at,
    }


def _run_row(
    run_id: str, exp_id: str, namespace: str, created: int, state: RunState
) -> dict[str, Any]:
    return {
        "id": run_id,
        "namespace": namespace,
        "experiment_id": exp_id,
        "display_name": f"run-{run_id[:8]}",
        "description": "",
        "pipeline_id": None,
        "pipeline_version_id": None,
        "pipeline_name": "seeded",
        "pipeline_spec": {},
        "platform_spec": None,
        "spec_inline": 1,
        "runtime_config": {"parameters": {}},
        "service_account": "",
        "storage_state": int(StorageState.AVAILABLE),
        "state": int(state),
        "state_history": [],
        "error": None,
        "created_at": created,
        "scheduled_at": created,
        "finished_at": created + 60_000_000 if state.is_terminal else 0,
        "recurring_run_id": None,
    }


def _task_row(
    task_id: str, run_id: str, namespace: str, parent: str | None, kind: TaskType, at: int
) -> dict[str, Any]:
    return {
        "id": task_id,
        "run_id": run_id,
        "namespace": namespace,
        "parent_task_id": parent,
        "name": "root" if parent is None else "make",
        "display_name": "root" if parent is None else "make",
        "scope_path": "" if parent is None else "make",
        "type": int(kind),
        "state": int(TaskState.SUCCEEDED),
        "state_history": [],
        "status_metadata": None,
        "type_attributes": {},
        "iteration_index": None,
        "pods": [],
        "cache_fingerprint": "",
        "input_parameters": [],
        "output_parameters": [],
        "created_at": at,
        "started_at": at,
        "finished_at": at + 1_000_000,
        "logical_key": None,
    }


def seed(
    db: Database,
    *,
    experiments: int,
    runs_per_experiment: int,
    age_days: Callable[[int], float],
    namespace: Callable[[int], str] = lambda _e: "",
    share_every: int = 10,
    uri_of: Callable[[str], str] = lambda art_id: f"file:///nonexistent/{art_id}",
    state_of: Callable[[int], RunState] = lambda _i: RunState.SUCCEEDED,
    chunk: int = 2_000,
) -> Seeded:
    """Seed ``experiments * runs_per_experiment`` runs (run index ``i`` within its experiment)."""
    now = now_us()
    out = Seeded()
    rows: dict[Any, list[dict[str, Any]]] = {Run: [], Task: [], Artifact: [], ArtifactTask: []}

    def flush(force: bool = False) -> None:
        if not force and len(rows[Run]) < chunk:
            return
        with db.write_session() as s:
            for model in (Run, Task, Artifact, ArtifactTask):
                if rows[model]:
                    s.execute(insert(model), rows[model])
                    rows[model].clear()

    with db.write_session() as s:
        for e in range(experiments):
            exp_id = str(uuid.uuid4())
            out.experiments.append(exp_id)
            s.execute(insert(Experiment), [_experiment_row(exp_id, namespace(e), now)])
    for e, exp_id in enumerate(out.experiments):
        ns = namespace(e)
        previous_artifact: str | None = None
        for i in range(runs_per_experiment):
            run_id, root_id, task_id, art_id = (str(uuid.uuid4()) for _ in range(4))
            created = now - int(age_days(i) * DAY_US) - 60_000_000
            state = state_of(i)
            rows[Run].append(_run_row(run_id, exp_id, ns, created, state))
            rows[Task].append(_task_row(root_id, run_id, ns, None, TaskType.ROOT, created))
            rows[Task].append(_task_row(task_id, run_id, ns, root_id, TaskType.RUNTIME, created))
            rows[Artifact].append(
                {
                    "id": art_id,
                    "namespace": ns,
                    "type": int(ArtifactType.Dataset),
                    "uri": uri_of(art_id),
                    "uri_hash": "",
                    "name": "data",
                    "description": "",
                    "created_at": created,
                    "last_update": created,
                    "metadata_": {},
                    "number_value": None,
                    "identity_key": None,
                }
            )
            link = {
                "task_id": task_id,
                "run_id": run_id,
                "iteration": -1,
                "producer": None,
                "created_at": created,
            }
            rows[ArtifactTask].append(
                {
                    **link,
                    "id": str(uuid.uuid4()),
                    "artifact_id": art_id,
                    "type": int(IOType.OUTPUT),
                    "key": "data",
                }
            )
            if previous_artifact is not None and share_every and i % share_every == 0:
                rows[ArtifactTask].append(
                    {
                        **link,
                        "id": str(uuid.uuid4()),
                        "artifact_id": previous_artifact,
                        "type": int(IOType.TASK_OUTPUT_INPUT),
                        "key": "prev",
                    }
                )
                out.consumed[run_id] = previous_artifact
            out.runs.append({"id": run_id, "experiment_id": exp_id, "index": i, "namespace": ns})
            out.artifacts[run_id] = art_id
            previous_artifact = art_id
            flush()
    flush(force=True)
    return out
