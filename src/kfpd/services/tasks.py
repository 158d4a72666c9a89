"""Tasks: the run graph. Every task state change passes through :class:`_Writer`, under the
run's row lock, which applies the transition rules and rolls status up to parents and the run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import Artifact, ArtifactTask, Run, Task
from kfpd.domain.enums import (
    IOType,
    TaskState,
    TaskType,
)
from kfpd.domain.errors import InvalidArgument, NotFound
from kfpd.domain.timeutil import now_us, parse_rfc3339
from kfpd.domain.transitions import TaskEvent
from kfpd.schemas.tasks import IOParameter, PipelineTask
from kfpd.services import artifacts as artifacts_svc
from kfpd.services.common import (
    LockedRun,
    detached,
    lock_run_for_writes,
    require,
    writable_run,
)
from kfpd.services.state import FINISHING_PARENT, SIBLING_COLUMNS, RunMachine, SiblingProbe
from kfpd.services.taskdata import (
    TaskValues,
    insert_new_task_row,
    load_task_row,
    logical_key,
    new_task_row,
    update_task_row,
)

TASK_FIELDS: dict[str, Field] = {
    "task_id": Field(Task.id),
    "name": Field(Task.name),
    "display_name": Field(Task.display_name),
    "run_id": Field(Task.run_id, sortable=False),
    "cache_fingerprint": Field(Task.cache_fingerprint, sortable=False),
    "create_time": Field(Task.created_at, "timestamp"),
    "start_time": Field(Task.started_at, "timestamp"),
    "end_time": Field(Task.finished_at, "timestamp"),
    "status": Field(Task.state, "enum", TaskState),
    "state": Field(Task.state, "enum", TaskState),
    "type": Field(Task.type, "enum", TaskType),
    "parent_task_id": Field(Task.parent_task_id, sortable=False),
    "scope_path": Field(Task.scope_path, sortable=False),
}

# IO types whose parameters are told apart by value when they carry no iteration.
_VALUE_KEYED = {
    IOType.COLLECTED_INPUTS,
    IOType.ITERATOR_INPUT,
    IOType.ITERATOR_INPUT_RAW,
    IOType.ITERATOR_OUTPUT,
}


# ---------------------------------------------------------------------------- helpers


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _param_json(p: IOParameter) -> dict[str, Any]:
    return {**p.dump(), "value": p.value}


def _param_key(p: dict[str, Any]) -> str:
    producer = p.get("producer") or {}
    key = f"{p.get('type', '')}-{p.get('parameter_key', '')}"
    if producer.get("task_name"):
        key += f"-{producer['task_name']}"
        if producer.get("iteration") is not None:
            key += f"-{producer['iteration']}"
    try:
        io_type = IOType.parse(p.get("type", 0))
    except ValueError:
        io_type = IOType.UNSPECIFIED
    if io_type in _VALUE_KEYED and producer.get("iteration") is None:
        digest = hashlib.sha256(
            json.dumps(p.get("value"), sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        key += f"-{digest}"
    return key


def merge_parameters(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge parameter lists; an entry with the same identity is replaced by the newer one."""
    merged = {_param_key(p): p for p in old}
    for p in new:
        merged[_param_key(p)] = p
    return list(merged.values())


