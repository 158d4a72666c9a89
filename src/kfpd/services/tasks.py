"""Tasks: the run graph. Every task state change passes through :func:`_set_state`, under the
run's row lock, which applies the transition rules and rolls status up to parents and the run."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

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
from kfpd.services.common import history_entry, lock_run, lock_writable_run, new_id, require
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


# ---------------------------------------------------------------------------- state + roll-up


@dataclass
class _Writer:
    """Applies state changes for one run under its lock, rolling them up as it goes."""

    session: Session
    run: Run

    def set_task_state(
        self, task: Task, state: TaskState, *, at: int, message: str | None = None
    ) -> None:
        if not task_transition(TaskState(task.state), state):
            return
        if state == TaskState.FAILED and self._retry(task, at=at, message=message):
            return
        task.state = int(state)
        error = {"code": 2, "message": message} if message and state == TaskState.FAILED else None
        task.state_history = [
            *task.state_history,
            history_entry(to_rfc3339(at) or "", state.name, error),
        ]
        if state.is_terminal:
            if not task.finished_at:
                task.finished_at = at
            self.session.flush()
            self._roll_up_from(task, at)

    def _retry(self, task: Task, *, at: int, message: str | None) -> bool:
        """Record a failed attempt and keep the task RUNNING when its retry policy allows.

        The history then ends in FAILED while the task is RUNNING: a retry is pending, and the
        orchestrator relaunches it after the policy's backoff (see retry_pending).
        """
        if task.type != TaskType.RUNTIME:
            return False
        policy = retry_policy(self.session, task)
        if policy is None or failed_attempts(task) >= policy.max_retries:
            return False
        error = {"code": 2, "message": message or "the task failed"}
        task.state_history = [
            *task.state_history,
            history_entry(to_rfc3339(at) or "", TaskState.FAILED.name, error),
        ]
        task.status_metadata = {**(task.status_metadata or {}), "message": error["message"]}
        task.output_parameters = []
        self.session.execute(
            delete(ArtifactTask).where(
                ArtifactTask.task_id == task.id,
                ArtifactTask.type.in_([int(t) for t in OUTPUT_IO_TYPES]),
            )
        )
        return True

    def mark_run_running(self, at: int) -> None:
        if RunState(self.run.state) == RunState.PENDING:
            self.set_run_state(RunState.RUNNING, at=at)

    def set_run_state(
        self, state: RunState, *, at: int, error: dict[str, Any] | None = None
    ) -> None:
        if not run_transition(RunState(self.run.state), state):
            return
        self.run.state = int(state)
        self.run.state_history = [
            *self.run.state_history,
            history_entry(to_rfc3339(at) or "", state.name, error),
        ]
        if state.is_terminal:
            self.run.finished_at = at
            self.run.error = error

    def _roll_up_from(self, task: Task, at: int) -> None:
        current = task
        while True:
            if current.parent_task_id is None:
                if current.type == TaskType.ROOT:
                    self._finish_run(TaskState(current.state), at)
                return
            parent = self.session.get(Task, current.parent_task_id)
            if parent is None or TaskState(parent.state).is_terminal:
                return
            verdict = self._evaluate_group(parent)
            if verdict is None:
                return
            parent.state = int(verdict)
            parent.finished_at = at
            parent.state_history = [
                *parent.state_history,
                history_entry(to_rfc3339(at) or "", verdict.name),
            ]
            self.session.flush()
            record_group_outputs(self.session, parent)
            current = parent

    def _finish_run(self, root_state: TaskState, at: int) -> None:
        state = run_state_for_root(root_state, RunState(self.run.state))
        error = None
        if state == RunState.FAILED:
            failed = self.session.scalars(
                select(Task)
                .where(Task.run_id == self.run.id, Task.state == int(TaskState.FAILED))
                .where(Task.type.notin_([int(t) for t in GROUP_TASK_TYPES]))
                .order_by(Task.finished_at, Task.id)
                .limit(1)
            ).first()
            if failed is not None:
                detail = (failed.status_metadata or {}).get("message") or "failed"
                error = {"code": 2, "message": f"task {failed.name!r} failed: {detail}"}
            else:
                error = {"code": 2, "message": "the run failed"}
        self.set_run_state(state, at=at, error=error)

    def _evaluate_group(self, parent: Task) -> TaskState | None:
        """The rolled-up state of a group task, or None while it can still change."""
        # One aggregate first: most finishes leave siblings still to come (O(1) per finish).
        total, unfinished, blocking = self.session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((Task.state.notin_(_FINAL), 1), else_=0)), 0),
                func.coalesce(
                    func.sum(case((Task.state.in_([int(s) for s in _BLOCKING]), 1), else_=0)), 0
                ),
            ).where(Task.parent_task_id == parent.id)
        ).one()
        if unfinished:
            return None
        ptype = TaskType(parent.type)
        if ptype not in GROUP_TASK_TYPES:
            return None
        dag = dag_of(self.session, self.run.id, parent.scope_path)
        count = None
        if ptype == TaskType.LOOP:
            count = _int_or_none((parent.type_attributes or {}).get("iteration_count"))
            if count is None:
                return None
            if count == 0:
                return TaskState.SKIPPED
        expected = count if ptype == TaskType.LOOP else (len(dag.order) if dag else 0)
        if not blocking and total < expected:
            return None
        children = list(
            self.session.execute(
                select(Task.name, Task.state, Task.type, Task.iteration_index).where(
                    Task.parent_task_id == parent.id
                )
            )
        )
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


_BLOCKING = {TaskState.FAILED, TaskState.CANCELED}
_FINAL = [int(s) for s in TERMINAL_TASK_STATES]


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


def retry_policy(session: Session, task: Task) -> RetryPolicy | None:
    """The retryPolicy of a task's spec, if it asks for retries."""
    scope, _, name = task.scope_path.rpartition(".")
    dag = dag_of(session, task.run_id, scope) if scope else None
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


