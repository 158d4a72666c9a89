"""Counts behind ``/metrics``: runs and tasks by state (one GROUP BY each)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kfpd.db.models import Run, Task


def runs_by_state(session: Session) -> dict[int, int]:
    rows = session.execute(select(Run.state, func.count()).group_by(Run.state))
    return {int(state): int(count) for state, count in rows}


def tasks_by_state(session: Session) -> dict[int, int]:
    rows = session.execute(select(Task.state, func.count()).group_by(Task.state))
    return {int(state): int(count) for state, count in rows}
