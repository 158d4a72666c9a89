from __future__ import annotations

from typing import Any

from kfpd.domain.enums import IOType, TaskPodType, TaskState, TaskType
from kfpd.schemas.artifacts import Artifact, IOProducer
from kfpd.schemas.base import Int32, Int64, Name, WireModel, wire_enum
from kfpd.schemas.common import Status


class TaskPod(WireModel):
    name: Name | None = None
    uid: str | None = None
    type: wire_enum(TaskPodType) | None = None  # type: ignore[valid-type]


class StatusMetadata(WireModel):
    message: str | None = None
    custom_properties: dict[str, Any] | None = None


class TaskStatus(WireModel):
    update_time: str | None = None
    state: wire_enum(TaskState) | None = None  # type: ignore[valid-type]
    error: Status | None = None


class TypeAttributes(WireModel):
    iteration_index: Int64 | None = None
    iteration_count: Int64 | None = None
    download_to_workspace: bool | None = None


class ChildTask(WireModel):
    task_id: str | None = None
    name: str | None = None


class IOParameter(WireModel):
    value: Any = None
    type: wire_enum(IOType) | None = None  # type: ignore[valid-type]
    parameter_key: Name | None = None
    producer: IOProducer | None = None


class IOArtifact(WireModel):
    artifacts: list[Artifact] | None = None
    type: wire_enum(IOType) | None = None  # type: ignore[valid-type]
    artifact_key: Name | None = None
    producer: IOProducer | None = None


class InputOutputs(WireModel):
    parameters: list[IOParameter] | None = None
    artifacts: list[IOArtifact] | None = None


class PipelineTask(WireModel):
    """A run-graph node. The same message is the CreateTask/UpdateTask body and the reply."""

    name: Name | None = None
    display_name: Name | None = None
    task_id: str | None = None
    run_id: str | None = None
    pods: list[TaskPod] | None = None
    cache_fingerprint: str | None = None
    create_time: str | None = None
    end_time: str | None = None
    state: wire_enum(TaskState) | None = None  # type: ignore[valid-type]
    status_metadata: StatusMetadata | None = None
    state_history: list[TaskStatus] | None = None
    type: wire_enum(TaskType) | None = None  # type: ignore[valid-type]
    type_attributes: TypeAttributes | None = None
    parent_task_id: str | None = None
    child_tasks: list[ChildTask] | None = None
    inputs: InputOutputs | None = None
    outputs: InputOutputs | None = None
    scope_path: str | None = None


class ListTasksResponse(WireModel):
    tasks: list[PipelineTask] = []
    next_page_token: str | None = None
    total_size: Int32 = 0


class UpdateTasksBulkRequest(WireModel):
    tasks: dict[str, PipelineTask] = {}
    run_id: str | None = None


class UpdateTasksBulkResponse(WireModel):
    tasks: dict[str, PipelineTask] = {}


class FindCachedTaskRequest(WireModel):
    namespace: str | None = None
    cache_fingerprint: str | None = None


class FindCachedTaskResponse(WireModel):
    task: PipelineTask | None = None
