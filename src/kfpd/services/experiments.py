"""Experiments: named groups of runs in a namespace."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfpd.db.errors import is_unique_violation
from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import Experiment, RecurringRun, Run
from kfpd.domain.enums import RecurringRunStatus, StorageState
from kfpd.domain.errors import AlreadyExists, InvalidArgument
from kfpd.domain.timeutil import now_us
from kfpd.schemas.experiments import ExperimentCreate
from kfpd.services.common import flush_unique, get_or_404, new_id

DEFAULT_EXPERIMENT = "Default"

EXPERIMENT_FIELDS: dict[str, Field] = {
    "experiment_id": Field(Experiment.id),
    "id": Field(Experiment.id),
    "display_name": Field(Experiment.display_name),
    "name": Field(Experiment.display_name),
    "description": Field(Experiment.description, sortable=False),
    "created_at": Field(Experiment.created_at, "timestamp"),
    "namespace": Field(Experiment.namespace, sortable=False),
    "storage_state": Field(Experiment.storage_state, "enum", StorageState),
    "last_run_created_at": Field(Experiment.last_run_created_at, "timestamp"),
}


def _new_experiment(name: str, namespace: str, description: str) -> Experiment:
    return Experiment(
        id=new_id(),
        namespace=namespace,
        display_name=name,
        description=description,
        created_at=now_us(),
        storage_state=int(StorageState.AVAILABLE),
        last_run_created_at=0,
    )


def create_experiment(session: Session, body: ExperimentCreate) -> Experiment:
    name = (body.display_name or "").strip()
    if not name:
        raise InvalidArgument("experiment display_name is required")
    if len(name) > 255:
        raise InvalidArgument("experiment display_name is longer than 255 characters")
    namespace = body.namespace or ""
    row = _new_experiment(name, namespace, body.description or "")
    session.add(row)
    flush_unique(session, lambda: f"experiment {name!r} already exists in namespace {namespace!r}")
    return row


def get_experiment(session: Session, experiment_id: str) -> Experiment:
    return get_or_404(session, Experiment, experiment_id, "experiment")


def _find_default(session: Session, namespace: str) -> Experiment | None:
    return session.scalars(
        select(Experiment).where(
            Experiment.namespace == namespace, Experiment.display_name == DEFAULT_EXPERIMENT
        )
    ).first()


def default_experiment(session: Session, namespace: str) -> Experiment:
    """The namespace's "Default" experiment, created if missing. Race-free: when a concurrent
    transaction creates it first, the unique (namespace, name) index refuses our insert inside
    a savepoint, and the row that transaction committed is read instead."""
    row = _find_default(session, namespace)
    if row is not None:
        return row
    row = _new_experiment(DEFAULT_EXPERIMENT, namespace, "")
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
        return row
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        if row in session:
            session.expunge(row)  # else the next autoflush would insert it again
    found = _find_default(session, namespace)
    if found is None:  # created and deleted again meanwhile
        raise AlreadyExists(f"experiment {DEFAULT_EXPERIMENT!r} is being changed; retry")
    return found


def list_experiments(session: Session, namespace: str, request: ListRequest) -> Page[Experiment]:
    stmt = select(Experiment)
    if namespace:
        stmt = stmt.where(Experiment.namespace == namespace)
    return list_page(
        session,
        stmt,
        fields=EXPERIMENT_FIELDS,
        id_field="experiment_id",
        default_sort="created_at",
        request=request,
        context=[namespace],
    )


def archive_experiment(session: Session, experiment_id: str) -> None:
    """Archive an experiment and, as upstream does, all of its runs; its recurring runs are
    disabled (unarchiving does not enable them again, as upstream)."""
    row = get_experiment(session, experiment_id)
    row.storage_state = int(StorageState.ARCHIVED)
    session.execute(
        update(Run)
        .where(Run.experiment_id == row.id)
        .values(storage_state=int(StorageState.ARCHIVED))
    )
    session.execute(
        update(RecurringRun)
        .where(
            RecurringRun.experiment_id == row.id,
            RecurringRun.status == int(RecurringRunStatus.ENABLED),
        )
        .values(status=int(RecurringRunStatus.DISABLED), updated_at=now_us())
    )


def unarchive_experiment(session: Session, experiment_id: str) -> None:
    get_experiment(session, experiment_id).storage_state = int(StorageState.AVAILABLE)


def delete_experiment(session: Session, experiment_id: str) -> None:
    """Delete an experiment; its runs stay (with no experiment), as upstream documents."""
    session.delete(get_experiment(session, experiment_id))
