"""Read what the orchestrator needs from rows: specs, task inputs/outputs, siblings."""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, ArtifactTask, Run, Task
from kfpd.domain.enums import OUTPUT_IO_TYPES, ArtifactType, IOType, TaskState, TaskType
from kfpd.orchestrator.model import ArtifactIO, ArtifactRef, Param, Sibling, TaskOutputs

_OUTPUT_TYPES = [int(t) for t in OUTPUT_IO_TYPES]

_SPEC_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_SPEC_LOCK = threading.Lock()


def spec_of(session: Session, run_id: str) -> dict[str, Any]:
    """A run's pipeline spec (immutable, so cached by run id)."""
    with _SPEC_LOCK:
        if run_id in _SPEC_CACHE:
            _SPEC_CACHE.move_to_end(run_id)
            return _SPEC_CACHE[run_id]
    spec = session.scalar(select(Run.pipeline_spec).where(Run.id == run_id)) or {}
    with _SPEC_LOCK:
        _SPEC_CACHE[run_id] = spec
        while len(_SPEC_CACHE) > 256:
            _SPEC_CACHE.popitem(last=False)
    return spec


def artifact_ref(row: Artifact) -> ArtifactRef:
    return ArtifactRef(
        artifact_id=row.id,
        name=row.name,
        uri=row.uri or "",
        type=ArtifactType(row.type),
        metadata=dict(row.metadata_ or {}),
        number_value=row.number_value,
    )


def _group_links(rows: list[tuple[ArtifactTask, Artifact]]) -> list[ArtifactIO]:
    grouped: dict[tuple[str, int, str | None, int], list[ArtifactRef]] = defaultdict(list)
    for link, artifact in rows:
        producer = (link.producer or {}).get("task_name")
        grouped[(link.key, link.type, producer, link.iteration)].append(artifact_ref(artifact))
    return [
        ArtifactIO(key, tuple(arts), IOType(io_type), producer, None if it < 0 else it)
        for (key, io_type, producer, it), arts in grouped.items()
    ]


def links_of(
    session: Session, task_ids: list[str], *, outputs: bool
) -> dict[str, list[ArtifactIO]]:
    """Input (or output) artifacts of tasks, grouped per task and key."""
    if not task_ids:
        return {}
    session.flush()  # sessions do not autoflush: links added in this step must be seen
    kind = (
        ArtifactTask.type.in_(_OUTPUT_TYPES) if outputs else ArtifactTask.type.notin_(_OUTPUT_TYPES)
    )
    rows = session.execute(
        select(ArtifactTask, Artifact)
        .join(Artifact, Artifact.id == ArtifactTask.artifact_id)
        .where(ArtifactTask.task_id.in_(task_ids), kind)
        .order_by(ArtifactTask.created_at, ArtifactTask.id)
    ).all()
    per_task: dict[str, list[tuple[ArtifactTask, Artifact]]] = defaultdict(list)
    for link, artifact in rows:
        per_task[link.task_id].append((link, artifact))
    return {task_id: _group_links(items) for task_id, items in per_task.items()}


def params(entries: list[dict[str, Any]] | None) -> list[Param]:
    return [Param.from_json(e) for e in entries or []]


def outputs_of(session: Session, task: Task) -> TaskOutputs:
    arts = links_of(session, [task.id], outputs=True).get(task.id, [])
    return TaskOutputs(params=params(task.output_parameters), artifacts=arts)


def failure_message(session: Session, task: Task) -> str:
    """Why a task failed; for a group, the first failed task inside it."""
    own = (task.status_metadata or {}).get("message")
    if own or task.state != TaskState.FAILED or task.type == TaskType.RUNTIME:
        return str(own or "")
    inner = session.scalars(
        select(Task)
        .where(
            Task.run_id == task.run_id,
            Task.state == int(TaskState.FAILED),
            Task.scope_path.startswith(task.scope_path + ".", autoescape=True),
            Task.status_metadata.is_not(None),
        )
        .order_by(Task.finished_at, Task.id)
        .limit(1)
    ).first()
    if inner is None:
        return ""
    return f"task {inner.name!r} failed: {(inner.status_metadata or {}).get('message', '')}"


def sibling_of(session: Session, task: Task) -> Sibling:
    message = failure_message(session, task)
    count = (task.type_attributes or {}).get("iteration_count")
    return Sibling(
        task_id=task.id,
        name=task.name,
        type=TaskType(task.type),
        state=TaskState(task.state),
        outputs=outputs_of(session, task),
        message=str(message),
        iteration_count=int(count) if count is not None else None,
    )


def child_named(session: Session, parent_id: str, name: str) -> Task | None:
    session.flush()
    return session.scalars(
        select(Task)
        .where(Task.parent_task_id == parent_id, Task.name == name)
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(1)
    ).first()
