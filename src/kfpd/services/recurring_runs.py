"""Recurring runs: schedules (create, read, enable/disable, update, delete) and firing slots.

Firing is one transaction per schedule: lock the schedule row, decide which slots are due
(domain/schedule.decide), create each run through ``runs.create_run`` and claim its slot
(primary key (schedule, scheduled time)), move the schedule's cursor. A crash before the commit
leaves nothing; after it, the slot is claimed for good, so no slot fires twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import Experiment, PipelineVersion, Run
from kfpd.db.models import RecurringRun as Schedule
from kfpd.db.models import RecurringRunSlot as Slot
from kfpd.domain.enums import RecurringRunMode, RecurringRunStatus, RunState, StorageState
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from kfpd.domain.schedule import (
    MAX_CONCURRENCY,
    SECOND_US,
    Decision,
    MacroValues,
    ScheduleState,
    Trigger,
    decide,
    expand_macros,
    first_slot_after,
    timeline,
)
from kfpd.domain.timeutil import parse_rfc3339, to_rfc3339
from kfpd.schemas import recurring_runs as wire
from kfpd.schemas.runs import PipelineVersionReference, RunCreate, RuntimeConfig
from kfpd.services import experiments as experiments_svc
from kfpd.services import runs as runs_svc
from kfpd.services.common import get_or_404, new_id
from kfpd.spec.loader import split_spec

NEXT_FIRE_TIMES = 5
ACTIVE_RUN_STATES = [
    int(RunState.PENDING),
    int(RunState.RUNNING),
    int(RunState.CANCELING),
    int(RunState.PAUSED),
]

RECURRING_RUN_FIELDS: dict[str, Field] = {
    "recurring_run_id": Field(Schedule.id),
    "id": Field(Schedule.id),
    "display_name": Field(Schedule.display_name),
    "name": Field(Schedule.display_name),
    "description": Field(Schedule.description, sortable=False),
    "created_at": Field(Schedule.created_at, "timestamp"),
    "updated_at": Field(Schedule.updated_at, "timestamp"),
    "status": Field(Schedule.status, "enum", RecurringRunStatus),
    "max_concurrency": Field(Schedule.max_concurrency, "int"),
    "experiment_id": Field(Schedule.experiment_id, sortable=False),
    "namespace": Field(Schedule.namespace, sortable=False),
    "pipeline_id": Field(Schedule.pipeline_id, sortable=False),
    "pipeline_version_id": Field(Schedule.pipeline_version_id, sortable=False),
}


# -- reading a body


def _time(value: str | None, what: str) -> int:
    if not value:
        return 0
    try:
        return max(parse_rfc3339(value), 0)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc.message}") from exc


def parse_trigger(body: wire.Trigger | None) -> Trigger:
    if body is None:
        raise InvalidArgument("trigger is required: cron_schedule or periodic_schedule")
    cron, periodic = body.cron_schedule, body.periodic_schedule
    if (cron is None) == (periodic is None):
        raise InvalidArgument("trigger needs exactly one of cron_schedule or periodic_schedule")
    if cron is not None:
        if not (cron.cron or "").strip():
            raise InvalidArgument("trigger.cron_schedule.cron is required")
        trigger = Trigger(
            cron=" ".join((cron.cron or "").split()),
            start_us=_time(cron.start_time, "cron_schedule.start_time"),
            end_us=_time(cron.end_time, "cron_schedule.end_time"),
            timezone=cron.timezone or "UTC",
        )
    else:
        assert periodic is not None
        trigger = Trigger(
            interval_second=periodic.interval_second or 0,
            start_us=_time(periodic.start_time, "periodic_schedule.start_time"),
            end_us=_time(periodic.end_time, "periodic_schedule.end_time"),
        )
    trigger.validate()
    return trigger


def _max_concurrency(value: int | None) -> int:
    if value is None:
        return 1  # the SDK and CLI send 1 unless told otherwise
    if not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidArgument(
            f"max_concurrency must be between 1 and {MAX_CONCURRENCY}, got {value}"
        )
    return value


def trigger_of(row: Schedule) -> Trigger:
    return Trigger(
        cron=row.cron,
        interval_second=row.interval_second,
        start_us=row.start_time,
        end_us=row.end_time,
        timezone=row.timezone,
    )


def _store_trigger(row: Schedule, trigger: Trigger) -> None:
    row.cron = trigger.cron
    row.interval_second = trigger.interval_second
    row.start_time = trigger.start_us
    row.end_time = trigger.end_us
    row.timezone = trigger.timezone


def _run_template(row: Schedule) -> RunCreate:
    """The run every slot of ``row`` creates, before macros are expanded."""
    spec: dict[str, Any] | None = row.pipeline_spec
    if spec is not None and row.platform_spec:
        spec = {"pipeline_spec": spec, "platform_spec": row.platform_spec}
    ref = None
    if row.pipeline_id or row.pipeline_version_id:
        ref = PipelineVersionReference(
            pipeline_id=row.pipeline_id, pipeline_version_id=row.pipeline_version_id
        )
    config = RuntimeConfig.model_validate(row.runtime_config) if row.runtime_config else None
    return RunCreate(
        experiment_id=row.experiment_id,
        description=row.description or None,
        pipeline_spec=spec,
        pipeline_version_reference=ref,
        runtime_config=config,
        service_account=row.service_account or None,
    )


def _expanded(template: RunCreate, values: MacroValues) -> RunCreate:
    config = template.runtime_config
    if config is None or not config.parameters:
        return template
    params = expand_macros(config.parameters, values)
    return template.model_copy(
        update={"runtime_config": config.model_copy(update={"parameters": params})}
    )


def _check_template(session: Session, row: Schedule, now_us: int) -> None:
    """The run template must make a valid run (macros expanded with sample values)."""
    sample = _expanded(_run_template(row), MacroValues(now_us, now_us, row.last_index + 1))
    runs_svc.check_run_body(session, sample)


def _experiment(session: Session, experiment_id: str | None) -> Experiment:
    if not experiment_id:
        return experiments_svc.default_experiment(session, "")
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFound(f"experiment {experiment_id!r} not found")
    if experiment.storage_state == StorageState.ARCHIVED:
        raise FailedPrecondition(f"experiment {experiment.id} is archived; unarchive it first")
    return experiment


def _pipeline_source(session: Session, body: wire.RecurringRun, row: Schedule) -> None:
    ref = body.pipeline_version_reference
    pipeline_id = ref.pipeline_id if ref else None
    version_id = (ref.pipeline_version_id if ref else None) or body.pipeline_version_id
    if body.pipeline_spec:
        if pipeline_id or version_id:
            raise InvalidArgument(
                "give either pipeline_spec or pipeline_version_reference, not both"
            )
        loaded = split_spec(body.pipeline_spec)
        row.pipeline_spec, row.platform_spec = loaded.pipeline_spec, loaded.platform_spec
        return
    if version_id and not pipeline_id:
        version = get_or_404(session, PipelineVersion, version_id, "pipeline version")
        pipeline_id = version.pipeline_id
    if not pipeline_id:
        raise InvalidArgument("a recurring run needs pipeline_spec or pipeline_version_reference")
    # Without a version id each slot runs the pipeline's latest version at fire time.
    row.pipeline_id, row.pipeline_version_id = pipeline_id, version_id or None


# -- the API's use cases


def create_recurring_run(session: Session, body: wire.RecurringRun, now_us: int) -> Schedule:
    name = (body.display_name or "").strip()
    if not name:
        raise InvalidArgument("display_name is required")
    trigger = parse_trigger(body.trigger)
    experiment = _experiment(session, body.experiment_id)
    enabled = body.mode == RecurringRunMode.ENABLE  # upstream: unspecified = disabled
    row = Schedule(
        id=new_id(),
        namespace=experiment.namespace,
        experiment_id=experiment.id,
        display_name=name[:255],
        description=body.description or "",
        runtime_config=body.runtime_config.dump() if body.runtime_config else {},
        service_account=body.service_account or "",
        max_concurrency=_max_concurrency(body.max_concurrency),
        status=int(RecurringRunStatus.ENABLED if enabled else RecurringRunStatus.DISABLED),
        no_catchup=1 if body.no_catchup else 0,
        created_at=now_us,
        updated_at=now_us,
        settled_until=0,
        last_index=0,
        error=None,
    )
    _store_trigger(row, trigger)
    _pipeline_source(session, body, row)
    _check_template(session, row, now_us)
    session.add(row)
    session.flush()
    return row


def get_recurring_run(session: Session, recurring_run_id: str) -> Schedule:
    return get_or_404(session, Schedule, recurring_run_id, "recurring run")


def list_recurring_runs(
    session: Session, *, namespace: str, experiment_id: str | None, request: ListRequest
) -> Page[Schedule]:
    stmt = select(Schedule).options(defer(Schedule.pipeline_spec), defer(Schedule.platform_spec))
    if experiment_id:
        stmt = stmt.where(Schedule.experiment_id == experiment_id)
    elif namespace:
        stmt = stmt.where(Schedule.namespace == namespace)
    return list_page(
        session,
        stmt,
        fields=RECURRING_RUN_FIELDS,
        id_field="recurring_run_id",
        default_sort="created_at",
        request=request,
        context=[namespace, experiment_id or ""],
    )


def _lock(session: Session, recurring_run_id: str) -> Schedule:
    row = session.scalars(
        select(Schedule).where(Schedule.id == recurring_run_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"recurring run {recurring_run_id!r} not found")
    return row


def enable_recurring_run(session: Session, recurring_run_id: str, now_us: int) -> Schedule:
    """Enable: slots from now on fire; the disabled window is never backfilled."""
    row = _lock(session, recurring_run_id)
    if row.status != RecurringRunStatus.ENABLED:
        row.status = int(RecurringRunStatus.ENABLED)
        row.settled_until = max(row.settled_until, now_us)
        row.updated_at = now_us
    return row


def disable_recurring_run(session: Session, recurring_run_id: str, now_us: int) -> Schedule:
    """Disable: no more slots fire; runs already fired go on."""
    row = _lock(session, recurring_run_id)
    if row.status != RecurringRunStatus.DISABLED:
        row.status = int(RecurringRunStatus.DISABLED)
        row.updated_at = now_us
    return row


def delete_recurring_run(session: Session, recurring_run_id: str) -> None:
    """Delete the schedule and its slot claims; the runs it fired stay (upstream's ORPHAN)."""
    session.delete(_lock(session, recurring_run_id))


def update_recurring_run(
    session: Session, recurring_run_id: str, body: wire.RecurringRunUpdate, now_us: int
) -> Schedule:
    """Change a schedule in place (kfpd extension). Runs already fired are not touched; a new
    trigger counts from now (the slots it would have had before are not backfilled)."""
    row = _lock(session, recurring_run_id)
    if body.display_name is not None:
        name = body.display_name.strip()
        if not name:
            raise InvalidArgument("display_name must not be empty")
        row.display_name = name[:255]
    if body.description is not None:
        row.description = body.description
    if body.trigger is not None:
        _store_trigger(row, parse_trigger(body.trigger))
        row.settled_until = max(row.settled_until, now_us)
    if body.max_concurrency is not None:
        row.max_concurrency = _max_concurrency(body.max_concurrency)
    if body.no_catchup is not None:
        row.no_catchup = 1 if body.no_catchup else 0
    if body.service_account is not None:
        row.service_account = body.service_account
    if body.runtime_config is not None:
        row.runtime_config = body.runtime_config.dump()
        _check_template(session, row, now_us)
    row.updated_at = now_us
    return row


def next_fire_times(row: Schedule, now_us: int, count: int = NEXT_FIRE_TIMES) -> list[int]:
    """When the schedule fires next (if it is or gets enabled now)."""
    return timeline(trigger_of(row), row.created_at).upcoming(max(row.settled_until, now_us), count)


# -- firing


@dataclass
class Fired:
    run_ids: list[str] = field(default_factory=list)
    deferred: bool = False


def _active_runs(session: Session, ids: Iterable[str]) -> dict[str, int]:
    ids = list(ids)
    counts: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(Run.recurring_run_id, func.count())
            .where(Run.recurring_run_id.in_(chunk), Run.state.in_(ACTIVE_RUN_STATES))
            .group_by(Run.recurring_run_id)
        )
        counts.update({str(rid): int(n) for rid, n in rows})
    return counts


