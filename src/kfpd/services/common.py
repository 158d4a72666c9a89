"""Helpers shared by services: ids, row lookup, row locks, unique-violation handling."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, bindparam, inspect, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from kfpd.db.errors import is_unique_violation
from kfpd.db.models import Run
from kfpd.domain.enums import RunState
from kfpd.domain.errors import AlreadyExists, InvalidArgument, NotFound, RunIsTerminal

T = TypeVar("T")


def new_id() -> str:
    return str(uuid.uuid4())


def in_constants(column: ColumnElement[int], values: Iterable[int]) -> ColumnElement[bool]:
    """``column IN (1, 2, 3)`` with the numbers written into the SQL. ``column.in_([...])``
    binds an expanding list instead, which SQLAlchemy re-renders into the statement's text
    on every execution: ~5 % of a task's ``:finish`` on SQLite for its four state lists."""
    return column.in_([literal_column(str(int(v))) for v in values])


def require(value: str | None, what: str) -> str:
    if value is None or not str(value).strip():
        raise InvalidArgument(f"{what} is required")
    return str(value)


def get_or_404(session: Session, model: type[T], ident: str | None, what: str) -> T:
    if not ident:
        raise InvalidArgument(f"{what} id is required")
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident!r} not found")
    return row


def detached(model: type[T], values: dict[str, Any]) -> T:
    """An ORM object of ``model`` holding ``values`` (attribute names), outside any session.

    What the Core write paths return for a row they just wrote or read: built the way the ORM's
    loader builds rows (no per-attribute events), some 20x cheaper than ``model(**values)``.
    """
    row: T = inspect(model).class_manager.new_instance()
    row.__dict__.update(values)
    return row


def lock_run(session: Session, run_id: str | None) -> Run:
    """Lock the run row: every write to a run's tasks and links is serialized on it.

    This is what makes status roll-up safe when many tasks of one run finish at once.
    """
    if not run_id:
        raise InvalidArgument("run_id is required")
    # The spec columns are large and immutable: never load them on the write path.
    stmt = (
        select(Run)
        .options(defer(Run.pipeline_spec), defer(Run.platform_spec), defer(Run.runtime_config))
        .where(Run.id == run_id)
        .with_for_update()
    )
    run = session.scalars(stmt).first()
    if run is None:
        raise NotFound(f"run {run_id!r} not found")
    return run


def lock_writable_run(session: Session, run_id: str | None) -> Run:
    run = lock_run(session, run_id)
    state = RunState(run.state)
    if state.is_terminal:
        raise RunIsTerminal(
            f"run {run.id} is {state.name}; its tasks and artifact links can no longer change"
        )
    return run


@dataclass(frozen=True)
class LockedRun:
    """The columns of a locked run that the task and link write paths need."""

    id: str
    namespace: str
    state: RunState


_RUNS = Run.__table__.c
_LOCK_RUN_ROW = (
    select(_RUNS.id, _RUNS.namespace, _RUNS.state)
    .where(_RUNS.id == bindparam("run_id"))
    .with_for_update()
)


def lock_run_for_writes(conn: Connection, run_id: str | None) -> LockedRun:
    """:func:`lock_writable_run` for the hot write paths: the same lock and terminal-run
    guard, read with one prebuilt Core statement instead of loading the ORM row."""
    if not run_id:
        raise InvalidArgument("run_id is required")
    row = conn.execute(_LOCK_RUN_ROW, {"run_id": run_id}).first()
    if row is None:
        raise NotFound(f"run {run_id!r} not found")
    return writable_run(row.id, row.namespace, row.state)


def writable_run(run_id: str, namespace: str, state: int) -> LockedRun:
    """The terminal-run guard: tasks and links of an ended run never change again."""
    run_state = RunState(state)
    if run_state.is_terminal:
        raise RunIsTerminal(
            f"run {run_id} is {run_state.name}; its tasks and artifact links can no longer change"
        )
    return LockedRun(run_id, namespace, run_state)


def flush_unique(session: Session, what: Callable[[], str]) -> None:
    """Flush, turning a unique-constraint violation into AlreadyExists."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise AlreadyExists(what()) from exc
        raise


def history_entry(
    update_time: str, state: Any, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"update_time": update_time, "state": state}
    if error:
        entry["error"] = error
    return entry
