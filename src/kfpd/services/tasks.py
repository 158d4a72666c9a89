"""Tasks: the run graph. Every task state change passes through :class:`_Writer`, under the
run's row lock, which applies the transition rules and rolls status up to parents and the run."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session, defer

from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import ArtifactTask, Run, Task
from kfpd.domain.enums import (
    GROUP_TASK_TYPES,
    OUTPUT_IO_TYPES,
    TERMINAL_TASK_STATES,
    IOType,
    RunState,
    TaskState,
    TaskType,
)
from kfpd.domain.errors import InvalidArgument, NotFound
from kfpd.domain.timeutil import now_us, parse_rfc3339, to_rfc3339
from kfpd.domain.transitions import (
    rolled_up_state,
    run_state_for_root,
    run_transition,
    task_transition,
)
from kfpd.schemas.tasks import IOParameter, PipelineTask
from kfpd.services import artifacts as artifacts_svc
from kfpd.services.common import (
    LockedRun,
    detached,
    history_entry,
    lock_run,
    lock_run_for_writes,
    new_id,
    require,
    writable_run,
)
from kfpd.services.propagation import record_group_outputs
from kfpd.spec.scope import dag_tasks, topological_order

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

# The write paths work on plain row dicts with these prebuilt Core statements: no ORM unit of
# work or identity map per request. The Task objects they return are detached snapshots of the
# rows as written; read them, and change tasks through this module.
TaskValues = dict[str, Any]

_BLOCKING = {TaskState.FAILED, TaskState.CANCELED}
_FINAL = [int(s) for s in TERMINAL_TASK_STATES]
_GROUP_TYPES = [int(t) for t in GROUP_TASK_TYPES]

_TASKS = cast(Table, Task.__table__)
_T = _TASKS.c
_SELECT_TASK = select(_TASKS).where(_T.id == bindparam("task_id"))
_SELECT_TASKS = select(_TASKS).where(_T.id.in_(bindparam("task_ids", expanding=True)))
# CreateTask's two lookups in one statement: the parent (by id) and an earlier create (by key).
_SELECT_PARENT_AND_SAME = select(_T.id, _T.run_id, _T.logical_key).where(
    or_(_T.id == bindparam("parent_id"), _T.logical_key == bindparam("key"))
)
_SELECT_TASK_RUN = select(_T.run_id).where(_T.id == bindparam("task_id"))
_INSERT_TASK = insert(_TASKS)
_UPDATE_TASK = update(_TASKS).where(_T.id == bindparam("where_task_id"))
_CHILD_COUNTS = (
    select(
        func.count().label("total"),
        func.coalesce(func.sum(case((_T.state.notin_(_FINAL), 1), else_=0)), 0).label("unfinished"),
        func.coalesce(
            func.sum(case((_T.state.in_([int(s) for s in _BLOCKING]), 1), else_=0)), 0
        ).label("blocking"),
    )
    .where(_T.parent_task_id == bindparam("parent_id"))
    .subquery("child_counts")
)
# A finish's roll-up reads its parent and the parent's child counts in one statement (only the
# parent's columns it needs: JSON columns cost a decode each).
_ROLL_UP_COLUMNS = (
    _T.id,
    _T.parent_task_id,
    _T.state,
    _T.type,
    _T.scope_path,
    _T.type_attributes,
    _T.state_history,
)
_ROLL_UP_KEYS = tuple(c.key for c in _ROLL_UP_COLUMNS)
_PARENT_WITH_COUNTS = (
    select(*_ROLL_UP_COLUMNS, _CHILD_COUNTS)
    .select_from(_TASKS.join(_CHILD_COUNTS, true()))
    .where(_T.id == bindparam("parent_id"))
)
_CHILDREN = select(_T.name, _T.state, _T.type, _T.iteration_index).where(
    _T.parent_task_id == bindparam("parent_id")
)
_FIRST_FAILED = (
    select(_T.name, _T.status_metadata)
    .where(_T.run_id == bindparam("run_id"), _T.state == int(TaskState.FAILED))
    .where(_T.type.notin_(_GROUP_TYPES))
    .order_by(_T.finished_at, _T.id)
    .limit(1)
)
_RUN_ROW_OPTIONS = [defer(Run.pipeline_spec), defer(Run.platform_spec), defer(Run.runtime_config)]


def _load_task(conn: Connection, task_id: str) -> TaskValues | None:
    row = conn.execute(_SELECT_TASK, {"task_id": task_id}).first()
    return dict(row._mapping) if row is not None else None


def load_task_in_run(conn: Connection, run_id: str, task_id: str) -> TaskValues:
    """A task row as a dict (404 unless it belongs to ``run_id``)."""
    task = _load_task(conn, require(task_id, "task_id"))
    if task is None or task["run_id"] != run_id:
        raise NotFound(f"task {task_id!r} not found in run {run_id}")
    return task


_RUNS = cast(Table, Run.__table__)
_RUN_WITH_TASK = (
    select(_RUNS.c.namespace.label("run_namespace"), _RUNS.c.state.label("run_state"), _TASKS)
    .join(_RUNS, _RUNS.c.id == _T.run_id)
    .where(_T.id == bindparam("task_id"), _RUNS.c.id == bindparam("run_id"))
)


def lock_run_and_load_task(
    conn: Connection, run_id: str, task_id: str
) -> tuple[LockedRun, TaskValues]:
    """:func:`lock_run_for_writes` then :func:`load_task_in_run`.

    On SQLite the write transaction began with BEGIN IMMEDIATE, which already holds the
    database's write lock: the run "lock" is a plain read there, and both rows come back in one
    statement. Elsewhere the run row is locked first, as on every write path (lock order)."""
    if conn.dialect.name != "sqlite":
        run = lock_run_for_writes(conn, run_id)
        return run, load_task_in_run(conn, run_id, task_id)
    ids = {"run_id": require(run_id, "run_id"), "task_id": require(task_id, "task_id")}
    row = conn.execute(_RUN_WITH_TASK, ids).first()
    if row is None:
        lock_run_for_writes(conn, run_id)  # raises when the run is missing or has ended
        raise NotFound(f"task {task_id!r} not found in run {run_id}")
    values = dict(row._mapping)
    run = writable_run(run_id, values.pop("run_namespace"), values.pop("run_state"))
    return run, values


def _snapshot(values: TaskValues) -> Task:
    return detached(Task, values)


# ---------------------------------------------------------------------------- state + roll-up


class _Writer:
    """Applies state changes for one run under its lock, rolling them up as it goes.

    The run's ORM row is loaded only when the run's own state changes (its first and its last
    task); task rows are read and written as dicts with the statements above.
    """

    def __init__(
        self, session: Session, run_id: str, run_state: RunState, run: Run | None = None
    ) -> None:
        self.session = session
        self.conn = session.connection()
        self.run_id = run_id
        self.run_state = run_state
        self._run = run

    @property
    def run(self) -> Run:
        if self._run is None:
            run = self.session.get(Run, self.run_id, options=_RUN_ROW_OPTIONS)
            if run is None:  # the caller holds its lock, so it cannot vanish
                raise NotFound(f"run {self.run_id!r} not found")
            self._run = run
        return self._run

    def set_task_state(
        self,
        task: TaskValues,
        state: TaskState,
        *,
        at: int,
        message: str | None = None,
        changes: TaskValues | None = None,
    ) -> bool:
        """Move a task row to ``state`` in memory (changed columns also go to ``changes``).

        Returns True when the task just became final: write the row, then :meth:`roll_up_from`.
        A RUNTIME task reported FAILED with retries left stays RUNNING instead (see _retry).
        """
        if not task_transition(TaskState(task["state"]), state):
            return False
        if state == TaskState.FAILED and self._retry(task, at=at, message=message, changes=changes):
            return False
        error = {"code": 2, "message": message} if message and state == TaskState.FAILED else None
        new: TaskValues = {
            "state": int(state),
            "state_history": [
                *(task["state_history"] or []),
                history_entry(to_rfc3339(at) or "", state.name, error),
            ],
        }
        if state.is_terminal and not task["finished_at"]:
            new["finished_at"] = at
        task.update(new)
        if changes is not None:
            changes.update(new)
        return state.is_terminal

    def _retry(
        self, task: TaskValues, *, at: int, message: str | None, changes: TaskValues | None
    ) -> bool:
        """Record a failed attempt and keep the task RUNNING when its retry policy allows.

        The history then ends in FAILED while the task is RUNNING: a retry is pending, and the
        orchestrator relaunches it after the policy's backoff (see retry_pending). Outputs of
        the failed attempt are dropped.
        """
        if task["type"] != TaskType.RUNTIME:
            return False
        policy = retry_policy(self.session, task)
        if policy is None or failed_attempts(task) >= policy.max_retries:
            return False
        error = {"code": 2, "message": message or "the task failed"}
        new: TaskValues = {
            "state_history": [
                *(task["state_history"] or []),
                history_entry(to_rfc3339(at) or "", TaskState.FAILED.name, error),
            ],
            "status_metadata": {**(task["status_metadata"] or {}), "message": error["message"]},
            "output_parameters": [],
        }
        task.update(new)
        if changes is not None:
            changes.update(new)
        self.conn.execute(
            delete(ArtifactTask).where(
                ArtifactTask.task_id == task["id"],
                ArtifactTask.type.in_([int(t) for t in OUTPUT_IO_TYPES]),
            )
        )
        return True

    def mark_run_running(self, at: int) -> None:
        if self.run_state == RunState.PENDING:
            self.set_run_state(RunState.RUNNING, at=at)

    def set_run_state(
        self, state: RunState, *, at: int, error: dict[str, Any] | None = None
    ) -> None:
        run = self.run
        if not run_transition(RunState(run.state), state):
            return
        run.state = int(state)
        run.state_history = [
            *run.state_history,
            history_entry(to_rfc3339(at) or "", state.name, error),
        ]
        if state.is_terminal:
            run.finished_at = at
            run.error = error
        self.run_state = state

    def roll_up_from(self, task: TaskValues, at: int) -> None:
        """After ``task`` became final (and was written): settle its parents and the run."""
        conn = self.conn
        current = task
        while True:
            if current["parent_task_id"] is None:
                if current["type"] == TaskType.ROOT:
                    self._finish_run(TaskState(current["state"]), at)
                return
            row = conn.execute(_PARENT_WITH_COUNTS, {"parent_id": current["parent_task_id"]})
            found = row.first()
            if found is None:
                return
            parent = {k: found._mapping[k] for k in _ROLL_UP_KEYS}
            if TaskState(parent["state"]).is_terminal:
                return
            verdict = self._evaluate_group(parent, found.total, found.unfinished, found.blocking)
            if verdict is None:
                return
            new: TaskValues = {
                "state": int(verdict),
                "finished_at": at,
                "state_history": [
                    *(parent["state_history"] or []),
                    history_entry(to_rfc3339(at) or "", verdict.name),
                ],
            }
            conn.execute(_UPDATE_TASK, {"where_task_id": parent["id"], **new})
            parent.update(new)
            # Declared DAG outputs go on the group before its parent is evaluated.
            record_group_outputs(self.session, self.run_id, parent)
            current = parent

    def _finish_run(self, root_state: TaskState, at: int) -> None:
        state = run_state_for_root(root_state, self.run_state)
        error = None
        if state == RunState.FAILED:
            failed = self.conn.execute(_FIRST_FAILED, {"run_id": self.run_id}).first()
            if failed is not None:
                detail = (failed.status_metadata or {}).get("message") or "failed"
                error = {"code": 2, "message": f"task {failed.name!r} failed: {detail}"}
            else:
                error = {"code": 2, "message": "the run failed"}
        self.set_run_state(state, at=at, error=error)

    def _evaluate_group(
        self, parent: TaskValues, total: int, unfinished: int, blocking: int
    ) -> TaskState | None:
        """The rolled-up state of a group task, or None while it can still change.

        ``total``, ``unfinished`` and ``blocking`` count its children: most finishes leave
        siblings still to come, and those counts settle that without reading the children.
        """
        conn = self.conn
        if unfinished:
            return None
        ptype = TaskType(parent["type"])
        if ptype not in GROUP_TASK_TYPES:
            return None
        dag = dag_of(self.session, self.run_id, parent["scope_path"])
        count = None
        if ptype == TaskType.LOOP:
            count = _int_or_none((parent["type_attributes"] or {}).get("iteration_count"))
            if count is None:
                return None
            if count == 0:
                return TaskState.SKIPPED
        expected = count if count is not None else (len(dag.order) if dag else 0)
        if not blocking and total < expected:
            return None
        children = list(conn.execute(_CHILDREN, {"parent_id": parent["id"]}))
        states = [TaskState(c.state) for c in children]
        if ptype == TaskType.LOOP:
            assert count is not None
            iteration_rows = [c for c in children if c.type == TaskType.LOOP_ITERATION]
            if iteration_rows or not children:
                if len({c.iteration_index for c in iteration_rows}) < count:
                    return None
                return rolled_up_state(states)
            # Upstream layout: an iteration's tasks hang directly under the LOOP task.
            if dag is None:
                return None
            for i in range(count):
                rows = {c.name: TaskState(c.state) for c in children if c.iteration_index == i}
                if not dag.complete(rows):
                    return None
            return rolled_up_state(states)
        if dag is None:
            return None
        if not dag.complete({c.name: TaskState(c.state) for c in children}):
            return None
        return rolled_up_state(states)


@dataclass(frozen=True)
class _Dag:
    """The tasks of one DAG component, in dependency order."""

    specs: dict[str, Any]
    order: tuple[str, ...]

    def complete(self, rows: dict[str, TaskState]) -> bool:
        """True when no task of the DAG can still start: each has a final row or never will.

        A task without a row never starts when an upstream task failed or will never start,
        unless its trigger strategy is ALL_UPSTREAM_TASKS_COMPLETED (exit handlers).
        """
        status: dict[str, str] = {}
        for name in self.order:
            if name in rows:
                status[name] = "blocked" if rows[name] in _BLOCKING else "done"
                continue
            spec = self.specs[name]
            strategy = (spec.get("triggerPolicy") or {}).get("strategy", "")
            deps = [status.get(d, "done") for d in spec.get("dependentTasks") or []]
            if strategy != "ALL_UPSTREAM_TASKS_COMPLETED" and "blocked" in deps:
                status[name] = "blocked"  # will never start
            else:
                return False  # it can (or will) still start
        return True


_DAG_CACHE: OrderedDict[tuple[str, str], _Dag | None] = OrderedDict()
_DAG_CACHE_SIZE = 4096
_DAG_LOCK = threading.Lock()


def dag_of(session: Session, run_id: str, scope_path: str) -> _Dag | None:
    """The DAG a scope path names in a run's spec. Specs never change, so this is cached."""
    key = (run_id, scope_path)
    with _DAG_LOCK:
        if key in _DAG_CACHE:
            _DAG_CACHE.move_to_end(key)
            return _DAG_CACHE[key]
    spec = session.scalar(select(Run.pipeline_spec).where(Run.id == run_id))
    specs = dag_tasks(spec or {}, scope_path)
    dag = _Dag(specs, tuple(topological_order(specs)[0])) if specs is not None else None
    with _DAG_LOCK:
        _DAG_CACHE[key] = dag
        while len(_DAG_CACHE) > _DAG_CACHE_SIZE:
            _DAG_CACHE.popitem(last=False)
    return dag


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    backoff_s: float
    factor: float
    max_backoff_s: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        return min(self.backoff_s * self.factor ** max(attempt - 1, 0), self.max_backoff_s)