def _state(row: Schedule, active_runs: int) -> ScheduleState:
    return ScheduleState(
        timeline=timeline(trigger_of(row), row.created_at),
        after_us=row.settled_until,
        active_runs=active_runs,
        max_concurrency=row.max_concurrency,
        no_catchup=bool(row.no_catchup),
    )


def scan(session: Session, now_us: int) -> list[tuple[str, Decision]]:
    """Every enabled schedule with its decision at ``now_us`` (a read; nothing is claimed).

    A schedule has something due only if the first slot after its cursor has come (with or
    without catch-up), so only those get the full decision and a count of their active runs.
    """
    timing = session.execute(
        select(
            Schedule.id,
            Schedule.cron,
            Schedule.interval_second,
            Schedule.start_time,
            Schedule.end_time,
            Schedule.timezone,
            Schedule.created_at,
            Schedule.settled_until,
        ).where(Schedule.status == int(RecurringRunStatus.ENABLED))
    )
    decisions: dict[str, Decision] = {}
    due: list[str] = []
    for row in timing:
        trigger = Trigger(row.cron, row.interval_second, row.start_time, row.end_time, row.timezone)
        first = first_slot_after(trigger, row.created_at, row.settled_until)
        if first is not None and first <= now_us:
            due.append(row.id)
        else:
            decisions[row.id] = Decision(wake_at_us=first)  # None: the schedule has ended
    active = _active_runs(session, due)
    for start in range(0, len(due), 500):
        rows = session.scalars(
            select(Schedule)
            .options(
                defer(Schedule.pipeline_spec),
                defer(Schedule.platform_spec),
                defer(Schedule.runtime_config),
            )
            .where(Schedule.id.in_(due[start : start + 500]))
        )
        for full in rows:
            decisions[full.id] = decide(_state(full, active.get(full.id, 0)), now_us)
    return list(decisions.items())