def failed_attempts(task: Task) -> int:
    return sum(1 for h in task.state_history or [] if h.get("state") == TaskState.FAILED.name)


def retry_pending(task: Task) -> bool:
    """True when a failed attempt was recorded and the task waits to be relaunched."""
    history = task.state_history or []
    return (
        task.state == TaskState.RUNNING
        and bool(history)
        and history[-1].get("state") == TaskState.FAILED.name
    )


# ---------------------------------------------------------------------------- use cases


def create_task(session: Session, run_id: str, body: PipelineTask) -> Task:
    if body.run_id and body.run_id != run_id:
        raise InvalidArgument(f"task.run_id {body.run_id!r} does not match the path's {run_id!r}")
    run = lock_writable_run(session, run_id)
    now = now_us()
    parent_id = body.parent_task_id or None
    if parent_id is not None:
        parent = session.get(Task, parent_id)
        if parent is None or parent.run_id != run_id:
            raise InvalidArgument(f"parent task {parent_id!r} does not exist in run {run_id}")
    ttype = int(body.type or TaskType.TASK_TYPE_UNSPECIFIED)
    attrs = body.type_attributes.dump() if body.type_attributes else {}
    iteration = body.type_attributes.iteration_index if body.type_attributes else None
    key = logical_key(run_id, parent_id, body.scope_path or "", body.name or "", ttype, iteration)
    if key is not None:
        existing = session.scalars(select(Task).where(Task.logical_key == key)).first()
        if existing is not None:
            return existing
    created = _time_or_none(body.create_time, "create_time") or now
    state = body.state or TaskState.RUNNING
    task = Task(
        id=new_id(),
        run_id=run_id,
        namespace=run.namespace,
        parent_task_id=parent_id,
        name=body.name or "",
        display_name=body.display_name or body.name or "",
        scope_path=body.scope_path or "",
        type=ttype,
        state=int(TaskState.RUNTIME_STATE_UNSPECIFIED),
        state_history=[],
        status_metadata=body.status_metadata.dump() if body.status_metadata else None,
        type_attributes=attrs,
        iteration_index=iteration,
        pods=[p.dump() for p in body.pods or []],
        cache_fingerprint=body.cache_fingerprint or "",
        input_parameters=_check_parameters(
            body.inputs.parameters if body.inputs else None, "inputs"
        ),
        output_parameters=_check_parameters(
            body.outputs.parameters if body.outputs else None, "outputs"
        ),
        created_at=created,
        started_at=created,
        finished_at=_time_or_none(body.end_time, "end_time") or 0,
        logical_key=key,
    )
    session.add(task)
    session.flush()
    writer = _Writer(session, run)
    writer.mark_run_running(now)
    writer.set_task_state(task, state, at=now, message=_message(body))
    return task