def _seconds(text: Any, default: float) -> float:
    if text is None:
        return default
    raw = str(text).strip().rstrip("s")
    try:
        return float(raw)
    except ValueError:
        return default


def retry_policy(session: Session, task: TaskValues) -> RetryPolicy | None:
    """The retryPolicy of a task's spec, if it asks for retries."""
    scope, _, name = str(task["scope_path"]).rpartition(".")
    dag = dag_of(session, task["run_id"], scope) if scope else None
    spec = dag.specs.get(name) if dag else None
    policy = (spec or {}).get("retryPolicy") or {}
    count = _int_or_none(policy.get("maxRetryCount")) or 0
    if count <= 0:
        return None
    return RetryPolicy(
        max_retries=count,
        backoff_s=_seconds(policy.get("backoffDuration"), 0.0),
        factor=float(policy.get("backoffFactor") or 2.0),
        max_backoff_s=_seconds(policy.get("backoffMaxDuration"), 3600.0),
    )


def failed_attempts(task: TaskValues) -> int:
    history = task["state_history"] or []
    return sum(1 for h in history if h.get("state") == TaskState.FAILED.name)


def retry_pending(task: TaskValues) -> bool:
    """True when a failed attempt was recorded and the task waits to be relaunched."""
    history = task["state_history"] or []
    return (
        task["state"] == TaskState.RUNNING
        and bool(history)
        and history[-1].get("state") == TaskState.FAILED.name
    )


