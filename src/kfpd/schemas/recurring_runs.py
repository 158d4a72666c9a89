"""RecurringRunService messages (upstream backend/api/v2beta1/recurring_run.proto).

kfpd extensions (docs/api.md): ``cron_schedule.timezone`` (IANA name, default UTC),
``next_fire_times`` (output: the next 5 slots) and the update body of
``PATCH /apis/v2beta1/recurringruns/{id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from kfpd.domain.enums import RecurringRunMode, RecurringRunStatus
from kfpd.domain.schedule import MAX_CONCURRENCY
from kfpd.schemas.base import Int32, Int64, WireModel, int64_between, wire_enum
from kfpd.schemas.common import Status
from kfpd.schemas.runs import PipelineVersionReference, RuntimeConfig

MaxConcurrency = Annotated[Int64, int64_between(1, MAX_CONCURRENCY)]


class CronSchedule(WireModel):
    start_time: str | None = None
    end_time: str | None = None
    cron: str | None = None
    timezone: str | None = None  # kfpd extension


class PeriodicSchedule(WireModel):
    start_time: str | None = None
    end_time: str | None = None
    interval_second: Int64 | None = None


class Trigger(WireModel):
    cron_schedule: CronSchedule | None = None
    periodic_schedule: PeriodicSchedule | None = None


class RecurringRun(WireModel):
    recurring_run_id: str | None = None
    display_name: str | None = None
    description: str | None = None
    pipeline_version_id: str | None = None  # deprecated upstream; still accepted
    pipeline_spec: dict[str, Any] | None = None
    pipeline_version_reference: PipelineVersionReference | None = None
    runtime_config: RuntimeConfig | None = None
    service_account: str | None = None
    max_concurrency: MaxConcurrency | None = None
    trigger: Trigger | None = None
    mode: wire_enum(RecurringRunMode) | None = None  # type: ignore[valid-type]
    created_at: str | None = None
    updated_at: str | None = None
    status: wire_enum(RecurringRunStatus) | None = None  # type: ignore[valid-type]
    error: Status | None = None
    no_catchup: bool | None = None
    namespace: str | None = None
    experiment_id: str | None = None
    plugins_input: dict[str, Any] | None = None
    next_fire_times: list[str] | None = None  # kfpd extension (output)


class RecurringRunUpdate(WireModel):
    """A partial update (kfpd extension): fields left out keep their value."""

    display_name: str | None = None
    description: str | None = None
    trigger: Trigger | None = None
    runtime_config: RuntimeConfig | None = None
    max_concurrency: MaxConcurrency | None = None
    no_catchup: bool | None = None
    service_account: str | None = None


class ListRecurringRunsResponse(WireModel):
    # The proto spells this field recurringRuns, and the SDK reads exactly that key.
    recurring_runs: list[RecurringRun] = Field(default=[], alias="recurringRuns")
    total_size: Int32 = 0
    next_page_token: str | None = None
