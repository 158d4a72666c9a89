"""What authorization reads from the database: the namespace of a stored object, named by id.

For an object named by id, its namespace always comes from its stored row, never from the
request. A missing row gives None (the caller answers 404, as for an object it may not see).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, Table, bindparam, select, union

from kfpd.db.models import Artifact, Experiment, Pipeline, RecurringRun, Run, Task
from kfpd.domain.enums import RunState


class Kind(StrEnum):
    RUN = "run"
    EXPERIMENT = "experiment"
    PIPELINE = "pipeline"
    ARTIFACT = "artifact"
    TASK = "task"
    RECURRING_RUN = "recurring_run"


_TABLES: dict[Kind, Table] = {
    Kind.RUN: Run.__table__,  # type: ignore[dict-item]
    Kind.EXPERIMENT: Experiment.__table__,  # type: ignore[dict-item]
    Kind.PIPELINE: Pipeline.__table__,  # type: ignore[dict-item]
    Kind.ARTIFACT: Artifact.__table__,  # type: ignore[dict-item]
    Kind.TASK: Task.__table__,  # type: ignore[dict-item]
    Kind.RECURRING_RUN: RecurringRun.__table__,  # type: ignore[dict-item]
}
_NAMESPACES = {
    kind: select(table.c.id, table.c.namespace).where(
        table.c.id.in_(bindparam("ids", expanding=True))
    )
    for kind, table in _TABLES.items()
}
_RUN_STATE = select(Run.namespace, Run.state).where(Run.id == bindparam("run_id"))


def namespaces_of(conn: Connection, kind: Kind, ids: Iterable[str]) -> dict[str, str]:
    """id -> namespace of the stored objects among ``ids`` (missing ones are left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {row.id: row.namespace for row in conn.execute(_NAMESPACES[kind], {"ids": wanted})}


@dataclass(frozen=True)
class RunStanding:
    namespace: str
    final: bool


def run_standing(conn: Connection, run_id: str) -> RunStanding | None:
    row = conn.execute(_RUN_STATE, {"run_id": run_id}).first()
    if row is None:
        return None
    return RunStanding(row.namespace, RunState(row.state).is_terminal)


# Namespaces that hold something: a run's and a recurring run's namespace is its experiment's,
# so experiments and pipelines cover them (each side reads a (namespace, ...) index).
_EXISTING_NAMESPACES = union(select(Experiment.namespace), select(Pipeline.namespace))


def existing_namespaces(conn: Connection) -> list[str]:
    """The namespaces of stored experiments and pipelines, sorted."""
    return sorted(str(name) for name in conn.execute(_EXISTING_NAMESPACES).scalars())