# ---------------------------------------------------------------------------- use cases


def create_task(session: Session, run_id: str, body: PipelineTask) -> Task:
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
            artifacts_svc.link_task_artifacts(session, existing, links, new_task=False)
            return existing
    created = _time_or_none(body.create_time, "create_time") or now
    task: TaskValues = {
        "id": new_id(),
        "run_id": run_id,
        "namespace": run.namespace,
        "parent_task_id": parent_id,
        "name": body.name or "",
        "display_name": body.display_name or body.name or "",
        "scope_path": body.scope_path or "",
        "type": ttype,
        "state": int(TaskState.RUNTIME_STATE_UNSPECIFIED),
        "state_history": [],
        "status_metadata": body.status_metadata.dump() if body.status_metadata else None,
        "type_attributes": attrs,
        "iteration_index": iteration,
        "pods": [p.dump() for p in body.pods or []],
        "cache_fingerprint": body.cache_fingerprint or "",
        "input_parameters": _check_parameters(
            body.inputs.parameters if body.inputs else None, "inputs"
        ),
        "output_parameters": _check_parameters(
            body.outputs.parameters if body.outputs else None, "outputs"
        ),
        "created_at": created,
        "started_at": created,
        "finished_at": _time_or_none(body.end_time, "end_time") or 0,
        "logical_key": key,
    }
    writer = _Writer(session, run.id, run.state)
    final = writer.set_task_state(
        task, body.state or TaskState.RUNNING, at=now, message=_message(body)
    )
    conn.execute(_INSERT_TASK, task)
    created_task = _snapshot(task)
    artifacts_svc.link_task_artifacts(session, created_task, links, new_task=True)
    writer.mark_run_running(now)
    if final:
        writer.roll_up_from(task, now)
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


