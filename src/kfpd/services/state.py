"""The run state machine: the one place where task and run states change.

Every change is a named event (``domain/transitions.py``: :class:`TaskEvent`,
:class:`RunEvent`) checked against its table, for a run whose row lock the caller holds. A
task change goes in three steps:

1. :meth:`RunMachine.decide` checks the event and computes the row's new columns (a FAILED
   outcome of a task with retries left becomes ATTEMPT_FAILED → AWAITING_RETRY);
2. the caller writes the row (:meth:`RunMachine.apply` does it for an existing row);
3. :meth:`RunMachine.settle` runs the machine's ordered rules: drop the outputs of a failed
   attempt or a reset task; once a task is final, roll its parents up (each completed group
   records its declared outputs before its own parent is evaluated) and then the run.

Callers learn what to schedule from the returned :class:`Change` (a retry's backoff).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, exists, func, select, true
from sqlalchemy.orm import Session, defer

from kfpd.db.models import ArtifactTask, Run, Task
from kfpd.domain.enums import (
    GROUP_TASK_TYPES,
    OUTPUT_IO_TYPES,
    TERMINAL_TASK_STATES,
    RunState,
    TaskState,
    TaskType,
)
from kfpd.domain.errors import NotFound
from kfpd.domain.grpc_codes import INTERNAL, UNKNOWN
from kfpd.domain.timeutil import to_rfc3339
from kfpd.domain.transitions import (
    RETRYABLE_EVENTS,
    Phase,
    RunEvent,
    TaskEvent,
    phase_of,
    rolled_up_state,
    run_event,
    run_state_for_root,
    task_event,
    task_transition,
)
from kfpd.ir import PipelineIR, RetryPolicy
from kfpd.orchestrator.plan import BLOCKING_STATES, readiness
from kfpd.services.common import history_entry, in_constants, lock_run
from kfpd.services.propagation import record_group_outputs
from kfpd.services.taskdata import (
    TaskValues,
    ir_of,
    iteration_count,
    status_message,
    update_task_row,
    with_message,
)

_TASKS = cast(Table, Task.__table__)
_T = _TASKS.c
_FINAL = [int(s) for s in TERMINAL_TASK_STATES]
_GROUP_TYPES = [int(t) for t in GROUP_TASK_TYPES]
_OUTPUT_TYPES = [int(t) for t in OUTPUT_IO_TYPES]
_FINAL_PHASES = frozenset(Phase.of_state(s) for s in TERMINAL_TASK_STATES)

_CHILD_COUNTS = (
    select(
        func.count().label("total"),
        func.coalesce(func.sum(case((~in_constants(_T.state, _FINAL), 1), else_=0)), 0).label(
            "unfinished"
        ),
        func.coalesce(
            func.sum(case((in_constants(_T.state, BLOCKING_STATES), 1), else_=0)), 0
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
# Whether a group still has a child that is not final: one probe of the (parent_task_id,
# state) index, where counting the children would read every one (a loop's 10,000
# iterations on each iteration's finish).
_UNFINISHED = [int(s) for s in TaskState if s not in TERMINAL_TASK_STATES]
_UNFINISHED_CHILD = (
    select(_T.id)
    .where(_T.parent_task_id == bindparam("parent_id"), in_constants(_T.state, _UNFINISHED))
    .limit(1)
)
# The same probe for a finishing task's parent, as a column of the statement that loads the
# task under the run's lock (services/tasks.py): siblings hold still until the task's own change,
# so the roll-up after a finish needs no statement of its own while one still runs. When none
# does, the same statement brings the parent's roll-up columns and the counts of the other
# children (a CASE: counted only then, so a finish among 10,000 running siblings counts none).
_SIBLINGS = _TASKS.alias("siblings")
_S = _SIBLINGS.c
_OTHER_CHILDREN = (_S.parent_task_id == _T.parent_task_id, _S.id != _T.id)
_UNFINISHED_SIBLING = exists().where(*_OTHER_CHILDREN, in_constants(_S.state, _UNFINISHED))
_PARENT = _TASKS.alias("parent")
FINISHING_PARENT = _PARENT  # outer-joined on the task's parent_task_id by the loading statement
SIBLING_COLUMNS = (
    _UNFINISHED_SIBLING.label("unfinished_sibling"),
    # All of the parent's children less the task itself, rather than "id != the task's": the
    # count then reads the (parent_task_id, state) index alone, where the id test fetched every
    # sibling's row on SQLite (~1 us a sibling: half the :finish of a 1,000-task chain's last
    # steps, bench/metadata_write.py).
    case(
        (_UNFINISHED_SIBLING, None),
        else_=select(func.count()).where(_S.parent_task_id == _T.parent_task_id).scalar_subquery()
        - 1,
    ).label("siblings_total"),
    case(
        (_UNFINISHED_SIBLING, None),
        else_=select(func.count())
        .where(*_OTHER_CHILDREN, in_constants(_S.state, BLOCKING_STATES))
        .scalar_subquery(),
    ).label("siblings_blocking"),
    *(_PARENT.c[k].label(f"parent_{k}") for k in _ROLL_UP_KEYS),
)


@dataclass(frozen=True)
class SiblingProbe:
    """What the roll-up needs of a task's parent, read with the task under the run's lock
    (:data:`SIBLING_COLUMNS`): whether another child is not final yet, and when none is, the
    parent's roll-up columns and how many other children there are (and blocking ones)."""

    parent_id: str
    unfinished_sibling: bool
    parent: TaskValues | None = None
    siblings_total: int = 0
    siblings_blocking: int = 0

    @classmethod
    def of_row(cls, values: Any) -> SiblingProbe | None:
        if values["parent_task_id"] is None:
            return None
        if values["unfinished_sibling"] or values["parent_id"] is None:
            return cls(values["parent_task_id"], bool(values["unfinished_sibling"]))
        return cls(
            values["parent_task_id"],
            False,
            {k: values[f"parent_{k}"] for k in _ROLL_UP_KEYS},
            int(values["siblings_total"]),
            int(values["siblings_blocking"]),
        )

    def counts_with(self, task: TaskValues) -> tuple[int, int, int]:
        """total, unfinished, blocking among the parent's children, ``task`` as it is now."""
        state = TaskState(task["state"])
        return (
            self.siblings_total + 1,
            int(not state.is_terminal),
            self.siblings_blocking + (state in BLOCKING_STATES),
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


@dataclass(frozen=True)
class Transition:
    """One change the machine made: a task's (or the run's) id, the event that applied, the
    event the caller asked for (they differ when a failure became a pending retry), from, to."""

    subject: str
    event: TaskEvent | RunEvent
    cause: TaskEvent | RunEvent
    old: str
    new: str


Observer = Callable[[Transition], None]
_observers: list[Observer] = []


@contextmanager
def observed(observer: Observer) -> Iterator[None]:
    """Call ``observer`` with every :class:`Transition` the machine makes (tests, metrics)."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


def _notify(transition: Transition) -> None:
    for observer in list(_observers):
        observer(transition)


@dataclass(frozen=True)
class Change:
    """A task event the machine accepted."""

    event: TaskEvent
    phase: Phase
    retry_delay: float | None = None  # ATTEMPT_FAILED: relaunch after this many seconds

    @property
    def final(self) -> bool:
        return self.phase in _FINAL_PHASES


def retry_policy(ir: PipelineIR, task: TaskValues) -> RetryPolicy | None:
    """The retryPolicy of a task's IR entry, if it asks for retries."""
    spec = ir.task_at(str(task["scope_path"]))
    return spec.retry if spec is not None else None


def failed_attempts(task: TaskValues) -> int:
    history = task["state_history"] or []
    return sum(1 for h in history if h.get("state") == TaskState.FAILED.name)


def pending_retry_delay(ir: PipelineIR, task: TaskValues) -> float:
    """The backoff before relaunching a task that awaits a retry."""
    policy = retry_policy(ir, task)
    return policy.delay(failed_attempts(task)) if policy else 0.0


def task_phase(task: TaskValues) -> Phase:
    return phase_of(task["state"], task["state_history"])


def _entry(at: int, phase: Phase, error: dict[str, Any] | None = None) -> dict[str, Any]:
    name = Phase.FAILED.value if phase == Phase.AWAITING_RETRY else phase.wire.name
    return history_entry(to_rfc3339(at) or "", name, error)


class RunMachine:
    """The state machine of one run, whose row lock the caller holds.

    The run's ORM row is loaded only when the run's own state changes (its first and its
    last task); task rows are dicts (``services/taskdata.py``).
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

    # -- tasks

    def decide(
        self,
        task: TaskValues,
        event: TaskEvent,
        target: TaskState,
        *,
        at: int,
        message: str | None = None,
        changes: TaskValues | None = None,
    ) -> Change | None:
        """Check ``event`` moving ``task`` to ``target``; update the dict (and ``changes``).

        None when nothing changes. The row is not written: see :meth:`apply`/:meth:`settle`.
        """
        if target == TaskState.RUNTIME_STATE_UNSPECIFIED:
            return None
        current = task_phase(task)
        new = Phase.of_state(target)
        cause = event
        if event == TaskEvent.REPORT:
            task_transition(current.wire, target)  # the API's bounds, as documented
        delay = None
        started = current in (Phase.RUNNING, Phase.PENDING)
        if new == Phase.FAILED and event in RETRYABLE_EVENTS and started:
            delay = self._retry_delay(task)
            if delay is not None:
                event, new = TaskEvent.ATTEMPT_FAILED, Phase.AWAITING_RETRY
        if not task_event(event, current, new):
            return None
        columns = self._columns(task, event, new, at, message)
        task.update(columns)
        if changes is not None:
            changes.update(columns)
        _notify(Transition(str(task["id"]), event, cause, current.value, new.value))
        return Change(event, new, delay)

    def _retry_delay(self, task: TaskValues) -> float | None:
        if task["type"] != TaskType.RUNTIME:
            return None
        policy = retry_policy(ir_of(self.session, self.run_id), task)
        if policy is None or failed_attempts(task) >= policy.max_retries:
            return None
        return policy.delay(failed_attempts(task) + 1)

    @staticmethod
    def _columns(
        task: TaskValues, event: TaskEvent, new: Phase, at: int, message: str | None
    ) -> TaskValues:
        error = None
        if new in (Phase.FAILED, Phase.AWAITING_RETRY) and (
            message or event == TaskEvent.ATTEMPT_FAILED
        ):
            error = {"code": UNKNOWN, "message": message or "the task failed"}
        columns: TaskValues = {
            "state": int(new.wire),
            "state_history": [*(task["state_history"] or []), _entry(at, new, error)],
        }
        if event == TaskEvent.ATTEMPT_FAILED:
            failure = message or "the task failed"
            columns["status_metadata"] = with_message(task["status_metadata"], failure)
            columns["output_parameters"] = []
        elif event == TaskEvent.RESET:
            columns.update(
                started_at=at, finished_at=0, status_metadata=None, pods=[], output_parameters=[]
            )
        elif event == TaskEvent.CANCEL and message:
            columns["status_metadata"] = with_message(task["status_metadata"], message)
        if new in _FINAL_PHASES and (
            event in (TaskEvent.ROLL_UP, TaskEvent.CANCEL) or not task.get("finished_at")
        ):
            columns["finished_at"] = at
        return columns

    def apply(
        self,
        task: TaskValues,
        event: TaskEvent,
        target: TaskState,
        *,
        at: int,
        message: str | None = None,
        changes: TaskValues | None = None,
    ) -> Change | None:
        """Decide, write the row's changed columns (``changes`` too), then settle."""
        changes = {} if changes is None else changes
        change = self.decide(task, event, target, at=at, message=message, changes=changes)
        update_task_row(self.conn, task["id"], changes)
        if change is not None:
            self.settle(task, change, at)
        return change

    def settle(
        self, task: TaskValues, change: Change, at: int, parent: SiblingProbe | None = None
    ) -> None:
        """The ordered rules after a task's row was written with ``change``. ``parent``: its
        parent and siblings as read with the task under this lock (saves reading them again)."""
        if change.event in (TaskEvent.ATTEMPT_FAILED, TaskEvent.RESET):
            self._drop_outputs([task["id"]])
        self.start_run(at)
        if change.final:
            self._roll_up_from(task, at, parent)

    def _drop_outputs(self, task_ids: list[str]) -> None:
        self.conn.execute(
            delete(ArtifactTask).where(
                ArtifactTask.task_id.in_(task_ids), ArtifactTask.type.in_(_OUTPUT_TYPES)
            )
        )

    def cancel_unfinished(self, message: str, at: int) -> None:
        """CANCEL every task that still runs or waits (terminate; orchestration gave up)."""
        live = [int(TaskState.RUNNING), int(TaskState.PENDING)]
        rows = self.conn.execute(select(_TASKS).where(_T.run_id == self.run_id, _T.state.in_(live)))
        for row in rows.all():
            task = dict(row._mapping)
            changes: TaskValues = {}
            self.decide(
                task, TaskEvent.CANCEL, TaskState.CANCELED, at=at, message=message, changes=changes
            )
            update_task_row(self.conn, task["id"], changes)

    def reset_unfinished(self, at: int) -> int:
        """RESET every task that did not finish well (RetryRun); outputs go, inputs stay."""
        keep = [int(TaskState.SUCCEEDED), int(TaskState.CACHED), int(TaskState.SKIPPED)]
        rows = self.conn.execute(
            select(_TASKS).where(_T.run_id == self.run_id, _T.state.notin_(keep))
        ).all()
        ids = []
        for row in rows:
            task = dict(row._mapping)
            changes: TaskValues = {}
            self.decide(task, TaskEvent.RESET, TaskState.RUNNING, at=at, changes=changes)
            update_task_row(self.conn, task["id"], changes)
            ids.append(task["id"])
        if ids:
            self._drop_outputs(ids)
        return len(ids)

    # -- the run

    def start_run(self, at: int) -> None:
        if self.run_state == RunState.PENDING:
            self.set_run_state(RunEvent.START, RunState.RUNNING, at=at)

    def set_run_state(
        self, event: RunEvent, state: RunState, *, at: int, error: dict[str, Any] | None = None
    ) -> bool:
        run = self.run
        current = RunState(run.state)
        if not run_event(event, current, state):
            return False
        run.state = int(state)
        run.state_history = [
            *run.state_history,
            history_entry(to_rfc3339(at) or "", state.name, error),
        ]
        if state.is_terminal:
            run.finished_at = at
            run.error = error
        elif event == RunEvent.RETRY:
            run.finished_at = 0
            run.error = None
        self.run_state = state
        _notify(Transition(self.run_id, event, event, current.name, state.name))
        return True

    def fail_run(self, message: str, at: int, code: int = INTERNAL) -> None:
        self.set_run_state(
            RunEvent.FAIL, RunState.FAILED, at=at, error={"code": code, "message": message}
        )

    # -- roll-up

    def _roll_up_from(self, task: TaskValues, at: int, known: SiblingProbe | None = None) -> None:
        """After ``task`` became final (and was written): settle its parents and the run."""
        current = task
        while True:
            if current["parent_task_id"] is None:
                if current["type"] == TaskType.ROOT:
                    self._finish_run(TaskState(current["state"]), at)
                return
            parent_id = {"parent_id": current["parent_task_id"]}
            ahead = known if known and known.parent_id == current["parent_task_id"] else None
            known = None  # only the first parent was read ahead
            if ahead is not None:
                busy = ahead.unfinished_sibling  # read with the task, under this lock
            else:
                busy = self.conn.execute(_UNFINISHED_CHILD, parent_id).first() is not None
            if busy:
                return  # a sibling still runs: the parent cannot settle yet
            if ahead is not None and ahead.parent is not None:
                parent = dict(ahead.parent)
                total, unfinished, blocking = ahead.counts_with(current)
            else:
                found = self.conn.execute(_PARENT_WITH_COUNTS, parent_id).first()
                if found is None:
                    return
                parent = {k: found._mapping[k] for k in _ROLL_UP_KEYS}
                total, unfinished, blocking = found.total, found.unfinished, found.blocking
            if TaskState(parent["state"]).is_terminal:
                return
            verdict = self._evaluate_group(parent, total, unfinished, blocking)
            if verdict is None:
                return
            changes: TaskValues = {}
            self.decide(parent, TaskEvent.ROLL_UP, verdict, at=at, changes=changes)
            update_task_row(self.conn, parent["id"], changes)
            # Declared DAG outputs go on the group before its parent is evaluated.
            record_group_outputs(self.session, self.run_id, parent)
            current = parent

    def _finish_run(self, root_state: TaskState, at: int) -> None:
        state = run_state_for_root(root_state, self.run_state)
        error = None
        if state == RunState.FAILED:
            failed = self.conn.execute(_FIRST_FAILED, {"run_id": self.run_id}).first()
            if failed is not None:
                detail = status_message(failed.status_metadata) or "failed"
                error = {"code": UNKNOWN, "message": f"task {failed.name!r} failed: {detail}"}
            else:
                error = {"code": UNKNOWN, "message": "the run failed"}
        self.set_run_state(RunEvent.FINISH, state, at=at, error=error)

    def _evaluate_group(
        self, parent: TaskValues, total: int, unfinished: int, blocking: int
    ) -> TaskState | None:
        """The rolled-up state of a group task, or None while it can still change.

        ``total``, ``unfinished`` and ``blocking`` count its children: most finishes leave
        siblings still to come, and those counts settle that without reading the children.
        """
        ptype = TaskType(parent["type"])
        if unfinished or ptype not in GROUP_TASK_TYPES:
            return None
        dag = ir_of(self.session, self.run_id).dag_at(parent["scope_path"])
        count = None
        if ptype == TaskType.LOOP:
            count = iteration_count(parent["type_attributes"])
            if count is None:
                return None
            if count == 0:
                return TaskState.SKIPPED
        expected = count if count is not None else (len(dag.order) if dag else 0)
        if not blocking and total < expected:
            return None
        children = list(self.conn.execute(_CHILDREN, {"parent_id": parent["id"]}))
        states = [TaskState(c.state) for c in children]
        if ptype != TaskType.LOOP:
            rows = {c.name: TaskState(c.state) for c in children}
            return rolled_up_state(states) if dag and readiness(dag, rows).complete else None
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
            if not readiness(dag, rows).complete:
                return None
        return rolled_up_state(states)


def machine_for(session: Session, run_id: str) -> RunMachine:
    """The state machine of a run, with its row locked (run-level use cases)."""
    run = lock_run(session, run_id)
    return RunMachine(session, run.id, RunState(run.state), run)
