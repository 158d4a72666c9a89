"""Lineage API (kfpd extension): the contract shared with the UI, see docs/api.md."""

from __future__ import annotations

from typing import Literal

from kfpd.domain.enums import IOType, TaskState
from kfpd.schemas.base import Int32, WireModel, wire_enum

NodeKindName = Literal["ARTIFACT", "TASK"]
DirectionName = Literal["UPSTREAM", "DOWNSTREAM"]


class LineageRoot(WireModel):
    kind: NodeKindName
    id: str


class LineageNode(WireModel):
    kind: NodeKindName
    id: str
    hop: int
    direction: DirectionName
    name: str | None = None
    display_name: str | None = None
    # TaskType name for tasks, ArtifactType name for artifacts.
    type: str | None = None
    state: wire_enum(TaskState) | None = None  # type: ignore[valid-type]  # tasks only
    uri: str | None = None  # artifacts only
    # A task's run; an artifact's producing link's run, if it has one.
    run_id: str | None = None


class LineageEdge(WireModel):
    """Data-flow orientation: producer task -> artifact, artifact -> consumer task."""

    source_id: str
    target_id: str
    io_type: wire_enum(IOType)  # type: ignore[valid-type]
    key: str


class LineageResponse(WireModel):
    root: LineageRoot
    nodes: list[LineageNode] = []
    edges: list[LineageEdge] = []
    next_page_token: str | None = None
    total_size: Int32 | None = None
