"""Read models for the web UI: a run's graph in one light query, artifact pages with their
producers, a run's metrics. Each answers one screen with a fixed number of queries (never one
per row), so pages stay fast at 1,000 tasks per run and 200,000 artifacts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, ArtifactTask, Run, Task
from kfpd.domain.enums import ArtifactType, IOType, TaskState, TaskType
from kfpd.domain.errors import InvalidArgument
from kfpd.domain.timeutil import to_rfc3339
from kfpd.services.artifacts import PRODUCER_LINK_TYPES
from kfpd.services.common import get_or_404

# Links that make a task an artifact's producer. Group tasks carry propagated copies of their
# children's outputs; only runtime and importer tasks count as producers.
PRODUCER_TASK_TYPES = [int(TaskType.RUNTIME), int(TaskType.IMPORTER)]
METRIC_TYPES = [
    int(ArtifactType.Metric),
    int(ArtifactType.ClassificationMetric),
    int(ArtifactType.SlicedClassificationMetric),
]


def run_tasks_compact(session: Session, run_id: str) -> list[dict[str, Any]]:
    """Every task of a run with only what the graph draws (no inputs/outputs)."""
    rows = session.execute(
        select(
            Task.id,
            Task.parent_task_id,
            Task.name,
            Task.display_name,
            Task.type,
            Task.state,
            Task.iteration_index,
            Task.type_attributes,
            Task.created_at,
            Task.finished_at,
            Task.input_parameters,
        )
        .where(Task.run_id == run_id)
        .order_by(Task.created_at, Task.id)
    )
    tasks = []
    for (
        tid,
        parent,
        name,
        display,
        ttype,
        state,
        iteration,
        attrs,
        created,
        finished,
        params,
    ) in rows:
        item: dict[str, Any] = {
            "id": tid,
            "parent": parent,
            "name": name,
            "type": TaskType(ttype).name,
            "state": TaskState(state).name,
        }
        if display and display != name:
            item["display_name"] = display
        index = iteration if iteration is not None else (attrs or {}).get("iteration_index")
        if index is not None:
            item["iteration"] = int(index)
        if ttype == TaskType.LOOP_ITERATION:
            shown = iteration_item(params)
            if shown is not None:
                item["item"] = shown
        count = (attrs or {}).get("iteration_count")
        if count is not None:
            item["iteration_count"] = int(count)
        item["created"] = to_rfc3339(created)
        if finished:
            item["finished"] = to_rfc3339(finished)
        tasks.append(item)
    return tasks


ITEM_LABEL_CHARS = 60
_ITERATOR_INPUT = {IOType.ITERATOR_INPUT.name, int(IOType.ITERATOR_INPUT)}


def iteration_item(parameters: list[dict[str, Any]] | None) -> str | None:
    """A loop iteration's item, as the graph labels it (JSON, shortened)."""
    for param in parameters or []:
        if param.get("type") in _ITERATOR_INPUT and "value" in param:
            value = param["value"]
            text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            if len(text) > ITEM_LABEL_CHARS:
                text = text[: ITEM_LABEL_CHARS - 1] + "…"
            return text
    return None


def get_run_row(session: Session, run_id: str) -> Run:
    return get_or_404(session, Run, run_id, "run")


@dataclass
class Producer:
    run_id: str
    run_name: str
    task_id: str
    task_name: str
    key: str


def producers(session: Session, artifact_ids: list[str]) -> dict[str, Producer]:
    """The producing task and run of each artifact (the earliest producer link wins)."""
    if not artifact_ids:
        return {}
    rows = session.execute(
        select(
            ArtifactTask.artifact_id,
            ArtifactTask.run_id,
            Run.display_name,
            ArtifactTask.task_id,
            Task.name,
            ArtifactTask.key,
        )
        .join(Task, Task.id == ArtifactTask.task_id)
        .join(Run, Run.id == ArtifactTask.run_id)
        .where(
            ArtifactTask.artifact_id.in_(artifact_ids),
            ArtifactTask.type.in_(PRODUCER_LINK_TYPES),
            Task.type.in_(PRODUCER_TASK_TYPES),
        )
        .order_by(ArtifactTask.created_at, ArtifactTask.id)
    )
    found: dict[str, Producer] = {}
    for artifact_id, run_id, run_name, task_id, task_name, key in rows:
        found.setdefault(artifact_id, Producer(run_id, run_name, task_id, task_name, key))
    return found


@dataclass
class RunMetric:
    artifact: Artifact
    task_id: str
    task_name: str
    key: str
    iteration: int | None


def run_metrics(session: Session, run_id: str) -> list[RunMetric]:
    """The metrics artifacts a run's tasks produced (scalars and classification metrics)."""
    get_or_404(session, Run, run_id, "run")
    rows = session.execute(
        select(Artifact, ArtifactTask.task_id, Task.name, ArtifactTask.key, Task.iteration_index)
        .join(ArtifactTask, ArtifactTask.artifact_id == Artifact.id)
        .join(Task, Task.id == ArtifactTask.task_id)
        .where(
            ArtifactTask.run_id == run_id,
            ArtifactTask.type.in_(PRODUCER_LINK_TYPES),
            Task.type.in_(PRODUCER_TASK_TYPES),
            Artifact.type.in_(METRIC_TYPES),
        )
        .order_by(Task.name, Task.iteration_index, Artifact.name, Artifact.id)
    )
    seen: set[tuple[str, str]] = set()
    out: list[RunMetric] = []
    for artifact, task_id, task_name, key, iteration in rows:
        if (artifact.id, task_id) in seen:
            continue
        seen.add((artifact.id, task_id))
        out.append(RunMetric(artifact, task_id, task_name, key, iteration))
    return out


MAX_COMPARE = 10


def check_compare_ids(run_ids: list[str]) -> list[str]:
    ids = list(dict.fromkeys(x for x in run_ids if x))
    if not 1 <= len(ids) <= MAX_COMPARE:
        raise InvalidArgument(f"give 1 to {MAX_COMPARE} distinct run ids")
    return ids
