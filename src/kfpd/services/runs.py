"""Runs: creation from an inline spec or a pipeline version, lists, lifecycle actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import Experiment, PipelineVersion, Run, Task
from kfpd.domain.enums import RunState, StorageState, ViewMode
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from kfpd.domain.grpc_codes import CANCELLED
from kfpd.domain.timeutil import now_us, parse_rfc3339, to_rfc3339
from kfpd.domain.transitions import RETRYABLE_RUN_STATES, RunEvent
from kfpd.ir.parameters import resolve_runtime_parameters
from kfpd.schemas.runs import RunCreate
from kfpd.services import experiments as experiments_svc
from kfpd.services import pipelines as pipelines_svc
from kfpd.services import tasks as tasks_svc
from kfpd.services.common import get_or_404, history_entry, lock_run, new_id
from kfpd.services.state import machine_for
from kfpd.spec.limits import check_nesting
from kfpd.spec.loader import LoadedSpec, split_spec
from kfpd.spec.validate import validate_spec

RUN_FIELDS: dict[str, Field] = {
    "run_id": Field(Run.id),
    "id": Field(Run.id),
    "display_name": Field(Run.display_name, folded=Run.display_name_folded),
    "name": Field(Run.display_name, folded=Run.display_name_folded),
    "description": Field(Run.description, sortable=False),
    "created_at": Field(Run.created_at, "timestamp"),
    "scheduled_at": Field(Run.scheduled_at, "timestamp"),
    "finished_at": Field(Run.finished_at, "timestamp"),
    "state": Field(Run.state, "enum", RunState),
    "storage_state": Field(Run.storage_state, "enum", StorageState),
    "experiment_id": Field(Run.experiment_id, sortable=False),
    "pipeline_version_id": Field(Run.pipeline_version_id, sortable=False),
    "pipeline_id": Field(Run.pipeline_id, sortable=False),
    "namespace": Field(Run.namespace, sortable=False),
    "recurring_run_id": Field(Run.recurring_run_id, sortable=False),
}


@dataclass
class RunView:
    """A run with what its view asks for: the task count, or every task (FULL)."""

    run: Run
    task_count: int = 0
    tasks: list[Task] = field(default_factory=list)
    full: bool = False


def inline_spec(body: RunCreate) -> LoadedSpec | None:
    """The run's own pipeline_spec, validated (None for a run of a stored version), with
    its parameters' nesting checked: call it before opening a session."""
    config = body.runtime_config
    if config and config.parameters:
        check_nesting(config.parameters, "runtime_config.parameters")
    if not body.pipeline_spec:
        return None
    ref = body.pipeline_version_reference
    if ref and (ref.pipeline_id or ref.pipeline_version_id):
        raise InvalidArgument("give either pipeline_spec or pipeline_version_reference, not both")
    loaded = split_spec(body.pipeline_spec)
    validate_spec(loaded)
    return loaded


def _resolve_spec(session: Session, body: RunCreate) -> tuple[LoadedSpec, str | None, str | None]:
    ref = body.pipeline_version_reference
    version_id = (ref.pipeline_version_id if ref else None) or body.pipeline_version_id
    pipeline_id = ref.pipeline_id if ref else None
    if version_id:
        version = get_or_404(session, PipelineVersion, version_id, "pipeline version")
        if pipeline_id and version.pipeline_id != pipeline_id:
            raise InvalidArgument(
                f"pipeline version {version_id} is not a version of {pipeline_id}"
            )
    elif pipeline_id:
        version = pipelines_svc.latest_version(session, pipeline_id)
    else:
        raise InvalidArgument("a run needs pipeline_spec or pipeline_version_reference")
    loaded = LoadedSpec(version.pipeline_spec, version.platform_spec)
    return loaded, version.pipeline_id, version.id


def check_run_body(session: Session, body: RunCreate) -> LoadedSpec:
    """What create_run checks before it writes: the spec resolves and runs, the parameters fit.
    (Recurring runs check their run template with it when they are created.)"""
    loaded = inline_spec(body)
    if loaded is None:
        loaded, _, _ = _resolve_spec(session, body)
        validate_spec(loaded)
    config = body.runtime_config
    resolve_runtime_parameters(loaded.pipeline_spec, config.parameters if config else None)
    return loaded


def create_run(session: Session, body: RunCreate, inline: LoadedSpec | None = None) -> Run:
    """``inline``: ``inline_spec(body)`` when the caller validated it outside the session."""
    if inline is None and body.pipeline_spec:
        inline = inline_spec(body)
    if inline is not None:
        loaded, pipeline_id, version_id = inline, None, None
    else:
        loaded, pipeline_id, version_id = _resolve_spec(session, body)
        validate_spec(loaded)
    config = body.runtime_config
    resolve_runtime_parameters(loaded.pipeline_spec, config.parameters if config else None)
    if body.experiment_id:
        experiment = session.get(Experiment, body.experiment_id)
        if experiment is None:
            raise NotFound(f"experiment {body.experiment_id!r} not found")
    else:
        experiment = experiments_svc.default_experiment(session, "")
    if experiment.storage_state == StorageState.ARCHIVED:
        raise FailedPrecondition(f"experiment {experiment.id} is archived; unarchive it first")
    now = now_us()
    name = (body.display_name or "").strip() or (
        f"{loaded.pipeline_name} {datetime.now(UTC).strftime('%Y-%m-%d %H-%M-%S')}"
    )
    scheduled = parse_rfc3339(body.scheduled_at) if body.scheduled_at else now
    run = Run(
        id=new_id(),
        namespace=experiment.namespace,
        experiment_id=experiment.id,
        display_name=name[:255],
        description=body.description or "",
        pipeline_id=pipeline_id,
        pipeline_version_id=version_id,
        pipeline_name=loaded.pipeline_name[:255],
        pipeline_spec=loaded.pipeline_spec,
        platform_spec=loaded.platform_spec,
        spec_inline=1 if version_id is None else 0,
        runtime_config=config.dump() if config else {},
        service_account=body.service_account or "",
        storage_state=int(StorageState.AVAILABLE),
        state=int(RunState.PENDING),
        state_history=[history_entry(to_rfc3339(now) or "", RunState.PENDING.name)],
        error=None,
        created_at=now,
        scheduled_at=scheduled,
        finished_at=0,
        recurring_run_id=body.recurring_run_id,
    )
    session.add(run)
    experiment.last_run_created_at = now
    session.flush()
    return run


