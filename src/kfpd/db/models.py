"""SQLAlchemy 2 tables. Times are BIGINT microseconds since the epoch; enums are stored as ints.

The layout follows upstream's native-metadata schema (tasks, artifacts, artifact_tasks) with
indexes planned for keyset pagination at 200k+ rows per namespace.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Computed,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(36)
NAME = String(255)
NAMESPACE = String(63)
JSONType = JSON().with_variant(JSON(none_as_null=True), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Experiment(Base):
    __tablename__ = "experiments"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    display_name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    storage_state: Mapped[int] = mapped_column(Integer)
    last_run_created_at: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint("namespace", "display_name"),
        Index(None, "namespace", "created_at", "id"),
    )


class Pipeline(Base):
    __tablename__ = "pipelines"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    name: Mapped[str] = mapped_column(NAME)
    display_name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    __table_args__ = (
        UniqueConstraint("namespace", "name"),
        Index(None, "namespace", "created_at", "id"),
    )


class PipelineVersion(Base):
    __tablename__ = "pipeline_versions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(ID, ForeignKey("pipelines.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    display_name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    pipeline_spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    platform_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    code_source_url: Mapped[str] = mapped_column(Text, default="")
    package_url: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        UniqueConstraint("pipeline_id", "name"),
        Index(None, "pipeline_id", "created_at", "id"),
    )


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    experiment_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("experiments.id", ondelete="SET NULL"), nullable=True
    )
    display_name: Mapped[str] = mapped_column(NAME)
    # Lower-cased by the database as rows are written: IS_SUBSTRING on the name becomes a
    # plain LIKE over an index on PostgreSQL/MySQL (db/listing.ContainsIgnoringCase).
    display_name_folded: Mapped[str] = mapped_column(
        String(510),  # lower() may lengthen a name in some collations (İ -> i̇)
        Computed("lower(display_name)", persisted=True),
    )
    description: Mapped[str] = mapped_column(Text, default="")
    pipeline_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    pipeline_version_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    pipeline_name: Mapped[str] = mapped_column(NAME, default="")
    # The spec the run executes: always stored, so the server can resolve scope paths.
    pipeline_spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    platform_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    spec_inline: Mapped[int] = mapped_column(Integer, default=1)
    runtime_config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    service_account: Mapped[str] = mapped_column(NAME, default="")
    storage_state: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    state_history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    scheduled_at: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[int] = mapped_column(BigInteger, default=0)
    recurring_run_id: Mapped[str | None] = mapped_column(ID, nullable=True)

    # Each list order has an index (equality columns, then the sort column and id). The
    # trailing storage_state and the small (namespace, storage_state, state) index let the
    # COUNT behind total_size read an index only, with or without the KFP UI's
    # storage_state filter (docs/benchmarks.md, list_runs).
    __table_args__ = (
        Index(None, "namespace", "created_at", "id"),
        Index(None, "namespace", "state", "created_at", "id"),
        Index(None, "namespace", "display_name", "id", "storage_state"),
        Index(None, "namespace", "finished_at", "id"),
        Index(None, "namespace", "storage_state", "state"),
        Index(None, "namespace", "display_name_folded", "storage_state"),  # IS_SUBSTRING count
        Index(None, "experiment_id", "created_at", "id", "storage_state"),
        # Single-user lists span namespaces.
        Index(None, "created_at", "id"),
        Index(None, "state", "created_at", "id"),
        Index(None, "recurring_run_id", "state"),  # a schedule's active runs (max_concurrency)
    )


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(ID, ForeignKey("runs.id", ondelete="CASCADE"))
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    parent_task_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(NAME, default="")
    display_name: Mapped[str] = mapped_column(NAME, default="")
    scope_path: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[int] = mapped_column(Integer)
    state: Mapped[int] = mapped_column(Integer)
    state_history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    status_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    type_attributes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    iteration_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pods: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    cache_fingerprint: Mapped[str] = mapped_column(String(255), default="")
    input_parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    output_parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[int] = mapped_column(BigInteger, default=0)
    logical_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)

    __table_args__ = (
        UniqueConstraint("id", "run_id"),
        Index(None, "run_id", "parent_task_id", "created_at", "id"),
        Index(None, "run_id", "created_at", "id"),
        Index(None, "parent_task_id", "state"),  # child counts by state (roll-up)
        Index("ix_tasks_cache_lookup", "cache_fingerprint", "namespace", "state", "created_at"),
    )


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    type: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    uri_hash: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_update: Mapped[int] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType, nullable=True)
    number_value: Mapped[float | None] = mapped_column(Double(), nullable=True)
    identity_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Upstream's store_session_info for object-store URIs: provider + settings, no secrets.
    store_session_info: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    __table_args__ = (
        UniqueConstraint("namespace", "identity_key"),
        Index(None, "namespace", "created_at", "id"),
        Index(None, "namespace", "type", "created_at", "id"),
        Index(None, "namespace", "uri_hash"),
        Index(None, "namespace", "name", "id"),
    )


class ArtifactTask(Base):
    __tablename__ = "artifact_tasks"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    artifact_id: Mapped[str] = mapped_column(ID, ForeignKey("artifacts.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(ID)
    run_id: Mapped[str] = mapped_column(ID, ForeignKey("runs.id", ondelete="CASCADE"))
    type: Mapped[int] = mapped_column(Integer)
    iteration: Mapped[int] = mapped_column(BigInteger, default=-1)
    producer: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    key: Mapped[str] = mapped_column(String(191), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        ForeignKeyConstraint(
            ["task_id", "run_id"], ["tasks.id", "tasks.run_id"], ondelete="CASCADE"
        ),
        # Led by (artifact_id, type): a lineage step from an artifact finds its producer
        # (output links) or consumers (input links) without scanning its other links.
        UniqueConstraint("artifact_id", "type", "task_id", "iteration", "key"),
        Index(None, "task_id", "type"),
        Index(None, "run_id", "type"),
    )


class MlmdImport(Base):
    """One import of an ML Metadata store (``kfpd import-mlmd``): RUNNING until it finished.

    The server refuses to start while a row is RUNNING, so it never serves a half-imported
    history; the id is derived from the store, so a re-run resumes the same row.
    """

    __tablename__ = "mlmd_imports"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(1024))
    kfp_source: Mapped[str] = mapped_column(String(1024), default="")
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    state: Mapped[int] = mapped_column(Integer)  # 1 RUNNING, 2 COMPLETE
    started_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int] = mapped_column(BigInteger, default=0)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class RecurringRun(Base):
    """A schedule that fires runs (upstream's RecurringRun / ScheduledWorkflow)."""

    __tablename__ = "recurring_runs"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    namespace: Mapped[str] = mapped_column(NAMESPACE, default="")
    experiment_id: Mapped[str] = mapped_column(ID, ForeignKey("experiments.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    # A version reference without a version id runs the pipeline's latest version at fire time.
    pipeline_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    pipeline_version_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    pipeline_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    platform_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    runtime_config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    service_account: Mapped[str] = mapped_column(NAME, default="")
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    cron: Mapped[str] = mapped_column(String(255), default="")
    interval_second: Mapped[int] = mapped_column(BigInteger, default=0)
    start_time: Mapped[int] = mapped_column(BigInteger, default=0)
    end_time: Mapped[int] = mapped_column(BigInteger, default=0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[int] = mapped_column(Integer)  # RecurringRunStatus: ENABLED or DISABLED
    no_catchup: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    # Slots at or before this time are settled (fired, skipped by no_catchup, or fell in a
    # disabled window): the scheduler only looks after it.
    settled_until: Mapped[int] = mapped_column(BigInteger, default=0)
    last_index: Mapped[int] = mapped_column(BigInteger, default=0)  # slots fired so far
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    __table_args__ = (
        Index(None, "namespace", "created_at", "id"),
        Index(None, "experiment_id", "created_at", "id"),
        Index(None, "status"),
    )


class RecurringRunSlot(Base):
    """One claimed slot of a schedule. The primary key is what makes a slot fire once: the
    claim and the run it fired are written in one transaction, and a second claim of the same
    (schedule, time) fails on any dialect, from any server process."""

    __tablename__ = "recurring_run_slots"
    recurring_run_id: Mapped[str] = mapped_column(
        ID, ForeignKey("recurring_runs.id", ondelete="CASCADE"), primary_key=True
    )
    scheduled_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)  # 1 for a schedule's first slot ([[Index]])
    run_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """An API token (``kfpd tokens create``): only its digest is stored, never the token."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(NAME)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the whole token
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, default=0)  # 0: never
    last_used_at: Mapped[int] = mapped_column(BigInteger, default=0)
    revoked_at: Mapped[int] = mapped_column(BigInteger, default=0)


class RoleBinding(Base):
    """A role in a namespace ("*": every one) for a user or a group, added at run time."""

    __tablename__ = "role_bindings"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user: Mapped[str] = mapped_column(NAME, default="")
    group: Mapped[str] = mapped_column(NAME, default="")
    role: Mapped[str] = mapped_column(String(16))
    namespace: Mapped[str] = mapped_column(NAMESPACE)
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("user", "group", "role", "namespace"),)
