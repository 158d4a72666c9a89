"""Read KFP's own ``mlpipeline`` tables: runs, experiments, pipelines and their versions.

Column names follow upstream's gorm models (backend/src/apiserver/model: run.go,
experiment.go, pipeline.go, pipeline_version.go). Tables are reflected, so columns that an
older KFP release lacks (``DisplayName`` of pipelines, ``State`` of runs) read as absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import MetaData, Table, create_engine, inspect, select
from sqlalchemy.engine import Engine

from kfpd.db.engine import normalize_url

# v1 "Conditions" and legacy values -> v2 run states (upstream's RuntimeState.ToV2).
_V2_STATES = {
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "ENABLED": "RUNNING",
    "READY": "RUNNING",
    "SUCCEEDED": "SUCCEEDED",
    "DONE": "SUCCEEDED",
    "SKIPPED": "SKIPPED",
    "FAILED": "FAILED",
    "ERROR": "FAILED",
    "CANCELING": "CANCELING",
    "TERMINATING": "CANCELING",
    "CANCELED": "CANCELED",
    "DISABLED": "CANCELED",
    "PAUSED": "PAUSED",
}


def v2_run_state(state: str | None, conditions: str | None) -> str:
    for raw in (state, conditions):
        if raw:
            found = _V2_STATES.get(raw.strip().upper())
            if found:
                return found
    return "RUNTIME_STATE_UNSPECIFIED"


def parse_manifest(text: str | None) -> dict[str, Any] | None:
    """A stored IR (JSON or YAML; the first document when it holds a platform spec too)."""
    if not text:
        return None
    try:
        loaded = json.loads(text)
    except ValueError:
        try:
            loaded = next(iter(yaml.safe_load_all(text)), None)
        except yaml.YAMLError:
            return None
    return loaded if isinstance(loaded, dict) else None


@dataclass
class KfpRun:
    id: str
    display_name: str
    description: str
    namespace: str
    experiment_id: str | None
    state: str
    storage_state: str
    service_account: str
    pipeline_id: str | None
    pipeline_version_id: str | None
    pipeline_name: str
    pipeline_spec: dict[str, Any] | None
    runtime_parameters: dict[str, Any] | None
    pipeline_root: str
    created_s: int
    scheduled_s: int
    finished_s: int
    recurring_run_id: str | None


@dataclass
class KfpDatabase:
    runs: dict[str, KfpRun]
    experiments: list[dict[str, Any]]
    pipelines: list[dict[str, Any]]
    versions: list[dict[str, Any]]


def _rows(engine: Engine, name: str) -> list[dict[str, Any]]:
    if not inspect(engine).has_table(name):
        return []
    table = Table(name, MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def _text(row: dict[str, Any], column: str, default: str = "") -> str:
    value = row.get(column)
    return default if value is None else str(value)


def _optional(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    return str(value) if value else None


def _run(row: dict[str, Any]) -> KfpRun:
    params = parse_manifest(row.get("RuntimeParameters"))
    return KfpRun(
        id=_text(row, "UUID"),
        display_name=_text(row, "DisplayName") or _text(row, "Name"),
        description=_text(row, "Description"),
        namespace=_text(row, "Namespace"),
        experiment_id=_optional(row, "ExperimentUUID"),
        state=v2_run_state(row.get("State"), row.get("Conditions")),
        storage_state=_text(row, "StorageState", "AVAILABLE").upper(),
        service_account=_text(row, "ServiceAccount"),
        pipeline_id=_optional(row, "PipelineId"),
        pipeline_version_id=_optional(row, "PipelineVersionId"),
        pipeline_name=_text(row, "PipelineName"),
        pipeline_spec=parse_manifest(row.get("PipelineSpecManifest")),
        runtime_parameters=params,
        pipeline_root=_text(row, "PipelineRoot"),
        created_s=int(row.get("CreatedAtInSec") or 0),
        scheduled_s=int(row.get("ScheduledAtInSec") or 0),
        finished_s=int(row.get("FinishedAtInSec") or 0),
        recurring_run_id=_optional(row, "JobUUID"),
    )


def read_kfp_database(url: str) -> KfpDatabase:
    engine = create_engine(normalize_url(url))
    try:
        runs = {r.id: r for r in map(_run, _rows(engine, "run_details"))}
        return KfpDatabase(
            runs=runs,
            experiments=_rows(engine, "experiments"),
            pipelines=_rows(engine, "pipelines"),
            versions=_rows(engine, "pipeline_versions"),
        )
    finally:
        engine.dispose()
