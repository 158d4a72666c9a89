"""Read what the orchestrator needs from rows: specs, task inputs/outputs, siblings.

Task rows are plain dicts (``TaskValues``): this module is their one home — the row
constructor and the Core statements that read and write them (no ORM unit of work, so one
transaction never mixes ORM objects with Core updates). State columns change only through
the state machine (``services/state.py``).
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfpd.db.errors import is_unique_violation
from kfpd.db.models import Artifact, ArtifactTask, Run, Task
from kfpd.domain.enums import OUTPUT_IO_TYPES, ArtifactType, IOType, TaskState, TaskType
from kfpd.ir import PipelineIR, load_ir
from kfpd.orchestrator.model import ArtifactIO, ArtifactRef, Param, Sibling, TaskOutputs
from kfpd.services.common import new_id, require

TaskValues = dict[str, Any]
TASKS = cast(Table, Task.__table__)
_LINKS = cast(Table, ArtifactTask.__table__)
_ARTIFACTS = cast(Table, Artifact.__table__)
_OUTPUT_TYPES = [int(t) for t in OUTPUT_IO_TYPES]

_IR_CACHE: OrderedDict[str, PipelineIR] = OrderedDict()
_IR_CACHE_SIZE = 256
_IR_LOCK = threading.Lock()


def ir_of(session: Session, run_id: str) -> PipelineIR:
    """A run's pipeline IR, typed. A run's specs never change, so it is built once per run
    (the one IR cache of the server, least recently used out)."""
    with _IR_LOCK:
        found = _IR_CACHE.get(run_id)
        if found is not None:
            _IR_CACHE.move_to_end(run_id)
            return found
    row = session.execute(
        select(Run.pipeline_spec, Run.platform_spec).where(Run.id == run_id)
    ).first()
    ir = load_ir(row.pipeline_spec if row else None, row.platform_spec if row else None)
    with _IR_LOCK:
        _IR_CACHE[run_id] = ir
        while len(_IR_CACHE) > _IR_CACHE_SIZE:
            _IR_CACHE.popitem(last=False)
    return ir


_SELECT_TASK = select(TASKS).where(TASKS.c.id == bindparam("task_id"))
# A row without its parameter lists: a loop's inputs hold every item, and most reads of a
# group (one per finished iteration) need only its state and attributes.
_PARAMETER_COLUMNS = frozenset({"input_parameters", "output_parameters"})
_SELECT_TASK_HEAD = select(*(c for c in TASKS.c if c.key not in _PARAMETER_COLUMNS)).where(
    TASKS.c.id == bindparam("task_id")
)
_INSERT_TASK = insert(TASKS)
_UPDATE_TASK = update(TASKS).where(TASKS.c.id == bindparam("where_task_id"))


def logical_key(
    run_id: str,
    parent_id: str | None,
    scope_path: str,
    name: str,
    ttype: int,
    iteration: int | None,
) -> str | None:
    """Identity of a task within its run, so a repeated CreateTask returns the same row."""
    if not (run_id and scope_path and name and ttype):
        return None
    h = hashlib.sha256()
    for part in (run_id, parent_id or "", scope_path, name):
        raw = part.encode()
        h.update(struct.pack(">I", len(raw)) + raw)
    h.update(struct.pack(">i", ttype))
    h.update(b"\x00" if iteration is None else b"\x01" + struct.pack(">q", iteration))
    return h.hexdigest()


def find_cached_task(session: Session, namespace: str, fingerprint: str | None) -> Task | None:
    """The newest SUCCEEDED task with this fingerprint in the namespace (never a CACHED one)."""
    fp = require(fingerprint, "cache_fingerprint")
    return session.scalars(
        select(Task)
        .where(
            Task.cache_fingerprint == fp,
            Task.namespace == namespace,
            Task.state == int(TaskState.SUCCEEDED),
        )
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(1)
    ).first()


def new_task_row(
    *,
    run_id: str,
    namespace: str,
    parent_id: str | None,
    name: str,
    scope_path: str,
    ttype: int,
    created_at: int,
    display_name: str = "",
    iteration: int | None = None,
    type_attributes: dict[str, Any] | None = None,
    input_parameters: list[dict[str, Any]] | None = None,
    output_parameters: list[dict[str, Any]] | None = None,
    status_metadata: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    cache_fingerprint: str = "",
    finished_at: int = 0,
    logical_key: str | None = None,
) -> TaskValues:
    """The one constructor of a task row (before its first state change: the state machine
    moves it from RUNTIME_STATE_UNSPECIFIED)."""
    return {
        "id": new_id(),
        "run_id": run_id,
        "namespace": namespace,
        "parent_task_id": parent_id,
        "name": name,
        "display_name": display_name or name,
        "scope_path": scope_path,
        "type": ttype,
        "state": int(TaskState.RUNTIME_STATE_UNSPECIFIED),
        "state_history": [],
        "status_metadata": status_metadata,
        "type_attributes": type_attributes or {},
        "iteration_index": iteration,
        "pods": pods or [],
        "cache_fingerprint": cache_fingerprint,
        "input_parameters": input_parameters or [],
        "output_parameters": output_parameters or [],
        "created_at": created_at,
        "started_at": created_at,
        "finished_at": finished_at,
        "logical_key": logical_key,
    }


def insert_task_row(conn: Connection, task: TaskValues) -> None:
    conn.execute(_INSERT_TASK, [task])


_INSERT_TASK_UNLESS_KEY = (
    postgresql.insert(TASKS)
    .on_conflict_do_nothing(index_elements=[TASKS.c.logical_key])
    .returning(TASKS.c.id)
)


def insert_new_task_row(conn: Connection, task: TaskValues) -> bool:
    """Insert a task row; False (nothing written) when another row holds its logical key."""
    dialect = conn.dialect.name
    if dialect == "postgresql":  # a failed statement would abort the whole transaction
        return conn.execute(_INSERT_TASK_UNLESS_KEY, task).first() is not None
    try:
        insert_task_row(conn, task)
    except IntegrityError as exc:
        # SQLite never gets here (its write lock is held from BEGIN); MySQL rolls back only
        # the failed statement, so the transaction goes on.
        if dialect == "sqlite" or task["logical_key"] is None or not is_unique_violation(exc):
            raise
        return False
    return True


def update_task_row(conn: Connection, task_id: str, changes: TaskValues) -> None:
    """Write changed columns of a task row (nothing when there are none)."""
    if changes:
        conn.execute(_UPDATE_TASK, {"where_task_id": task_id, **changes})


def load_task_row(conn: Connection, task_id: str) -> TaskValues | None:
    row = conn.execute(_SELECT_TASK, {"task_id": task_id}).first()
    return dict(row._mapping) if row is not None else None


def load_task(session: Session, task_id: str) -> TaskValues | None:
    return load_task_row(session.connection(), task_id)


def load_task_head(session: Session, task_id: str) -> TaskValues | None:
    """A task row without ``input_parameters`` and ``output_parameters`` (their cost grows
    with a loop's items): enough for its state machine and attributes, not its inputs."""
    row = session.connection().execute(_SELECT_TASK_HEAD, {"task_id": task_id}).first()
    return dict(row._mapping) if row is not None else None


def task_exists(session: Session, key: str | None) -> bool:
    """A task with this logical key exists (one probe of its unique index)."""
    if key is None:
        return False
    found = session.connection().execute(select(TASKS.c.id).where(TASKS.c.logical_key == key))
    return found.first() is not None


def load_tasks(session: Session, *conditions: Any) -> list[TaskValues]:
    rows = session.connection().execute(select(TASKS).where(*conditions))
    return [dict(r._mapping) for r in rows]


def write_task(session: Session, task: TaskValues, changes: TaskValues) -> None:
    """Write changed columns of a task row (and keep the dict in step)."""
    if not changes:
        return
    task.update(changes)
    update_task_row(session.connection(), task["id"], changes)


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


def status_message(metadata: Mapping[str, Any] | None) -> str | None:
    """The message in a task's ``status_metadata`` column (free-form JSON), if any."""
    found = metadata.get("message") if metadata else None
    return None if found is None else str(found)


def with_message(metadata: Mapping[str, Any] | None, message: str) -> dict[str, Any]:
    """A task's ``status_metadata`` with its message set (other keys kept)."""
    return {**(metadata or {}), "message": message}


def iteration_count(attributes: Mapping[str, Any] | None) -> int | None:
    """A loop's item count from its ``type_attributes`` column (None before it is known)."""
    found = attributes.get("iteration_count") if attributes else None
    return int(found) if found is not None else None


def failure_message(session: Session, task: TaskValues) -> str:
    """Why a task failed; for a group, the first failed task inside it."""
    own = status_message(task["status_metadata"])
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
    return f"task {inner.name!r} failed: {status_message(inner.status_metadata) or ''}"


def sibling_of(session: Session, task: TaskValues) -> Sibling:
    return Sibling(
        task_id=task["id"],
        name=task["name"],
        type=TaskType(task["type"]),
        state=TaskState(task["state"]),
        outputs=outputs_of(session, task),
        message=failure_message(session, task),
        iteration_count=iteration_count(task["type_attributes"]),
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