def _message(body: PipelineTask) -> str | None:
    return body.status_metadata.message if body.status_metadata else None


def _apply_update(writer: _Writer, task: Task, body: PipelineTask, now: int) -> None:
    session = writer.session
    if body.task_id and body.task_id != task.id:
        raise InvalidArgument(f"task.task_id {body.task_id!r} does not match the path")
    if body.run_id and body.run_id != task.run_id:
        raise InvalidArgument(f"task.run_id {body.run_id!r} does not match the path")
    if body.name:
        task.name = body.name
    if body.display_name:
        task.display_name = body.display_name
    if body.cache_fingerprint:
        task.cache_fingerprint = body.cache_fingerprint
    if body.parent_task_id is not None:
        if body.parent_task_id == "":
            task.parent_task_id = None
        else:
            parent = session.get(Task, body.parent_task_id)
            if parent is None or parent.run_id != task.run_id or parent.id == task.id:
                raise InvalidArgument(
                    f"parent task {body.parent_task_id!r} does not exist in run {task.run_id}"
                )
            task.parent_task_id = parent.id
    if body.type:
        task.type = int(body.type)
    if body.status_metadata is not None:
        task.status_metadata = body.status_metadata.dump() or None
    if body.pods is not None:
        task.pods = [p.dump() for p in body.pods]
    if body.type_attributes is not None:
        task.type_attributes = body.type_attributes.dump()
        task.iteration_index = body.type_attributes.iteration_index
    if body.inputs and body.inputs.parameters:
        task.input_parameters = merge_parameters(
            task.input_parameters, _check_parameters(body.inputs.parameters, "inputs")
        )
    if body.outputs and body.outputs.parameters:
        task.output_parameters = merge_parameters(
            task.output_parameters, _check_parameters(body.outputs.parameters, "outputs")
        )
    _time_or_none(body.create_time, "create_time")  # validated, never changed
    end = _time_or_none(body.end_time, "end_time")
    if end:
        task.finished_at = end
    session.flush()
    if body.state:
        writer.set_task_state(task, body.state, at=now, message=_message(body))


def update_task(session: Session, run_id: str, task_id: str, body: PipelineTask) -> Task:
    run = lock_writable_run(session, run_id)
    task = _task_in_run(session, run_id, task_id)
    _apply_update(_Writer(session, run), task, body, now_us())
    return task


def update_tasks_bulk(session: Session, run_id: str, tasks: dict[str, PipelineTask]) -> list[Task]:
    """Update several tasks of one run in one transaction (all or nothing)."""
    if not tasks:
        raise InvalidArgument("tasks must not be empty")
    if any(not k for k in tasks):
        raise InvalidArgument("task ids must not be empty")
    run = lock_writable_run(session, run_id)
    rows = {t.id: t for t in session.scalars(select(Task).where(Task.id.in_(list(tasks))))}
    for task_id in tasks:
        row = rows.get(task_id)
        if row is None or row.run_id != run_id:
            raise NotFound(f"task {task_id!r} not found in run {run_id}")
    writer = _Writer(session, run)
    now = now_us()
    for task_id in sorted(tasks):
        _apply_update(writer, rows[task_id], tasks[task_id], now)
    return [rows[k] for k in tasks]


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
        session.execute(
            delete(ArtifactTask).where(ArtifactTask.run_id == run.id, ArtifactTask.task_id.in_(ids))
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
    return _Writer(session, lock_run(session, run_id))
