"""Stored rows -> KFP wire messages."""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

from fastapi import Response
from pydantic import BaseModel
from pydantic_core import to_json

from kfpd.db.listing import Page
from kfpd.db.models import Artifact as ArtifactRow
from kfpd.db.models import ArtifactTask as LinkRow
from kfpd.db.models import Experiment as ExperimentRow
from kfpd.db.models import Pipeline as PipelineRow
from kfpd.db.models import PipelineVersion as VersionRow
from kfpd.db.models import RecurringRun as ScheduleRow
from kfpd.db.models import Task as TaskRow
from kfpd.domain import grpc_codes
from kfpd.domain.enums import (
    ArtifactType,
    IOType,
    RecurringRunMode,
    RecurringRunStatus,
    RunState,
    StorageState,
    TaskState,
    TaskType,
)
from kfpd.domain.timeutil import to_rfc3339
from kfpd.schemas.artifacts import Artifact, ArtifactTask, IOProducer
from kfpd.schemas.experiments import Experiment
from kfpd.schemas.pipelines import Pipeline, PipelineVersion
from kfpd.schemas.recurring_runs import CronSchedule, PeriodicSchedule, RecurringRun, Trigger
from kfpd.schemas.runs import (
    PipelineVersionReference,
    Run,
    RunDetails,
    RuntimeConfig,
    RuntimeStatus,
)
from kfpd.schemas.tasks import PipelineTask
from kfpd.services import recurring_runs as recurring_runs_svc
from kfpd.services.artifacts import Hydration
from kfpd.services.runs import RunView


def experiment_out(row: ExperimentRow) -> Experiment:
    return Experiment(
        experiment_id=row.id,
        display_name=row.display_name,
        description=row.description or None,
        created_at=to_rfc3339(row.created_at),
        namespace=row.namespace or None,
        storage_state=StorageState(row.storage_state),
        last_run_created_at=to_rfc3339(row.last_run_created_at),
    )


def pipeline_out(row: PipelineRow) -> Pipeline:
    return Pipeline(
        pipeline_id=row.id,
        name=row.name,
        display_name=row.display_name,
        description=row.description or None,
        created_at=to_rfc3339(row.created_at),
        namespace=row.namespace or None,
        tags=row.tags or None,
    )


def version_out(row: VersionRow) -> PipelineVersion:
    spec: dict[str, Any] = row.pipeline_spec
    if row.platform_spec:
        spec = {"pipeline_spec": row.pipeline_spec, "platform_spec": row.platform_spec}
    return PipelineVersion(
        pipeline_id=row.pipeline_id,
        pipeline_version_id=row.id,
        name=row.name,
        display_name=row.display_name,
        description=row.description or None,
        created_at=to_rfc3339(row.created_at),
        code_source_url=row.code_source_url or None,
        package_url={"pipeline_url": row.package_url} if row.package_url else None,
        pipeline_spec=spec,
    )


# Tasks, artifacts and links are built as plain wire dicts (exactly what their Pydantic models
# dump with exclude_none), so the hot write routes can send them without a validate/serialize
# round trip; the *_out functions validate the same dicts for the responses that embed them.
# Their stored JSON columns (parameters, pods, history, ...) are written by services/tasks.py in
# this wire form already; tests check the dicts equal the models' dumps.


def wire_json(content: Any, status_code: int = 200) -> Response:
    """A JSON response of an already wire-shaped value (no response-model pass)."""
    body = to_json(content, inf_nan_mode="null")  # as the models do (ser_json_inf_nan)
    return Response(body, status_code=status_code, media_type="application/json")


def model_json(model: BaseModel, status_code: int = 200) -> Response:
    """A JSON response of a built wire model, serialized once (as response_model would, minus
    FastAPI's second validation pass over it)."""
    return wire_json(model.model_dump(mode="json", exclude_none=True, by_alias=True), status_code)


