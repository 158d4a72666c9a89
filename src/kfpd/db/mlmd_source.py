"""Read an ML Metadata store's SQL tables directly (no ml-metadata library).

MLMD keeps the same tables on MySQL/MariaDB (KFP's ``metadb``) and on SQLite (its test
mode): Type, Context(+Property), ParentContext, Execution(+Property), Artifact(+Property),
Event, EventPath, Association, Attribution, MLMDEnv. Struct property values are strings
``mlmd-struct::`` + base64 of a serialized ``google.protobuf.Struct``.

A run is read with a fixed number of queries (joins through Association/Event, no id lists),
so the cost does not grow with the number of MLMD round trips the run once needed.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select

from kfpd.db.engine import normalize_url

STRUCT_PREFIX = "mlmd-struct::"

# MLMD enum numbers (ml_metadata/proto/metadata_store.proto).
EXECUTION_STATES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED",
                    6: "CANCELED"}  # fmt: skip
EVENT_INPUT, EVENT_OUTPUT = 3, 4
EVENT_TYPES = {0: "UNKNOWN", 1: "DECLARED_OUTPUT", 2: "DECLARED_INPUT", 3: "INPUT", 4: "OUTPUT",
               5: "INTERNAL_INPUT", 6: "INTERNAL_OUTPUT", 7: "PENDING_OUTPUT"}  # fmt: skip
TYPE_KIND_EXECUTION, TYPE_KIND_ARTIFACT, TYPE_KIND_CONTEXT = 0, 1, 2
PIPELINE_CONTEXT, RUN_CONTEXT = "system.Pipeline", "system.PipelineRun"

_meta = MetaData()
_TYPE = Table("Type", _meta, Column("id", Integer), Column("name", String),
              Column("type_kind", Integer))  # fmt: skip
_CONTEXT = Table("Context", _meta, Column("id", Integer), Column("type_id", Integer),
                 Column("name", String), Column("create_time_since_epoch", Integer),
                 Column("last_update_time_since_epoch", Integer))  # fmt: skip
_PARENT_CONTEXT = Table("ParentContext", _meta, Column("context_id", Integer),
                        Column("parent_context_id", Integer))  # fmt: skip
_EXECUTION = Table("Execution", _meta, Column("id", Integer), Column("type_id", Integer),
                   Column("last_known_state", Integer), Column("name", String),
                   Column("create_time_since_epoch", Integer),
                   Column("last_update_time_since_epoch", Integer))  # fmt: skip
_ARTIFACT = Table("Artifact", _meta, Column("id", Integer), Column("type_id", Integer),
                  Column("uri", String), Column("state", Integer), Column("name", String),
                  Column("create_time_since_epoch", Integer),
                  Column("last_update_time_since_epoch", Integer))  # fmt: skip
_EVENT = Table("Event", _meta, Column("id", Integer), Column("artifact_id", Integer),
               Column("execution_id", Integer), Column("type", Integer),
               Column("milliseconds_since_epoch", Integer))  # fmt: skip
_EVENT_PATH = Table("EventPath", _meta, Column("event_id", Integer),
                    Column("is_index_step", Integer), Column("step_index", Integer),
                    Column("step_key", String))  # fmt: skip
_ASSOCIATION = Table("Association", _meta, Column("context_id", Integer),
                     Column("execution_id", Integer))  # fmt: skip
_MLMD_ENV = Table("MLMDEnv", _meta, Column("schema_version", Integer))


def _property_table(name: str, owner: str) -> Table:
    return Table(name, _meta, Column(owner, Integer), Column("name", String),
                 Column("is_custom_property", Integer), Column("int_value", Integer),
                 Column("double_value", Float), Column("string_value", String),
                 Column("bool_value", Integer))  # fmt: skip


_CONTEXT_PROPERTY = _property_table("ContextProperty", "context_id")
_EXECUTION_PROPERTY = _property_table("ExecutionProperty", "execution_id")
_ARTIFACT_PROPERTY = _property_table("ArtifactProperty", "artifact_id")


def decode_struct(text: str) -> Any:
    """``mlmd-struct::<base64>`` -> the Struct as plain JSON values."""
    message = struct_pb2.Struct()
    message.ParseFromString(base64.b64decode(text[len(STRUCT_PREFIX) :]))
    return json_format.MessageToDict(message)


def property_value(row: Any) -> Any:
    """One property row's value: int, double, bool, struct (decoded) or string."""
    if row.int_value is not None:
        return int(row.int_value)
    if row.double_value is not None:
        return float(row.double_value)
    if row.bool_value is not None:
        return bool(row.bool_value)
    text = row.string_value
    if isinstance(text, str) and text.startswith(STRUCT_PREFIX):
        return decode_struct(text)
    return text


