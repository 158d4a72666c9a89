from __future__ import annotations

from typing import Any

from kfpd.domain.enums import RunState, StorageState
from kfpd.schemas.base import Int32, Name, WireModel, wire_enum
from kfpd.schemas.common import Status
from kfpd.schemas.tasks import PipelineTask


class PipelineVersionReference(WireModel):
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None


class RuntimeConfig(WireModel):
    parameters: dict[str, Any] | None = None
    pipeline_root: str | None = None


class RuntimeStatus(WireModel):
    update_time: str | None = None
    state: wire_enum(RunState) | None = None  # type: ignore[valid-type]
    error: Status | None = None


class RunDetails(WireModel):
    pipeline_context_id: str | None = None
    pipeline_run_context_id: str | None = None
    task_details: list[dict[str, Any]] | None = None


class RunCreate(WireModel):
    experiment_id: Name | None = None
    display_name: Name | None = None
    description: str | None = None
    pipeline_version_id: Name | None = None
    pipeline_spec: dict[str, Any] | None = None
    pipeline_version_reference: PipelineVersionReference | None = None
    runtime_config: RuntimeConfig | None = None
    service_account: Name | None = None
    recurring_run_id: Name | None = None
    # Output-only fields a client may echo back (e.g. when cloning a run); ignored.
    run_id: str | None = None
    storage_state: wire_enum(StorageState) | None = None  # type: ignore[valid-type]
    created_at: str | None = None
    scheduled_at: str | None = None
    finished_at: str | None = None
    state: wire_enum(RunState) | None = None  # type: ignore[valid-type]
    error: Status | None = None
    run_details: RunDetails | None = None
    state_history: list[RuntimeStatus] | None = None
    task_count: Int32 | None = None
    tasks: list[PipelineTask] | None = None
    plugins_input: dict[str, Any] | None = None
    plugins_output: dict[str, Any] | None = None
    pipeline_reference: PipelineVersionReference | None = None


class Run(WireModel):
    experiment_id: str | None = None
    run_id: str
    display_name: str | None = None
    storage_state: wire_enum(StorageState) | None = None  # type: ignore[valid-type]
    description: str | None = None
    pipeline_version_id: str | None = None
    pipeline_spec: dict[str, Any] | None = None
    pipeline_version_reference: PipelineVersionReference | None = None
    runtime_config: RuntimeConfig | None = None
    service_account: str | None = None
    created_at: str | None = None
    scheduled_at: str | None = None
    finished_at: str | None = None
    state: wire_enum(RunState) | None = None  # type: ignore[valid-type]
    error: Status | None = None
    run_details: RunDetails | None = None
    recurring_run_id: str | None = None
    state_history: list[RuntimeStatus] | None = None
    task_count: Int32 | None = None
    tasks: list[PipelineTask] | None = None


class ListRunsResponse(WireModel):
    runs: list[Run] = []
    total_size: Int32 = 0
    next_page_token: str | None = None


class DeleteRunReply(WireModel):
    """DeleteRun's answer; the fields are set with ``delete_artifacts=true`` (kfpd extension)."""

    dry_run: bool | None = None
    artifact_objects: list[str] | None = None  # deleted (or, on a dry run, to be deleted)
    kept: list[dict[str, str]] | None = None  # {uri, reason}
    errors: list[dict[str, str]] | None = None  # {uri, error}