def _lock_run_and_find(
    conn: Connection, run_id: str, parent_id: str | None, key: str | None
) -> tuple[LockedRun, list[Any]]:
    """Lock the run; find the parent task (by id) and an earlier create (by logical key).

    On SQLite (BEGIN IMMEDIATE holds the write lock already) one statement reads the run and
    both; elsewhere the run row is locked first, as on every write path."""
    if conn.dialect.name != "sqlite":
        run = lock_run_for_writes(conn, run_id)
        if parent_id is None and key is None:
            return run, []
        params = {"parent_id": parent_id, "key": key}
        return run, list(conn.execute(_SELECT_PARENT_AND_SAME, params))
    params = {"run_id": require(run_id, "run_id"), "parent_id": parent_id, "key": key}
    rows = conn.execute(_RUN_WITH_PARENT_AND_SAME, params).all()
    if not rows:
        raise NotFound(f"run {run_id!r} not found")
    run = writable_run(run_id, rows[0].run_namespace, rows[0].run_state)
    return run, [r for r in rows if r.id is not None]


def _message(body: PipelineTask) -> str | None:
    return body.status_metadata.message if body.status_metadata else None


def _apply_update(writer: _Writer, task: TaskValues, body: PipelineTask, now: int) -> None:
    """Apply an UpdateTask body to a task row: write the changed columns, then roll up."""
    conn = writer.conn
    if body.task_id and body.task_id != task["id"]:
        raise InvalidArgument(f"task.task_id {body.task_id!r} does not match the path")
    if body.run_id and body.run_id != task["run_id"]:
        raise InvalidArgument(f"task.run_id {body.run_id!r} does not match the path")
    changes: TaskValues = {}
    if body.name:
        changes["name"] = body.name
    if body.display_name:
        changes["display_name"] = body.display_name
    if body.cache_fingerprint:
        changes["cache_fingerprint"] = body.cache_fingerprint
    if body.parent_task_id is not None:
        if body.parent_task_id == "":
            changes["parent_task_id"] = None
        else:
            parent_run = conn.execute(_SELECT_TASK_RUN, {"task_id": body.parent_task_id}).scalar()
            if parent_run != task["run_id"] or body.parent_task_id == task["id"]:
                raise InvalidArgument(
                    f"parent task {body.parent_task_id!r} does not exist in run {task['run_id']}"
                )
            changes["parent_task_id"] = body.parent_task_id
    if body.type:
        changes["type"] = int(body.type)
    if body.status_metadata is not None:
        changes["status_metadata"] = body.status_metadata.dump() or None
    if body.pods is not None:
        changes["pods"] = [p.dump() for p in body.pods]
    if body.type_attributes is not None:
        changes["type_attributes"] = body.type_attributes.dump()
        changes["iteration_index"] = body.type_attributes.iteration_index
    if body.inputs and body.inputs.parameters:
        changes["input_parameters"] = merge_parameters(
            task["input_parameters"] or [], _check_parameters(body.inputs.parameters, "inputs")
        )
    if body.outputs and body.outputs.parameters:
        changes["output_parameters"] = merge_parameters(
            task["output_parameters"] or [], _check_parameters(body.outputs.parameters, "outputs")
        )
    _time_or_none(body.create_time, "create_time")  # validated, never changed
    end = _time_or_none(body.end_time, "end_time")
    if end:
        changes["finished_at"] = end
    task.update(changes)
    final = False
    if body.state:
        final = writer.set_task_state(
            task, body.state, at=now, message=_message(body), changes=changes
        )
    if changes:
        conn.execute(_UPDATE_TASK, {"where_task_id": task["id"], **changes})
    if final:
        writer.roll_up_from(task, now)