@dataclass
class Execution:
    id: int
    type_name: str
    state: str
    name: str | None
    created_ms: int
    updated_ms: int
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def task_name(self) -> str:
        return str(self.props.get("task_name") or "")

    @property
    def parent_dag_id(self) -> int:
        return int(self.props.get("parent_dag_id") or 0)


@dataclass
class Artifact:
    id: int
    type_name: str
    uri: str | None
    created_ms: int
    updated_ms: int
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: int
    artifact_id: int
    execution_id: int
    type: int
    key: str


@dataclass
class RunContext:
    """A ``system.PipelineRun`` context: its name is the KFP run id."""

    id: int
    name: str
    created_ms: int
    props: dict[str, Any]
    pipeline_name: str


@dataclass
class RunRecords:
    context: RunContext
    executions: list[Execution]
    artifacts: dict[int, Artifact]
    events: list[Event]


@dataclass(frozen=True)
class StoreCounts:
    runs: int
    executions: int
    artifacts: int
    events: int


class MlmdSource:
    """An MLMD database opened read-only through SQLAlchemy."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(normalize_url(url))
        with self.engine.connect() as conn:
            rows = conn.execute(select(_TYPE.c.id, _TYPE.c.name, _TYPE.c.type_kind))
            self.types = {int(r.id): (str(r.name), int(r.type_kind)) for r in rows}
            self.schema_version = conn.execute(
                select(func.max(_MLMD_ENV.c.schema_version))
            ).scalar()

    def close(self) -> None:
        self.engine.dispose()

    def _type_ids(self, name: str, kind: int) -> list[int]:
        return [i for i, (n, k) in self.types.items() if n == name and k == kind]

    def store_key(self) -> str:
        """Identifies the store, not where it lives: its first context (id, name, time).

        A copy of the store (MySQL dump into SQLite, another host) keeps the key, so ids
        derived from it stay the same and a re-import finds what an earlier one wrote.
        """
        with self.engine.connect() as conn:
            first = conn.execute(
                select(_CONTEXT.c.id, _CONTEXT.c.name, _CONTEXT.c.create_time_since_epoch)
                .order_by(_CONTEXT.c.id)
                .limit(1)
            ).first()
        if first is None:
            return "mlmd:empty"
        return f"mlmd:{first.id}:{first.name}:{first.create_time_since_epoch}"

    def run_contexts(self) -> list[RunContext]:
        run_types = self._type_ids(RUN_CONTEXT, TYPE_KIND_CONTEXT)
        if not run_types:
            return []
        parent = _CONTEXT.alias("parent")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    _CONTEXT.c.id,
                    _CONTEXT.c.name,
                    _CONTEXT.c.create_time_since_epoch,
                    parent.c.name.label("pipeline"),
                )
                .select_from(_CONTEXT)
                .outerjoin(_PARENT_CONTEXT, _PARENT_CONTEXT.c.context_id == _CONTEXT.c.id)
                .outerjoin(parent, parent.c.id == _PARENT_CONTEXT.c.parent_context_id)
                .where(_CONTEXT.c.type_id.in_(run_types))
                .order_by(_CONTEXT.c.create_time_since_epoch, _CONTEXT.c.id)
            ).all()
            props = _properties(
                conn,
                select(_CONTEXT_PROPERTY).where(
                    _CONTEXT_PROPERTY.c.context_id.in_(
                        select(_CONTEXT.c.id).where(_CONTEXT.c.type_id.in_(run_types))
                    )
                ),
                "context_id",
            )
        return [
            RunContext(
                int(r.id),
                str(r.name),
                int(r.create_time_since_epoch or 0),
                props.get(int(r.id), {}),
                str(r.pipeline or ""),
            )
            for r in rows
        ]

    def load_run(self, context: RunContext) -> RunRecords:
        """Every execution of the run with its properties, events and artifacts."""
        in_run = select(_ASSOCIATION.c.execution_id).where(_ASSOCIATION.c.context_id == context.id)
        events_in_run = select(_EVENT.c.artifact_id).where(_EVENT.c.execution_id.in_(in_run))
        with self.engine.connect() as conn:
            exec_props = _properties(
                conn,
                select(_EXECUTION_PROPERTY).where(_EXECUTION_PROPERTY.c.execution_id.in_(in_run)),
                "execution_id",
            )
            executions = [
                Execution(
                    int(r.id),
                    self.types.get(int(r.type_id), ("", 0))[0],
                    EXECUTION_STATES.get(int(r.last_known_state or 0), "UNKNOWN"),
                    r.name,
                    int(r.create_time_since_epoch or 0),
                    int(r.last_update_time_since_epoch or 0),
                    exec_props.get(int(r.id), {}),
                )
                for r in conn.execute(
                    select(_EXECUTION).where(_EXECUTION.c.id.in_(in_run)).order_by(_EXECUTION.c.id)
                )
            ]
            events = _events(conn, in_run)
            art_props = _properties(
                conn,
                select(_ARTIFACT_PROPERTY).where(
                    _ARTIFACT_PROPERTY.c.artifact_id.in_(events_in_run)
                ),
                "artifact_id",
            )
            artifacts = {
                int(r.id): Artifact(
                    int(r.id),
                    self.types.get(int(r.type_id), ("", 0))[0],
                    r.uri,
                    int(r.create_time_since_epoch or 0),
                    int(r.last_update_time_since_epoch or 0),
                    art_props.get(int(r.id), {}),
                )
                for r in conn.execute(select(_ARTIFACT).where(_ARTIFACT.c.id.in_(events_in_run)))
            }
        return RunRecords(context, executions, artifacts, events)

    def iter_runs(self, contexts: list[RunContext]) -> Iterator[RunRecords]:
        for context in contexts:
            yield self.load_run(context)

    def counts(self, contexts: list[RunContext]) -> StoreCounts:
        """Executions, artifacts and INPUT/OUTPUT events under the given run contexts."""
        ids = [c.id for c in contexts]
        if not ids:
            return StoreCounts(0, 0, 0, 0)
        in_runs = select(_ASSOCIATION.c.execution_id).where(_ASSOCIATION.c.context_id.in_(ids))
        with self.engine.connect() as conn:
            executions = conn.execute(
                select(func.count(func.distinct(_ASSOCIATION.c.execution_id))).where(
                    _ASSOCIATION.c.context_id.in_(ids)
                )
            ).scalar_one()
            io = _EVENT.c.type.in_([EVENT_INPUT, EVENT_OUTPUT])
            events = conn.execute(
                select(func.count()).where(_EVENT.c.execution_id.in_(in_runs), io)
            ).scalar_one()
            artifacts = conn.execute(
                select(func.count(func.distinct(_EVENT.c.artifact_id))).where(
                    _EVENT.c.execution_id.in_(in_runs), io
                )
            ).scalar_one()
        return StoreCounts(len(ids), int(executions), int(artifacts), int(events))


def _properties(conn: Connection, query: Select[Any], owner: str) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for row in conn.execute(query):
        out[int(getattr(row, owner))][str(row.name)] = property_value(row)
    return out


def _events(conn: Connection, in_run: Select[Any]) -> list[Event]:
    keys: dict[int, str] = {}
    paths = (
        select(_EVENT_PATH.c.event_id, _EVENT_PATH.c.step_key, _EVENT_PATH.c.step_index)
        .select_from(_EVENT_PATH.join(_EVENT, _EVENT.c.id == _EVENT_PATH.c.event_id))
        .where(_EVENT.c.execution_id.in_(in_run))
    )
    for row in conn.execute(paths):
        # KFP writes one key step: the input/output name. Keep the first step seen.
        step = row.step_key if row.step_key is not None else str(row.step_index)
        keys.setdefault(int(row.event_id), str(step))
    rows = conn.execute(
        select(_EVENT).where(_EVENT.c.execution_id.in_(in_run)).order_by(_EVENT.c.id)
    )
    return [
        Event(
            int(r.id),
            int(r.artifact_id),
            int(r.execution_id),
            int(r.type),
            keys.get(int(r.id), ""),
        )
        for r in rows
    ]
