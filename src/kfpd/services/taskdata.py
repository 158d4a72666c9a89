"""Read what the orchestrator needs from rows: specs, task inputs/outputs, siblings.

Task rows are plain dicts (``TaskValues``), read and written with Core statements like the
task service's write path, so one transaction never mixes ORM objects with Core updates.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, ArtifactTask, Run, Task
from kfpd.domain.enums import OUTPUT_IO_TYPES, ArtifactType, IOType, TaskState, TaskType
from kfpd.orchestrator.model import ArtifactIO, ArtifactRef, Param, Sibling, TaskOutputs

TaskValues = dict[str, Any]
TASKS = cast(Table, Task.__table__)
_LINKS = cast(Table, ArtifactTask.__table__)
_ARTIFACTS = cast(Table, Artifact.__table__)
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


def load_task(session: Session, task_id: str) -> TaskValues | None:
    row = session.connection().execute(select(TASKS).where(TASKS.c.id == task_id)).first()
    return dict(row._mapping) if row is not None else None


def load_tasks(session: Session, *conditions: Any) -> list[TaskValues]:
    rows = session.connection().execute(select(TASKS).where(*conditions))
    return [dict(r._mapping) for r in rows]


def write_task(session: Session, task: TaskValues, changes: TaskValues) -> None:
    """Write changed columns of a task row (and keep the dict in step)."""
    if not changes:
        return
    task.update(changes)
    session.connection().execute(update(TASKS).where(TASKS.c.id == task["id"]).values(changes))


def _artifact_ref(row: Any) -> ArtifactRef:
    return ArtifactRef(
        artifact_id=row.artifact_id,
        name=row.name,
        uri=row.uri or "",
        type=ArtifactType(row.artifact_type),
        metadata=dict(row.metadata or {}),
        number_value=row.number_value,
    )


def links_of(
    session: Session, task_ids: list[str], *, outputs: bool
) -> dict[str, list[ArtifactIO]]:
    """Input (or output) artifacts of tasks, grouped per task and key."""
    if not task_ids:
        return {}
    link, art = _LINKS.c, _ARTIFACTS.c
    kind = link.type.in_(_OUTPUT_TYPES) if outputs else link.type.notin_(_OUTPUT_TYPES)
    rows = session.connection().execute(
        select(
            link.task_id,
            link.key,
            link.type,
            link.iteration,
            link.producer,
            art.id.label("artifact_id"),
            art.name,
            art.uri,
            art.type.label("artifact_type"),
            art.metadata,
            art.number_value,
        )
        .select_from(_LINKS.join(_ARTIFACTS, art.id == link.artifact_id))
        .where(link.task_id.in_(task_ids), kind)
        .order_by(link.created_at, link.id)
    )
    grouped: dict[str, dict[tuple[str, int, str | None, int], list[ArtifactRef]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        producer = (row.producer or {}).get("task_name")
        grouped[row.task_id][(row.key, row.type, producer, row.iteration)].append(
            _artifact_ref(row)
        )
    return {
        task_id: [
            ArtifactIO(key, tuple(arts), IOType(io_type), producer, None if it < 0 else it)
            for (key, io_type, producer, it), arts in per_key.items()
        ]
        for task_id, per_key in grouped.items()
    }


def params(entries: list[dict[str, Any]] | None) -> list[Param]:
    return [Param.from_json(e) for e in entries or []]


def outputs_of(session: Session, task: TaskValues) -> TaskOutputs:
    arts = links_of(session, [task["id"]], outputs=True).get(task["id"], [])
    return TaskOutputs(params=params(task["output_parameters"]), artifacts=arts)


def failure_message(session: Session, task: TaskValues) -> str:
    """Why a task failed; for a group, the first failed task inside it."""
    own = (task["status_metadata"] or {}).get("message")
    if own or task["state"] != TaskState.FAILED or task["type"] == TaskType.RUNTIME:
        return str(own or "")
    c = TASKS.c
    inner = (
        session.connection()
        .execute(
            select(c.name, c.status_metadata)
            .where(
                c.run_id == task["run_id"],
                c.state == int(TaskState.FAILED),
                c.scope_path.startswith(task["scope_path"] + ".", autoescape=True),
                c.status_metadata.is_not(None),
            )
            .order_by(c.finished_at, c.id)
            .limit(1)
        )
        .first()
    )
    if inner is None:
        return ""
    return f"task {inner.name!r} failed: {(inner.status_metadata or {}).get('message', '')}"


def sibling_of(session: Session, task: TaskValues) -> Sibling:
    count = (task["type_attributes"] or {}).get("iteration_count")
    return Sibling(
        task_id=task["id"],
        name=task["name"],
        type=TaskType(task["type"]),
        state=TaskState(task["state"]),
        outputs=outputs_of(session, task),
        message=failure_message(session, task),
        iteration_count=int(count) if count is not None else None,
    )


def child_named(session: Session, parent_id: str, name: str) -> TaskValues | None:
    c = TASKS.c
    row = (
        session.connection()
        .execute(
            select(TASKS)
            .where(c.parent_task_id == parent_id, c.name == name)
            .order_by(c.created_at.desc(), c.id.desc())
            .limit(1)
        )
        .first()
    )
    return dict(row._mapping) if row is not None else None
