"""Retention: which finished runs a policy removes, and removing them (rows, logs, artifacts).

Deciding is pure (:func:`select_expired`) over a light projection of the runs table; the
database work is three kinds of reads (runs, the links of expiring runs, the other links of
their artifacts) done in chunks, so a dry run over 100,000 runs needs no per-run query.

Artifacts are lineage-aware: an artifact goes only when *every* run that links it (as
output or input) goes. An artifact produced by an old run and consumed by a kept one stays,
and so does any artifact no run links (imported or created through the API by hand).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, ArtifactTask, Run, Task
from kfpd.domain.enums import TERMINAL_RUN_STATES
from kfpd.storage.launcher_config import is_remote

if TYPE_CHECKING:
    from kfpd.config import RetentionSettings

US_PER_DAY = 86_400 * 1_000_000
CHUNK = 500  # ids per IN (...) list: well under every dialect's parameter limit


@dataclass(frozen=True)
class RetentionPolicy:
    """When a finished run may go. Unset fields do not constrain."""

    max_age_days: float | None = None  # finished longer ago than this
    keep_last_per_experiment: int | None = None  # the N newest runs of each experiment stay

    @property
    def active(self) -> bool:
        return self.max_age_days is not None


@dataclass(frozen=True)
class PolicySet:
    """A default policy and per-namespace overrides (a namespace's own policy replaces it)."""

    default: RetentionPolicy = RetentionPolicy()
    namespaces: dict[str, RetentionPolicy] = field(default_factory=dict)

    def for_namespace(self, namespace: str) -> RetentionPolicy:
        return self.namespaces.get(namespace, self.default)


@dataclass(frozen=True)
class RunFacts:
    """The columns retention decides on."""

    id: str
    namespace: str
    experiment_id: str | None
    state: int
    created_at: int
    finished_at: int


def select_expired(runs: Iterable[RunFacts], policies: PolicySet, now_us: int) -> list[str]:
    """Ids of the finished runs the policies remove (pure; unit-tested without a database)."""
    by_experiment: dict[tuple[str, str | None], list[RunFacts]] = defaultdict(list)
    for run in runs:
        by_experiment[(run.namespace, run.experiment_id)].append(run)
    expired: list[str] = []
    for (namespace, _), members in by_experiment.items():
        policy = policies.for_namespace(namespace)
        if not policy.active or policy.max_age_days is None:
            continue
        cutoff = now_us - int(policy.max_age_days * US_PER_DAY)
        members.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        keep = policy.keep_last_per_experiment or 0
        for rank, run in enumerate(members):
            if rank < keep or run.state not in TERMINAL_RUN_STATES:
                continue
            if 0 < run.finished_at < cutoff:
                expired.append(run.id)
    return sorted(expired)


@dataclass
class GcReport:
    """What a collection removed, or (dry run) would remove."""

    dry_run: bool
    runs: int = 0
    tasks: int = 0
    artifacts: int = 0  # artifact rows no kept run links
    artifacts_kept_shared: int = 0  # linked by an expiring run, but also by a kept one
    artifact_objects: int = 0  # stored objects deleted (only with delete_artifacts)
    artifact_object_errors: list[str] = field(default_factory=list)
    runs_by_namespace: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    artifact_uris: list[str] = field(default_factory=list)


def _chunks(ids: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _run_facts(session: Session) -> list[RunFacts]:
    rows = session.execute(
        select(Run.id, Run.namespace, Run.experiment_id, Run.state, Run.created_at, Run.finished_at)
    )
    return [RunFacts(*row) for row in rows]


def _orphaned_artifacts(session: Session, run_ids: Sequence[str]) -> tuple[set[str], set[str]]:
    """(artifacts only expiring runs link, artifacts a kept run links too)."""
    expiring = set(run_ids)
    touched: set[str] = set()
    for chunk in _chunks(run_ids):
        touched.update(
            session.scalars(
                select(ArtifactTask.artifact_id).where(ArtifactTask.run_id.in_(chunk)).distinct()
            )
        )
    shared: set[str] = set()
    ordered = sorted(touched)
    for chunk in _chunks(ordered):
        links = session.execute(
            select(ArtifactTask.artifact_id, ArtifactTask.run_id).where(
                ArtifactTask.artifact_id.in_(chunk)
            )
        )
        shared.update(artifact for artifact, run in links if run not in expiring)
    return touched - shared, shared


def plan(session: Session, policies: PolicySet, now_us: int) -> GcReport:
    """What :func:`collect` would remove, computed with reads only."""
    facts = _run_facts(session)
    run_ids = select_expired(facts, policies, now_us)
    report = GcReport(dry_run=True, runs=len(run_ids), run_ids=run_ids)
    namespace_of = {f.id: f.namespace for f in facts}
    for run_id in run_ids:
        ns = namespace_of[run_id]
        report.runs_by_namespace[ns] = report.runs_by_namespace.get(ns, 0) + 1
    for chunk in _chunks(run_ids):
        report.tasks += int(
            session.scalar(select(func.count()).select_from(Task).where(Task.run_id.in_(chunk)))
            or 0
        )
    orphaned, shared = _orphaned_artifacts(session, run_ids)
    report.artifacts, report.artifacts_kept_shared = len(orphaned), len(shared)
    for chunk in _chunks(sorted(orphaned)):
        report.artifact_uris.extend(
            uri
            for uri in session.scalars(select(Artifact.uri).where(Artifact.id.in_(chunk)))
            if uri
        )
    return report


DeleteRun = Callable[[Session, str], None]
DeleteObject = Callable[[str], None]
Transaction = Callable[[], AbstractContextManager[Session]]


def collect(
    begin: Transaction,
    policies: PolicySet,
    now_us: int,
    *,
    delete_run: DeleteRun,
    delete_logs: Callable[[str], None],
    delete_object: DeleteObject | None = None,
    batch: int = 200,
) -> GcReport:
    """Remove what :func:`plan` finds: runs (with tasks and links) in batches of ``batch``
    per transaction, their logs after each commit, then the artifact rows left with no link
    at all, and (``delete_object`` given) their stored objects.

    ``begin`` opens one write transaction (``Database.write_session``). A crash midway
    leaves whole batches done and the rest for the next collection. An artifact is re-checked
    when it is deleted: if a run linked it meanwhile (a cache hit), it stays.
    """
    with begin() as session:
        report = plan(session, policies, now_us)
        candidates, _ = _orphaned_artifacts(session, report.run_ids)
    report.dry_run = False
    report.artifacts, report.artifact_uris = 0, []
    for chunk in _chunks(report.run_ids, batch):
        with begin() as session:
            for run_id in chunk:
                delete_run(session, run_id)
        for run_id in chunk:
            delete_logs(run_id)
    for chunk in _chunks(sorted(candidates)):
        with begin() as session:
            unlinked = (
                ~select(ArtifactTask.id).where(ArtifactTask.artifact_id == Artifact.id).exists()
            )
            doomed = list(
                session.execute(
                    select(Artifact.id, Artifact.uri).where(Artifact.id.in_(chunk), unlinked)
                )
            )
            session.execute(delete(Artifact).where(Artifact.id.in_([i for i, _ in doomed])))
        report.artifacts += len(doomed)
        report.artifact_uris.extend(uri for _, uri in doomed if uri)
    if delete_object is not None:
        for uri in report.artifact_uris:
            try:
                delete_object(uri)
                report.artifact_objects += 1
            except (OSError, ValueError) as exc:
                report.artifact_object_errors.append(f"{uri}: {exc}")
    return report


# An object-store URI -> (fsspec filesystem, path) with the launcher config's endpoint and
# credentials (services.storage.Storage.locate); without it, fsspec's own configuration.
RemoteLocate = Callable[[str], tuple[Any, str]]


def object_deleter(artifact_root: Path, remote_locate: RemoteLocate | None = None) -> DeleteObject:
    """Delete an artifact's stored bytes: ``file://`` only inside ``artifact_root`` (never a
    path a user pointed an importer at), object stores through ``remote_locate``, other
    schemes through fsspec."""
    root = artifact_root.resolve()

    def delete_object(uri: str) -> None:
        if uri.startswith("file://") or "://" not in uri:
            path = Path(uri.removeprefix("file://")).resolve()
            if not path.is_relative_to(root):
                raise ValueError(f"outside the artifact root {root}: not deleted")
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            return
        if remote_locate is not None and is_remote(uri):
            fs, target = remote_locate(uri)
        else:
            fs, target = fsspec.core.url_to_fs(uri)
        if fs.exists(target):
            fs.rm(target, recursive=True)

    return delete_object


def policies_of(config: RetentionSettings) -> PolicySet:
    """The policies a config's ``retention`` section describes."""
    return PolicySet(
        RetentionPolicy(config.max_age_days, config.keep_last_per_experiment),
        {
            ns: RetentionPolicy(p.max_age_days, p.keep_last_per_experiment)
            for ns, p in config.namespaces.items()
        },
    )


def collect_with_settings(
    database_begin: Transaction,
    policies: PolicySet,
    now_us: int,
    *,
    log_root: Path,
    artifact_root: Path,
    delete_artifacts: bool,
    remote_locate: RemoteLocate | None = None,
) -> GcReport:
    """:func:`collect` wired to kfpd's run deletion, log store and artifact root."""
    from kfpd.services.logstore import LogStore
    from kfpd.services.runs import delete_run

    return collect(
        database_begin,
        policies,
        now_us,
        delete_run=delete_run,
        delete_logs=LogStore(log_root).delete_run,
        delete_object=object_deleter(artifact_root, remote_locate) if delete_artifacts else None,
    )
