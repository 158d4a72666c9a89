from __future__ import annotations

from typing import Any

from pydantic import ConfigDict
from pydantic.config import JsonDict

from kfpd.schemas.base import Int32, Name, WireModel
from kfpd.schemas.common import Status


class Url(WireModel):
    pipeline_url: Name | None = None


# A pipeline needs a name: name or display_name, not blank, at most 255 characters.
_NAMED: JsonDict = {"type": "string", "pattern": "\\S", "maxLength": 255}
_NEEDS_A_NAME: JsonDict = {
    "anyOf": [
        {"required": ["name"], "properties": {"name": _NAMED}},
        {"required": ["display_name"], "properties": {"display_name": _NAMED}},
    ]
}


class PipelineCreate(WireModel):
    model_config = ConfigDict(json_schema_extra=_NEEDS_A_NAME)

    display_name: Name | None = None
    name: Name | None = None
    description: str | None = None
    namespace: Name | None = None
    tags: dict[str, str] | None = None
    pipeline_id: str | None = None
    created_at: str | None = None
    error: Status | None = None


class Pipeline(WireModel):
    pipeline_id: str
    display_name: str | None = None
    name: str | None = None
    description: str | None = None
    created_at: str | None = None
    namespace: str | None = None
    tags: dict[str, str] | None = None
    error: Status | None = None


class PipelineVersionCreate(WireModel):
    display_name: Name | None = None
    name: Name | None = None
    description: str | None = None
    pipeline_id: Name | None = None
    package_url: Url | None = None
    code_source_url: Name | None = None
    pipeline_spec: dict[str, Any] | None = None
    pipeline_version_id: str | None = None
    created_at: str | None = None
    error: Status | None = None
    tags: dict[str, str] | None = None


class PipelineVersion(WireModel):
    pipeline_id: str
    pipeline_version_id: str
    display_name: str | None = None
    name: str | None = None
    description: str | None = None
    created_at: str | None = None
    package_url: Url | None = None
    code_source_url: str | None = None
    pipeline_spec: dict[str, Any] | None = None
    error: Status | None = None


class CreatePipelineAndVersionRequest(WireModel):
    pipeline: PipelineCreate
    pipeline_version: PipelineVersionCreate


class ListPipelinesResponse(WireModel):
    pipelines: list[Pipeline] = []
    total_size: Int32 = 0
    next_page_token: str | None = None


class ListPipelineVersionsResponse(WireModel):
    pipeline_versions: list[PipelineVersion] = []
    total_size: Int32 = 0
    next_page_token: str | None = None