def page_dict(key: str, items: list[dict[str, Any]], page: Page[Any]) -> dict[str, Any]:
    """A List* response: the items, total_size and (when there is more) next_page_token."""
    out: dict[str, Any] = {key: items, "total_size": page.total_size}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


def artifact_dict(row: ArtifactRow) -> dict[str, Any]:
    out: dict[str, Any] = {"artifact_id": row.id, "name": row.name}
    if row.description:
        out["description"] = row.description
    out["type"] = ArtifactType(row.type).name
    if row.uri is not None:
        out["uri"] = row.uri
    if row.metadata_ is not None:
        out["metadata"] = row.metadata_
    if row.number_value is not None:
        out["number_value"] = row.number_value
    created = to_rfc3339(row.created_at)
    if created is not None:
        out["created_at"] = created
    if row.namespace:
        out["namespace"] = row.namespace
    return out


def artifact_out(row: ArtifactRow) -> Artifact:
    return Artifact.model_validate(artifact_dict(row))


def _producer(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    task_name, iteration = raw.get("task_name") or raw.get("taskName"), raw.get("iteration")
    if isinstance(task_name, str | None) and isinstance(iteration, int | str | float | None):
        return dict(_producer_wire(task_name, iteration))  # a copy: callers own their dicts
    return _producer_wire.__wrapped__(task_name, iteration)


@functools.lru_cache(maxsize=4096)
def _producer_wire(task_name: Any, iteration: Any) -> dict[str, Any]:
    """The wire form of a stored producer, remembered: a run's links repeat a few (task,
    iteration) pairs, and a model pass per link was most of a big GetRun's task_details."""
    # Iterations may have been stored as numbers or strings; accept both.
    return IOProducer.model_validate({"task_name": task_name, "iteration": iteration}).dump()


def link_dict(row: LinkRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "artifact_id": row.artifact_id,
        "run_id": row.run_id,
        "task_id": row.task_id,
        "type": IOType(row.type).name,
    }
    producer = _producer(row.producer)
    if producer is not None:
        out["producer"] = producer
    out["key"] = row.key
    return out


def link_out(row: LinkRow) -> ArtifactTask:
    return ArtifactTask.model_validate(link_dict(row))


_Group = tuple[tuple[str, int, str, int], list[tuple[LinkRow, ArtifactRow]]]


def _io_groups(links: list[tuple[LinkRow, ArtifactRow]]) -> list[_Group]:
    """A task's links by (key, IO type, producer, iteration), in that order: one IOArtifact
    each."""
    groups: dict[tuple[str, int, str, int], list[tuple[LinkRow, ArtifactRow]]] = defaultdict(list)
    for link, art in links:
        producer_name = (link.producer or {}).get("task_name", "")
        groups[(link.key, link.type, producer_name, link.iteration)].append((link, art))
    return sorted(groups.items())


def _io_artifacts(
    links: list[tuple[LinkRow, ArtifactRow]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Group a task's links into IOArtifacts: one per (key, IO type, producer, iteration)."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    for (key, io_type, _name, _iteration), members in _io_groups(links):
        item: dict[str, Any] = {
            "artifacts": [artifact_dict(a) for _, a in members],
            "type": IOType(io_type).name,
            "artifact_key": key,
        }
        producer = _producer(members[0][0].producer)
        if producer is not None:
            item["producer"] = producer
        (outputs if IOType(io_type).is_output else inputs).append(item)
    return inputs, outputs


def _io(parameters: list[dict[str, Any]] | None, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if parameters:
        # A stored parameter keeps "value": None when it has none; the wire omits it.
        out["parameters"] = [
            p if p.get("value") is not None else {k: v for k, v in p.items() if k != "value"}
            for p in parameters
        ]
    if artifacts:
        out["artifacts"] = artifacts
    return out


def task_dict(row: TaskRow, hydration: Hydration | None = None) -> dict[str, Any]:
    in_arts: list[dict[str, Any]] = []
    out_arts: list[dict[str, Any]] = []
    children: list[tuple[str, str]] = []
    if hydration is not None:
        in_arts, out_arts = _io_artifacts(hydration.links.get(row.id, []))
        children = hydration.children.get(row.id, [])
    out: dict[str, Any] = {
        "name": row.name,
        "display_name": row.display_name,
        "task_id": row.id,
        "run_id": row.run_id,
        "pods": row.pods or [],
    }
    if row.cache_fingerprint:
        out["cache_fingerprint"] = row.cache_fingerprint
    created = to_rfc3339(row.created_at)
    if created is not None:
        out["create_time"] = created
    ended = to_rfc3339(row.finished_at)
    if ended is not None:
        out["end_time"] = ended
    out["state"] = TaskState(row.state).name
    if row.status_metadata:
        out["status_metadata"] = row.status_metadata
    out["state_history"] = row.state_history or []
    out["type"] = TaskType(row.type).name
    out["type_attributes"] = row.type_attributes or {}
    if row.parent_task_id is not None:
        out["parent_task_id"] = row.parent_task_id
    if children:
        out["child_tasks"] = [{"task_id": i, "name": n} for i, n in children]
    out["inputs"] = _io(row.input_parameters, in_arts)
    out["outputs"] = _io(row.output_parameters, out_arts)
    if row.scope_path:
        out["scope_path"] = row.scope_path
    return out


def task_out(row: TaskRow, hydration: Hydration | None = None) -> PipelineTask:
    return PipelineTask.model_validate(task_dict(row, hydration))


# Upstream's PipelineTaskDetail.state is a RuntimeState (run states): a cache hit succeeded.
_DETAIL_STATE = {
    TaskState.PENDING: RunState.PENDING,
    TaskState.RUNNING: RunState.RUNNING,
    TaskState.SUCCEEDED: RunState.SUCCEEDED,
    TaskState.CACHED: RunState.SUCCEEDED,
    TaskState.SKIPPED: RunState.SKIPPED,
    TaskState.FAILED: RunState.FAILED,
    TaskState.CANCELED: RunState.CANCELED,
}


def _artifact_ids(
    links: list[tuple[LinkRow, ArtifactRow]],
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, list[str]]]]:
    """Input and output artifact ids by key, in :func:`_io_artifacts`' order (ids only: no
    artifact bodies built to be dropped)."""
    inputs: dict[str, dict[str, list[str]]] = {}
    outputs: dict[str, dict[str, list[str]]] = {}
    for (key, io_type, _name, _iteration), members in _io_groups(links):
        ids = outputs if IOType(io_type).is_output else inputs
        ids.setdefault(key, {"artifact_ids": []})["artifact_ids"].extend(a.id for _, a in members)
    return inputs, outputs


def task_detail(row: TaskRow, hydration: Hydration) -> dict[str, Any]:
    """One ``run_details.task_details`` entry (upstream's PipelineTaskDetail)."""
    in_ids, out_ids = _artifact_ids(hydration.links.get(row.id, []))
    state = _DETAIL_STATE.get(TaskState(row.state), RunState.RUNTIME_STATE_UNSPECIFIED)
    detail: dict[str, Any] = {
        "run_id": row.run_id,
        "task_id": row.id,
        "display_name": row.display_name or row.name,
        "create_time": to_rfc3339(row.created_at),
        "start_time": to_rfc3339(row.started_at or row.created_at),
        "end_time": to_rfc3339(row.finished_at),
        "state": state.name,
        "inputs": in_ids,
        "outputs": out_ids,
        "parent_task_id": row.parent_task_id,
        "state_history": row.state_history or [],
        "child_tasks": [{"task_id": i} for i, _ in hydration.children.get(row.id, [])],
    }
    message = (row.status_metadata or {}).get("message")
    if state == RunState.FAILED and message:
        detail["error"] = {"code": grpc_codes.UNKNOWN, "message": message}
    return {k: v for k, v in detail.items() if v is not None}


def run_out(
    view: RunView,
    hydration: Hydration | None = None,
    *,
    with_spec: bool = True,
    details_of: list[TaskRow] | None = None,
) -> Run:
    row = view.run
    spec: dict[str, Any] | None = None
    if with_spec and (view.full or row.spec_inline):
        spec = row.pipeline_spec
        if row.platform_spec:
            spec = {"pipeline_spec": row.pipeline_spec, "platform_spec": row.platform_spec}
    ref = None
    if row.pipeline_version_id:
        ref = PipelineVersionReference(
            pipeline_id=row.pipeline_id, pipeline_version_id=row.pipeline_version_id
        )
    config = row.runtime_config or {}
    return Run(
        experiment_id=row.experiment_id,
        run_id=row.id,
        display_name=row.display_name,
        storage_state=StorageState(row.storage_state),
        description=row.description or None,
        pipeline_version_id=row.pipeline_version_id,
        pipeline_spec=spec,
        pipeline_version_reference=ref,
        runtime_config=RuntimeConfig.model_validate(config) if config else None,
        service_account=row.service_account or None,
        created_at=to_rfc3339(row.created_at),
        scheduled_at=to_rfc3339(row.scheduled_at),
        finished_at=to_rfc3339(row.finished_at),
        state=RunState(row.state),
        error=row.error,
        recurring_run_id=row.recurring_run_id,
        state_history=[RuntimeStatus.model_validate(h) for h in row.state_history or []],
        task_count=view.task_count,
        tasks=[task_out(t, hydration) for t in view.tasks] if view.full else None,
        run_details=(
            RunDetails(task_details=[task_detail(t, hydration) for t in details_of])
            if details_of is not None and hydration is not None
            else None
        ),
    )


def recurring_run_out(row: ScheduleRow, now_us: int, *, with_spec: bool = True) -> RecurringRun:
    times = {"start_time": to_rfc3339(row.start_time), "end_time": to_rfc3339(row.end_time)}
    if row.cron:
        tz = row.timezone if row.timezone != "UTC" else None
        trigger = Trigger(cron_schedule=CronSchedule(cron=row.cron, timezone=tz, **times))
    else:
        trigger = Trigger(
            periodic_schedule=PeriodicSchedule(interval_second=row.interval_second, **times)
        )
    spec: dict[str, Any] | None = None
    if with_spec and row.pipeline_spec is not None:
        spec = row.pipeline_spec
        if row.platform_spec:
            spec = {"pipeline_spec": row.pipeline_spec, "platform_spec": row.platform_spec}
    ref = None
    if row.pipeline_id:
        ref = PipelineVersionReference(
            pipeline_id=row.pipeline_id, pipeline_version_id=row.pipeline_version_id
        )
    enabled = row.status == RecurringRunStatus.ENABLED
    config = row.runtime_config or {}
    return RecurringRun(
        recurring_run_id=row.id,
        display_name=row.display_name,
        description=row.description or None,
        pipeline_version_id=row.pipeline_version_id,
        pipeline_spec=spec,
        pipeline_version_reference=ref,
        runtime_config=RuntimeConfig.model_validate(config) if config else None,
        service_account=row.service_account or None,
        max_concurrency=row.max_concurrency,
        trigger=trigger,
        mode=RecurringRunMode.ENABLE if enabled else RecurringRunMode.DISABLE,
        created_at=to_rfc3339(row.created_at),
        updated_at=to_rfc3339(row.updated_at),
        status=RecurringRunStatus(row.status),
        error=row.error,
        no_catchup=bool(row.no_catchup),
        namespace=row.namespace or None,
        experiment_id=row.experiment_id,
        next_fire_times=[
            t for t in map(to_rfc3339, recurring_runs_svc.next_fire_times(row, now_us)) if t
        ],
    )