def update_task(session: Session, run_id: str, task_id: str, body: PipelineTask) -> Task:
    run = lock_run_for_writes(session.connection(), run_id)
    writer = _Writer(session, run.id, run.state)
    task = load_task_in_run(writer.conn, run_id, task_id)
    _apply_update(writer, task, body, now_us())
    return _snapshot(task)


def update_locked(session: Session, run: LockedRun, task: TaskValues, body: PipelineTask) -> Task:
    """:func:`update_task` for a caller that already holds the run's lock and read the row."""
    _apply_update(_Writer(session, run.id, run.state), task, body, now_us())
    return _snapshot(task)


def update_tasks_bulk(session: Session, run_id: str, tasks: dict[str, PipelineTask]) -> list[Task]:
    """Update several tasks of one run in one transaction (all or nothing)."""
    if not tasks:
        raise InvalidArgument("tasks must not be empty")
    if any(not k for k in tasks):
        raise InvalidArgument("task ids must not be empty")
    run = lock_run_for_writes(session.connection(), run_id)
    writer = _Writer(session, run.id, run.state)
    conn = writer.conn
    ids = {"task_ids": list(tasks)}
    found = {r.id: r.run_id for r in conn.execute(_SELECT_TASKS, ids)}
    for task_id in tasks:
        if found.get(task_id) != run_id:
            raise NotFound(f"task {task_id!r} not found in run {run_id}")
    now = now_us()
    for task_id in sorted(tasks):
        # Read each row just before its update: an earlier update's roll-up may have changed it.
        _apply_update(writer, load_task_in_run(conn, run_id, task_id), tasks[task_id], now)
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