def _task_counts(session: Session, run_ids: list[str]) -> dict[str, int]:
    if not run_ids:
        return {}
    rows = session.execute(
        select(Task.run_id, func.count()).where(Task.run_id.in_(run_ids)).group_by(Task.run_id)
    )
    return {run_id: int(n) for run_id, n in rows}


def _all_tasks(session: Session, run_id: str) -> list[Task]:
    return list(
        session.scalars(
            select(Task).where(Task.run_id == run_id).order_by(Task.created_at, Task.id)
        )
    )


def run_tasks(session: Session, run_id: str) -> list[Task]:
    """Every task of a run, oldest first (GetRun's run_details)."""
    return _all_tasks(session, run_id)


def get_run(session: Session, run_id: str, view: ViewMode = ViewMode.DEFAULT) -> RunView:
    run = get_or_404(session, Run, run_id, "run")
    if view == ViewMode.FULL:
        tasks = _all_tasks(session, run.id)
        return RunView(run, task_count=len(tasks), tasks=tasks, full=True)
    return RunView(run, task_count=_task_counts(session, [run.id]).get(run.id, 0))


LIST_FULL_MAX_PAGE_SIZE = 100


def list_runs(
    session: Session,
    *,
    namespace: str,
    experiment_id: str | None,
    request: ListRequest,
    view: ViewMode = ViewMode.DEFAULT,
    count: bool = True,
) -> Page[RunView]:
    """One page of runs; ``count=False`` leaves ``total_size`` 0 (no COUNT over all matches)."""
    stmt = select(Run)
    if view != ViewMode.FULL:
        stmt = stmt.options(defer(Run.pipeline_spec), defer(Run.platform_spec))
    if experiment_id:
        stmt = stmt.where(Run.experiment_id == experiment_id)
    elif namespace:
        stmt = stmt.where(Run.namespace == namespace)
    if view == ViewMode.FULL and (request.page_size or 0) > LIST_FULL_MAX_PAGE_SIZE:
        request = ListRequest(
            LIST_FULL_MAX_PAGE_SIZE, request.page_token, request.sort_by, request.filter
        )
    page = list_page(
        session,
        stmt,
        fields=RUN_FIELDS,
        id_field="run_id",
        default_sort="created_at",
        request=request,
        context=[namespace, experiment_id or ""],
        count=count,
    )
    runs: list[Run] = page.items
    if view == ViewMode.FULL:
        views = []
        for run in runs:
            tasks = _all_tasks(session, run.id)
            views.append(RunView(run, task_count=len(tasks), tasks=tasks, full=True))
    else:
        counts = _task_counts(session, [r.id for r in runs])
        views = [RunView(r, task_count=counts.get(r.id, 0)) for r in runs]
    return Page(items=views, next_page_token=page.next_page_token, total_size=page.total_size)


def set_storage_state(session: Session, run_id: str, state: StorageState) -> None:
    get_or_404(session, Run, run_id, "run").storage_state = int(state)


def delete_run(session: Session, run_id: str) -> None:
    """Delete a run with its tasks and links in one transaction; artifacts stay."""
    run = lock_run(session, run_id)
    tasks_svc.delete_run_tasks(session, run.id)
    session.delete(run)


def terminate_run(session: Session, run_id: str) -> Run:
    """Stop a run: unfinished tasks become CANCELED and the run CANCELED.

    Terminating a run that already finished changes nothing.
    """
    machine = machine_for(session, run_id)
    run = machine.run
    if RunState(run.state).is_terminal:
        return run
    now = now_us()
    machine.set_run_state(RunEvent.TERMINATE, RunState.CANCELING, at=now)
    machine.cancel_unfinished("terminated by user", now)
    machine.set_run_state(
        RunEvent.TERMINATE,
        RunState.CANCELED,
        at=now,
        error={"code": CANCELLED, "message": "the run was terminated"},
    )
    return run


def retry_run(session: Session, run_id: str) -> Run:
    """Retry a failed or canceled run: its successful tasks are kept, the rest start again."""
    machine = machine_for(session, run_id)
    state = RunState(machine.run.state)
    if state not in RETRYABLE_RUN_STATES:
        raise FailedPrecondition(
            f"only FAILED or CANCELED runs can be retried; run is {state.name}"
        )
    now = now_us()
    machine.reset_unfinished(now)
    machine.set_run_state(RunEvent.RETRY, RunState.RUNNING, at=now)
    return machine.run