def _run_name(row: Schedule, seq: int, slot_us: int) -> str:
    stamp = datetime.fromtimestamp(slot_us // SECOND_US, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{row.display_name} #{seq} ({stamp})"[:255]


def fire_due(session: Session, recurring_run_id: str, now_us: int) -> Fired:
    """Fire the due slots of one schedule in the caller's transaction (see the module doc)."""
    row = session.scalars(
        select(Schedule).where(Schedule.id == recurring_run_id).with_for_update()
    ).first()
    if row is None or row.status != RecurringRunStatus.ENABLED:
        return Fired()
    active = _active_runs(session, [row.id]).get(row.id, 0)
    decision = decide(_state(row, active), now_us)
    fired = Fired(deferred=decision.deferred)
    template = _run_template(row)
    for slot in decision.fire:
        seq = row.last_index + 1
        body = _expanded(template, MacroValues(slot, now_us, seq)).model_copy(
            update={
                "display_name": _run_name(row, seq, slot),
                "recurring_run_id": row.id,
                "scheduled_at": to_rfc3339(slot),
            }
        )
        run = runs_svc.create_run(session, body)
        session.add(
            Slot(
                recurring_run_id=row.id,
                scheduled_at=slot,
                seq=seq,
                run_id=run.id,
                created_at=now_us,
            )
        )
        row.last_index = seq
        row.settled_until = max(row.settled_until, slot)
        fired.run_ids.append(run.id)
    if fired.run_ids:
        row.error = None
        session.flush()  # a slot claimed meanwhile by another server fails here, before commit
    return fired


def record_error(session: Session, recurring_run_id: str, code: int, message: str) -> None:
    """Keep why the last firing failed on the schedule (shown as its ``error``)."""
    row = session.get(Schedule, recurring_run_id)
    if row is not None:
        row.error = {"code": code, "message": message}