def _check_parameters(params: list[IOParameter] | None, what: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in params or []:
        if not p.parameter_key:
            raise InvalidArgument(f"{what}: every parameter needs a parameter_key")
        if p.type is None or p.type == IOType.UNSPECIFIED:
            raise InvalidArgument(f"{what}: parameter {p.parameter_key!r} needs an IO type")
        out.append(_param_json(p))
    return out


def _time_or_none(value: str | None, what: str) -> int | None:
    if not value:
        return None
    try:
        return parse_rfc3339(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc.message}") from exc


# ---------------------------------------------------------------------------- statements

# The write paths work on plain row dicts (services/taskdata.py) with prebuilt Core statements:
# no ORM unit of work or identity map per request. The Task objects they return are detached
# snapshots of the rows as written; states change only through services/state.py.


_TASKS = cast(Table, Task.__table__)
_T = _TASKS.c
_SELECT_TASKS = select(_TASKS).where(_T.id.in_(bindparam("task_ids", expanding=True)))
# CreateTask's two lookups in one statement: the parent (by id) and an earlier create (by key).
_SELECT_PARENT_AND_SAME = select(_T.id, _T.run_id, _T.logical_key).where(
    or_(_T.id == bindparam("parent_id"), _T.logical_key == bindparam("key"))
)
_SELECT_TASK_RUN = select(_T.run_id).where(_T.id == bindparam("task_id"))
_SELECT_KEY = select(_T.id).where(_T.logical_key == bindparam("key"))


def _task_id_of_key(conn: Connection, key: str | None) -> str:
    found = conn.execute(_SELECT_KEY, {"key": key}).scalar() if key is not None else None
    if found is None:  # the INSERT said the key was taken
        raise RuntimeError(f"no task holds logical key {key!r}")
    return str(found)


def load_task_in_run(conn: Connection, run_id: str, task_id: str) -> TaskValues:
    """A task row as a dict (404 unless it belongs to ``run_id``)."""
    task = load_task_row(conn, require(task_id, "task_id"))
    if task is None or task["run_id"] != run_id:
        raise NotFound(f"task {task_id!r} not found in run {run_id}")
    return task


_RUNS = cast(Table, Run.__table__)
_LINKS = cast(Table, ArtifactTask.__table__)
_ARTIFACTS = cast(Table, Artifact.__table__)
_TASK_KEYS = tuple(_TASKS.c.keys())
_LINK_KEYS = tuple(_LINKS.c.keys())
_ARTIFACT_KEYS = tuple(_ARTIFACTS.c.keys())
# A finishing task in one statement: its row, its stored links with their artifacts (one row
# each; the reply lists them) and what the roll-up needs of its parent (SIBLING_COLUMNS).
# Unordered: the reply orders its few links in Python (artifacts.hydration_of); an ORDER BY on
# the joined links made MariaDB build a temporary table and sort it, 0.33 of the statement's
# 0.89 ms there (SHOW PROFILE).
_FINISHING = (
    select(
        _TASKS,
        *SIBLING_COLUMNS,
        *(c.label(f"link_{c.key}") for c in _LINKS.c),
        *(c.label(f"art_{c.key}") for c in _ARTIFACTS.c),
    )
    .select_from(
        _TASKS.outerjoin(FINISHING_PARENT, FINISHING_PARENT.c.id == _T.parent_task_id)
        .outerjoin(_LINKS, _LINKS.c.task_id == _T.id)
        .outerjoin(_ARTIFACTS, _ARTIFACTS.c.id == _LINKS.c.artifact_id)
    )
    .where(_T.id == bindparam("task_id"))
)
# SQLite: the run's columns too (BEGIN IMMEDIATE already holds the database's write lock).
_FINISHING_WITH_RUN = (
    _FINISHING.add_columns(
        _RUNS.c.namespace.label("run_namespace"), _RUNS.c.state.label("run_state")
    )
    .join(_RUNS, _RUNS.c.id == _T.run_id)
    .where(_RUNS.c.id == bindparam("run_id"))
)


@dataclass(frozen=True)
class Finishing:
    """What a task's ``:finish`` reads under its run's lock, in one statement."""

    run: LockedRun
    task: TaskValues
    parent: SiblingProbe | None  # for the roll-up once the task is final
    links: list[tuple[TaskValues, TaskValues]]  # stored (link, artifact) rows, unordered


def lock_run_and_load_finishing(conn: Connection, run_id: str, task_id: str) -> Finishing:
    """:func:`lock_run_for_writes` then the task row, its links and its siblings' probe.

    On SQLite the write transaction began with BEGIN IMMEDIATE, which already holds the
    database's write lock: the run "lock" is a plain read there, and it comes with the rest in
    one statement. Elsewhere the run row is locked first, as on every write path (lock order),
    and the rest is read after the lock, so that it is what the previous writer committed."""
    ids = {"run_id": require(run_id, "run_id"), "task_id": require(task_id, "task_id")}
    if conn.dialect.name != "sqlite":
        run = lock_run_for_writes(conn, run_id)
        rows = conn.execute(_FINISHING, ids).all()
        if not rows or rows[0].run_id != run_id:
            raise NotFound(f"task {task_id!r} not found in run {run_id}")
    else:
        rows = conn.execute(_FINISHING_WITH_RUN, ids).all()
        if not rows:
            lock_run_for_writes(conn, run_id)  # raises when the run is missing or has ended
            raise NotFound(f"task {task_id!r} not found in run {run_id}")
        run = writable_run(run_id, rows[0].run_namespace, rows[0].run_state)
    first = rows[0]._mapping
    links = [
        (
            {k: m[f"link_{k}"] for k in _LINK_KEYS},
            {k: m[f"art_{k}"] for k in _ARTIFACT_KEYS},
        )
        for m in (r._mapping for r in rows)
        if m["link_id"] is not None
    ]
    task = {k: first[k] for k in _TASK_KEYS}
    return Finishing(run, task, SiblingProbe.of_row(first), links)


def _snapshot(values: TaskValues) -> Task:
    return detached(Task, values)


# ---------------------------------------------------------------------------- use cases


def create_task(
    session: Session, run_id: str, body: PipelineTask, *, one_namespace: bool = False
) -> Task:
    """CreateTask (idempotent by logical key). ``one_namespace``: see
    :func:`artifacts.create_artifact_tasks`."""
    if body.run_id and body.run_id != run_id:
        raise InvalidArgument(f"task.run_id {body.run_id!r} does not match the path's {run_id!r}")
    conn = session.connection()
    now = now_us()
    parent_id = body.parent_task_id or None
    ttype = int(body.type or TaskType.TASK_TYPE_UNSPECIFIED)
    attrs = body.type_attributes.dump() if body.type_attributes else {}
    iteration = body.type_attributes.iteration_index if body.type_attributes else None
    key = logical_key(run_id, parent_id, body.scope_path or "", body.name or "", ttype, iteration)
    run, found = _lock_run_and_find(conn, run_id, parent_id, key)
    if parent_id is not None and not any(r.id == parent_id and r.run_id == run_id for r in found):
        raise InvalidArgument(f"parent task {parent_id!r} does not exist in run {run_id}")
    links = {
        "inputs": (body.inputs.artifacts if body.inputs else None) or [],
        "outputs": (body.outputs.artifacts if body.outputs else None) or [],
    }
    for row in found:
        if key is not None and row.logical_key == key:
            existing = _snapshot(load_task_in_run(conn, run_id, row.id))
            artifacts_svc.link_task_artifacts(
                session, existing, links, new_task=False, one_namespace=one_namespace
            )
            return existing
    created = _time_or_none(body.create_time, "create_time") or now
    task = new_task_row(
        run_id=run_id,
        namespace=run.namespace,
        parent_id=parent_id,
        name=body.name or "",
        display_name=body.display_name or body.name or "",
        scope_path=body.scope_path or "",
        ttype=ttype,
        status_metadata=body.status_metadata.dump() if body.status_metadata else None,
        type_attributes=attrs,
        iteration=iteration,
        pods=[p.dump() for p in body.pods or []],
        cache_fingerprint=body.cache_fingerprint or "",
        input_parameters=_check_parameters(
            body.inputs.parameters if body.inputs else None, "inputs"
        ),
        output_parameters=_check_parameters(
            body.outputs.parameters if body.outputs else None, "outputs"
        ),
        created_at=created,
        finished_at=_time_or_none(body.end_time, "end_time") or 0,
        logical_key=key,
    )
    machine = RunMachine(session, run.id, run.state)
    change = machine.decide(
        task, TaskEvent.REPORT, body.state or TaskState.RUNNING, at=now, message=_message(body)
    )
    if not insert_new_task_row(conn, task):
        # An earlier create of the same key committed while this one waited for the lock.
        existing = _snapshot(load_task_in_run(conn, run_id, _task_id_of_key(conn, key)))
        artifacts_svc.link_task_artifacts(
            session, existing, links, new_task=False, one_namespace=one_namespace
        )
        return existing
    created_task = _snapshot(task)
    artifacts_svc.link_task_artifacts(
        session, created_task, links, new_task=True, one_namespace=one_namespace
    )
    machine.start_run(now)
    if change is not None:
        machine.settle(task, change, now)
    return created_task


_RUN_WITH_PARENT_AND_SAME = (
    select(
        _RUNS.c.namespace.label("run_namespace"),
        _RUNS.c.state.label("run_state"),
        _T.id,
        _T.run_id,
        _T.logical_key,
    )
    .select_from(
        _RUNS.outerjoin(
            _TASKS, or_(_T.id == bindparam("parent_id"), _T.logical_key == bindparam("key"))
        )
    )
    .where(_RUNS.c.id == bindparam("run_id"))
)


class _Found(NamedTuple):
    id: str
    run_id: str
    logical_key: str | None


_PARENT_TASK = _TASKS.alias("parent_task")
_SAME_KEY = _TASKS.alias("same_key")
# PostgreSQL/MySQL: the run's row lock with CreateTask's two lookups in one statement. They are
# subqueries of the run's row (only it is locked), evaluated once it is locked. A parent's id is
# only known once the transaction that created it committed, so the parent check cannot miss it.
# An earlier create of the same key can be missed in one race (its transaction committed while
# this statement waited for the lock): the INSERT then finds the key taken (insert_new_task_row).
_LOCK_RUN_AND_FIND = (
    select(
        _RUNS.c.namespace,
        _RUNS.c.state,
        select(_PARENT_TASK.c.id)
        .where(_PARENT_TASK.c.id == bindparam("parent_id"), _PARENT_TASK.c.run_id == _RUNS.c.id)
        .scalar_subquery()
        .label("parent_in_run"),
        select(_SAME_KEY.c.id)
        .where(_SAME_KEY.c.logical_key == bindparam("key"), _SAME_KEY.c.run_id == _RUNS.c.id)
        .scalar_subquery()
        .label("same_key_id"),
    )
    .where(_RUNS.c.id == bindparam("run_id"))
    .with_for_update()
)


def _lock_run_and_find(
    conn: Connection, run_id: str, parent_id: str | None, key: str | None
) -> tuple[LockedRun, list[Any]]:
    """Lock the run; find the parent task (by id) and an earlier create (by logical key).

    One statement: on SQLite (BEGIN IMMEDIATE holds the write lock already) a plain read of
    the run and both; elsewhere the run's row lock with both lookups (see _LOCK_RUN_AND_FIND)."""
    params = {"run_id": require(run_id, "run_id"), "parent_id": parent_id, "key": key}
    if conn.dialect.name != "sqlite":
        row = conn.execute(_LOCK_RUN_AND_FIND, params).first()
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        run = writable_run(run_id, row.namespace, row.state)
        found = []
        if row.parent_in_run is not None:
            found.append(_Found(row.parent_in_run, run_id, None))
        if row.same_key_id is not None:
            found.append(_Found(row.same_key_id, run_id, key))
        return run, found
    rows = conn.execute(_RUN_WITH_PARENT_AND_SAME, params).all()
    if not rows:
        raise NotFound(f"run {run_id!r} not found")
    run = writable_run(run_id, rows[0].run_namespace, rows[0].run_state)
    return run, [r for r in rows if r.id is not None]


def _message(body: PipelineTask) -> str | None:
    return body.status_metadata.message if body.status_metadata else None


def _plain_changes(body: PipelineTask) -> TaskValues:
    """Columns an UpdateTask body sets as given (no check against other rows)."""
    changes: TaskValues = {}
    if body.name:
        changes["name"] = body.name
    if body.display_name:
        changes["display_name"] = body.display_name
    if body.cache_fingerprint:
        changes["cache_fingerprint"] = body.cache_fingerprint
    if body.type:
        changes["type"] = int(body.type)
    if body.status_metadata is not None:
        changes["status_metadata"] = body.status_metadata.dump() or None
    if body.pods is not None:
        changes["pods"] = [p.dump() for p in body.pods]
    if body.type_attributes is not None:
        changes["type_attributes"] = body.type_attributes.dump()
        changes["iteration_index"] = body.type_attributes.iteration_index
    _time_or_none(body.create_time, "create_time")  # validated, never changed
    end = _time_or_none(body.end_time, "end_time")
    if end:
        changes["finished_at"] = end
    return changes


def _parent_change(conn: Connection, task: TaskValues, parent_id: str) -> str | None:
    """A new parent ("" unsets it): it must be another task of the same run."""
    if parent_id == "":
        return None
    parent_run = conn.execute(_SELECT_TASK_RUN, {"task_id": parent_id}).scalar()
    if parent_run != task["run_id"] or parent_id == task["id"]:
        raise InvalidArgument(f"parent task {parent_id!r} does not exist in run {task['run_id']}")
    return parent_id


def _parameter_changes(task: TaskValues, body: PipelineTask) -> TaskValues:
    """Reported parameters, merged into the recorded ones (same identity: the newer wins)."""
    changes: TaskValues = {}
    if body.inputs and body.inputs.parameters:
        changes["input_parameters"] = merge_parameters(
            task["input_parameters"] or [], _check_parameters(body.inputs.parameters, "inputs")
        )
    if body.outputs and body.outputs.parameters:
        changes["output_parameters"] = merge_parameters(
            task["output_parameters"] or [], _check_parameters(body.outputs.parameters, "outputs")
        )
    return changes


def _apply_update(
    machine: RunMachine,
    task: TaskValues,
    body: PipelineTask,
    now: int,
    parent: SiblingProbe | None = None,
) -> None:
    """Apply an UpdateTask body to a task row: write the changed columns, then settle."""
    conn = machine.conn
    if body.task_id and body.task_id != task["id"]:
        raise InvalidArgument(f"task.task_id {body.task_id!r} does not match the path")
    if body.run_id and body.run_id != task["run_id"]:
        raise InvalidArgument(f"task.run_id {body.run_id!r} does not match the path")
    changes = _plain_changes(body)
    if body.parent_task_id is not None:
        changes["parent_task_id"] = _parent_change(conn, task, body.parent_task_id)
    changes.update(_parameter_changes(task, body))
    task.update(changes)
    change = None
    if body.state:
        change = machine.decide(
            task, TaskEvent.REPORT, body.state, at=now, message=_message(body), changes=changes
        )
    update_task_row(conn, task["id"], changes)
    if change is not None:
        machine.settle(task, change, now, parent)


def update_task(session: Session, run_id: str, task_id: str, body: PipelineTask) -> Task:
    run = lock_run_for_writes(session.connection(), run_id)
    machine = RunMachine(session, run.id, run.state)
    task = load_task_in_run(machine.conn, run_id, task_id)
    _apply_update(machine, task, body, now_us())
    return _snapshot(task)


def update_locked(
    session: Session,
    run: LockedRun,
    task: TaskValues,
    body: PipelineTask,
    parent: SiblingProbe | None = None,
) -> Task:
    """:func:`update_task` for a caller that already holds the run's lock and read the row
    (``parent``: whether its siblings all finished, read with it: :class:`SiblingProbe`)."""
    _apply_update(RunMachine(session, run.id, run.state), task, body, now_us(), parent)
    return _snapshot(task)


def update_tasks_bulk(session: Session, run_id: str, tasks: dict[str, PipelineTask]) -> list[Task]:
    """Update several tasks of one run in one transaction (all or nothing)."""
    if not tasks:
        raise InvalidArgument("tasks must not be empty")
    if any(not k for k in tasks):
        raise InvalidArgument("task ids must not be empty")
    run = lock_run_for_writes(session.connection(), run_id)
    machine = RunMachine(session, run.id, run.state)
    conn = machine.conn
    ids = {"task_ids": list(tasks)}
    found = {r.id: r.run_id for r in conn.execute(_SELECT_TASKS, ids)}
    for task_id in tasks:
        if found.get(task_id) != run_id:
            raise NotFound(f"task {task_id!r} not found in run {run_id}")
    now = now_us()
    for task_id in sorted(tasks):
        # Read each row just before its update: an earlier update's roll-up may have changed it.
        _apply_update(machine, load_task_in_run(conn, run_id, task_id), tasks[task_id], now)
    rows = {r.id: dict(r._mapping) for r in conn.execute(_SELECT_TASKS, ids)}
    return [_snapshot(rows[k]) for k in tasks]


def _task_in_run(session: Session, run_id: str, task_id: str) -> Task:
    task = session.get(Task, require(task_id, "task_id"))
    if task is None or task.run_id != run_id:
        raise NotFound(f"task {task_id!r} not found in run {run_id}")
    return task


def get_task(session: Session, run_id: str, task_id: str) -> Task:
    if session.get(Run, require(run_id, "run_id")) is None:
        raise NotFound(f"run {run_id!r} not found")
    return _task_in_run(session, run_id, task_id)


def list_tasks(
    session: Session, run_id: str, parent_id: str | None, request: ListRequest
) -> Page[Task]:
    if session.get(Run, require(run_id, "run_id")) is None:
        raise NotFound(f"run {run_id!r} not found")
    stmt = select(Task).where(Task.run_id == run_id)
    if parent_id:
        parent = session.get(Task, parent_id)
        if parent is None or parent.run_id != run_id:
            raise InvalidArgument(f"parent task {parent_id!r} does not exist in run {run_id}")
        stmt = stmt.where(Task.parent_task_id == parent_id)
    return list_page(
        session,
        stmt,
        fields=TASK_FIELDS,
        id_field="task_id",
        default_sort="create_time",
        request=request,
        context=[run_id, parent_id or ""],
    )


def delete_run_tasks(session: Session, run_id: str) -> None:
    """Delete a run's tasks; unlinking parents first keeps MySQL's cascade depth shallow."""
    session.execute(delete(ArtifactTask).where(ArtifactTask.run_id == run_id))
    session.execute(update(Task).where(Task.run_id == run_id).values(parent_task_id=None))
    session.execute(delete(Task).where(Task.run_id == run_id))
