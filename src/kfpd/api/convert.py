"""Stored rows -> KFP wire messages."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kfpd.db.models import Artifact as ArtifactRow
from kfpd.db.models import ArtifactTask as LinkRow
from kfpd.db.models import Experiment as ExperimentRow
from kfpd.db.models import Pipeline as PipelineRow
from kfpd.db.models import PipelineVersion as VersionRow
from kfpd.db.models import Task as TaskRow
from kfpd.domain.enums import ArtifactType, IOType, RunState, StorageState, TaskState, TaskType
from kfpd.domain.timeutil import to_rfc3339
from kfpd.schemas.artifacts import Artifact, ArtifactTask, IOProducer
from kfpd.schemas.experiments import Experiment
from kfpd.schemas.pipelines import Pipeline, PipelineVersion
from kfpd.schemas.runs import PipelineVersionReference, Run, RuntimeConfig, RuntimeStatus
from kfpd.schemas.tasks import (
    ChildTask,
    InputOutputs,
    IOArtifact,
    IOParameter,
    PipelineTask,
    StatusMetadata,
    TaskPod,
    TaskStatus,
    TypeAttributes,
)
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
        package_url={"pipeline_url": row.package_url} if row.package_url else None,  # type: ignore[arg-type]
        pipeline_spec=spec,
    )


def artifact_out(row: ArtifactRow) -> Artifact:
    return Artifact(
        artifact_id=row.id,
        name=row.name,
        description=row.description or None,
        type=ArtifactType(row.type),
        uri=row.uri,
        metadata=row.metadata_,
        number_value=row.number_value,
        created_at=to_rfc3339(row.created_at),
        namespace=row.namespace or None,
    )


def _producer(raw: dict[str, Any] | None) -> IOProducer | None:
    if not raw:
        return None
    # Iterations may have been stored as numbers or strings; accept both.
    return IOProducer.model_validate(
        {
            "task_name": raw.get("task_name") or raw.get("taskName"),
            "iteration": raw.get("iteration"),
        }
    )


def link_out(row: LinkRow) -> ArtifactTask:
    return ArtifactTask(
        id=row.id,
        artifact_id=row.artifact_id,
        run_id=row.run_id,
        task_id=row.task_id,
        type=IOType(row.type),
        producer=_producer(row.producer),
        key=row.key,
    )


def _io_artifacts(
    links: list[tuple[LinkRow, ArtifactRow]],
) -> tuple[list[IOArtifact], list[IOArtifact]]:
    """Group a task's links into IOArtifacts: one per (key, IO type, producer, iteration)."""
    groups: dict[tuple[str, int, str, int], list[tuple[LinkRow, ArtifactRow]]] = defaultdict(list)
    for link, art in links:
        producer_name = (link.producer or {}).get("task_name", "")
        groups[(link.key, link.type, producer_name, link.iteration)].append((link, art))
    inputs: list[IOArtifact] = []
    outputs: list[IOArtifact] = []
    for (key, io_type, _name, _iteration), members in sorted(groups.items()):
        item = IOArtifact(
            artifact_key=key,
            type=IOType(io_type),
            producer=_producer(members[0][0].producer),
            artifacts=[artifact_out(a) for _, a in members],
        )
        (outputs if IOType(io_type).is_output else inputs).append(item)
    return inputs, outputs


def task_out(row: TaskRow, hydration: Hydration | None = None) -> PipelineTask:
    in_arts: list[IOArtifact] = []
    out_arts: list[IOArtifact] = []
    children: list[ChildTask] | None = None
    if hydration is not None:
        in_arts, out_arts = _io_artifacts(hydration.links.get(row.id, []))
        children = [ChildTask(task_id=i, name=n) for i, n in hydration.children.get(row.id, [])]
    in_params = [IOParameter.model_validate(p) for p in row.input_parameters or []]
    out_params = [IOParameter.model_validate(p) for p in row.output_parameters or []]
    return PipelineTask(
        name=row.name,
        display_name=row.display_name,
        task_id=row.id,
        run_id=row.run_id,
        pods=[TaskPod.model_validate(p) for p in row.pods or []],
        cache_fingerprint=row.cache_fingerprint or None,
        create_time=to_rfc3339(row.created_at),
        end_time=to_rfc3339(row.finished_at),
        state=TaskState(row.state),
        status_metadata=StatusMetadata.model_validate(row.status_metadata)
        if row.status_metadata
        else None,
        state_history=[TaskStatus.model_validate(h) for h in row.state_history or []],
        type=TaskType(row.type),
        type_attributes=TypeAttributes.model_validate(row.type_attributes or {}),
        parent_task_id=row.parent_task_id,
        child_tasks=children or None,
        inputs=InputOutputs(parameters=in_params or None, artifacts=in_arts or None),
        outputs=InputOutputs(parameters=out_params or None, artifacts=out_arts or None),
        scope_path=row.scope_path or None,
    )


def run_out(view: RunView, hydration: Hydration | None = None, *, with_spec: bool = True) -> Run:
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
        error=row.error,  # type: ignore[arg-type]
        recurring_run_id=row.recurring_run_id,
        state_history=[RuntimeStatus.model_validate(h) for h in row.state_history or []],
        task_count=view.task_count,
        tasks=[task_out(t, hydration) for t in view.tasks] if view.full else None,
    )
