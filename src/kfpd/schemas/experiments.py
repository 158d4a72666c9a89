from __future__ import annotations

from kfpd.domain.enums import StorageState
from kfpd.schemas.base import Int32, Name, RequiredName, WireModel, wire_enum


class ExperimentCreate(WireModel):
    display_name: RequiredName
    description: str | None = None
    namespace: Name | None = None
    # Output-only fields a client may echo back; ignored.
    experiment_id: str | None = None
    created_at: str | None = None
    storage_state: wire_enum(StorageState) | None = None  # type: ignore[valid-type]
    last_run_created_at: str | None = None


class Experiment(WireModel):
    experiment_id: str
    display_name: str
    description: str | None = None
    created_at: str | None = None
    namespace: str | None = None
    storage_state: wire_enum(StorageState) | None = None  # type: ignore[valid-type]
    last_run_created_at: str | None = None


class ListExperimentsResponse(WireModel):
    experiments: list[Experiment] = []
    total_size: Int32 = 0
    next_page_token: str | None = None