def cancel_run_tasks(session: Session, run: Run, message: str) -> None:
    """Cancel every unfinished task of a run (terminate). The run row is already locked."""
    now = now_us()
    running = session.scalars(
        select(Task).where(Task.run_id == run.id, Task.state == int(TaskState.RUNNING))
    ).all()
    for task in running:
        task.state = int(TaskState.CANCELED)
        task.finished_at = now
        task.status_metadata = {**(task.status_metadata or {}), "message": message}
        task.state_history = [
            *task.state_history,
            history_entry(to_rfc3339(now) or "", TaskState.CANCELED.name),
        ]


def reset_unfinished_tasks(session: Session, run: Run) -> int:
    """Prepare a retry: tasks that did not finish well go back to RUNNING without outputs."""
    now = now_us()
    keep = [int(TaskState.SUCCEEDED), int(TaskState.CACHED), int(TaskState.SKIPPED)]
    tasks = session.scalars(
        select(Task).where(Task.run_id == run.id, Task.state.notin_(keep))
    ).all()
    ids = [t.id for t in tasks]
    if ids:
        # Only what the failed attempt produced goes: its input links (upstream artifacts,
        # loop items) are what the retried task is launched with.
        session.execute(
            delete(ArtifactTask).where(
                ArtifactTask.run_id == run.id,
                ArtifactTask.task_id.in_(ids),
                ArtifactTask.type.in_([int(t) for t in OUTPUT_IO_TYPES]),
            )
        )
    for task in tasks:
        task.state = int(TaskState.RUNNING)
        task.started_at = now
        task.finished_at = 0
        task.status_metadata = None
        task.pods = []
        task.output_parameters = []
        task.state_history = [
            *task.state_history,
            history_entry(to_rfc3339(now) or "", TaskState.RUNNING.name),
        ]
    return len(ids)


def delete_run_tasks(session: Session, run_id: str) -> None:
    """Delete a run's tasks; unlinking parents first keeps MySQL's cascade depth shallow."""
    session.execute(delete(ArtifactTask).where(ArtifactTask.run_id == run_id))
    session.execute(update(Task).where(Task.run_id == run_id).values(parent_task_id=None))
    session.execute(delete(Task).where(Task.run_id == run_id))


def run_writer(session: Session, run_id: str) -> _Writer:
    """A state writer for a run, with its row locked (used by run-level use cases)."""
    run = lock_run(session, run_id)
    return _Writer(session, run.id, RunState(run.state), run)
