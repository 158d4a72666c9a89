from __future__ import annotations

from typing import Any

from kfpd.domain.enums import ArtifactType, IOType
from kfpd.schemas.base import Int32, Int64, Name, WireModel, wire_enum


class IOProducer(WireModel):
    task_name: Name | None = None
    iteration: Int64 | None = None


class Artifact(WireModel):
    artifact_id: str | None = None
    name: Name | None = None
    description: str | None = None
    type: wire_enum(ArtifactType) | None = None  # type: ignore[valid-type]
    uri: Name | None = None
    metadata: dict[str, Any] | None = None
    number_value: float | None = None
    created_at: str | None = None
    namespace: str | None = None


class CreateArtifactRequest(WireModel):
    artifact: Artifact | None = None
    run_id: str | None = None
    task_id: str | None = None
    producer_key: Name | None = None
    iteration_index: Int64 | None = None
    reuse_if_exists: bool | None = None
    # kfpd extension: the IO type of the producer link (upstream always writes OUTPUT).
    type: wire_enum(IOType) | None = None  # type: ignore[valid-type]


class CreateArtifactsBulkRequest(WireModel):
    artifacts: list[CreateArtifactRequest] = []


class CreateArtifactsBulkResponse(WireModel):
    artifacts: list[Artifact] = []


class ListArtifactResponse(WireModel):
    artifacts: list[Artifact] = []
    total_size: Int32 = 0
    next_page_token: str | None = None


class ArtifactTask(WireModel):
    id: str | None = None
    artifact_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    type: wire_enum(IOType) | None = None  # type: ignore[valid-type]
    producer: IOProducer | None = None
    key: str | None = None


class CreateArtifactTaskRequest(WireModel):
    artifact_task: ArtifactTask | None = None


class CreateArtifactTasksBulkRequest(WireModel):
    artifact_tasks: list[ArtifactTask] = []


class CreateArtifactTasksBulkResponse(WireModel):
    artifact_tasks: list[ArtifactTask] = []


class ListArtifactTasksResponse(WireModel):
    artifact_tasks: list[ArtifactTask] = []
    total_size: Int32 = 0
    next_page_token: str | None = None
