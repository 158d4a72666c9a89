"""``kfpd import-mlmd``: copy an existing KFP installation's history into kfpd.

Runs are read from ML Metadata (and, optionally, KFP's ``mlpipeline`` database), mapped by
:mod:`kfpd.services.mlmd_mapping` and written in batches, each one transaction holding whole
runs (run, tasks, links, the artifacts not yet stored). Ids are derived from the store, so a
re-run skips what is already there and a crashed import resumes at the first run it had not
committed. ``mlmd_imports`` says whether an import is under way: the server refuses to start
until it is COMPLETE.

Writes are bulk Core inserts of final rows (imported runs never run again); they depend on the
tables only, not on the task state machine.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Table, insert, inspect, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from kfpd.db.engine import Database
from kfpd.db.kfp_source import KfpDatabase, KfpRun, read_kfp_database
from kfpd.db.mlmd_source import MlmdSource, RunContext, RunRecords
from kfpd.db.models import (
    Artifact,
    ArtifactTask,
    Experiment,
    MlmdImport,
    Pipeline,
    PipelineVersion,
    Run,
    Task,
)
from kfpd.domain.enums import StorageState
from kfpd.domain.timeutil import now_us
from kfpd.services.mlmd_mapping import ID_NAMESPACE, MappedRun, RunMapper

IMPORT_RUNNING, IMPORT_COMPLETE = 1, 2
CHUNK = 500  # ids per IN list


class ImportIncomplete(RuntimeError):
    """An import into this database started and has not finished."""


class Progress(Protocol):
    def start(self, runs: int, executions: int) -> None: ...

    def advance(self, runs: int, executions: int) -> None: ...


class _NoProgress:
    def start(self, runs: int, executions: int) -> None:
        pass

    def advance(self, runs: int, executions: int) -> None:
        pass


@dataclass
class ImportOptions:
    mlmd_url: str
    kfp_url: str | None = None
    namespace: str | None = None
    dry_run: bool = False
    batch_executions: int = 2000  # a transaction holds whole runs, about this many tasks


@dataclass
class ImportReport:
    dry_run: bool
    source: str
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "source": self.source,
            "imported": {k: v for k, v in self.imported.items() if v},
            "skipped": {k: v for k, v in self.skipped.items() if v},
            "seconds": round(self.seconds, 3),
        }


def safe_url(url: str) -> str:
    """The URL without its password (kept in mlmd_imports and printed)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show it as given, it has no parts to hide
        return url


def import_id(store_key: str, namespace: str | None) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{store_key}/import/{namespace or '*'}"))


# -- start-up gate --------------------------------------------------------------------------
def check_no_incomplete_import(database: Database) -> None:
    """Raise :class:`ImportIncomplete` with the command to finish it, if one is under way."""
    if not inspect(database.engine).has_table(MlmdImport.__tablename__):
        return
    with database.read_session() as session:
        rows = session.scalars(select(MlmdImport).where(MlmdImport.state == IMPORT_RUNNING)).all()
    if not rows:
        return
    row = rows[0]
    command = f"kfpd import-mlmd --mlmd-db '{row.source}' --db-url '{safe_url(str(database.url))}'"
    if row.kfp_source:
        command += f" --kfp-db '{row.kfp_source}'"
    if row.namespace:
        command += f" --namespace '{row.namespace}'"
    raise ImportIncomplete(
        "an import of ML Metadata history into this database has not finished "
        f"(started from {row.source}); the server would show a partial history. Finish it "
        f"(it resumes where it stopped; put back any password shown as ***):\n  {command}"
    )


def select_contexts(
    source: MlmdSource, kfp: KfpDatabase | None, namespace: str | None
) -> list[RunContext]:
    """The store's run contexts, only those of ``namespace`` when it is given."""
    out = []
    for context in source.run_contexts():
        run = kfp.runs.get(context.name) if kfp else None
        found = (run.namespace if run else "") or str(context.props.get("namespace") or "")
        if namespace is None or found == namespace:
            out.append(context)
    return out


# -- the import -----------------------------------------------------------------------------
class Importer:
    def __init__(self, database: Database, options: ImportOptions, progress: Progress) -> None:
        self.database, self.options, self.progress = database, options, progress
        self.source = MlmdSource(options.mlmd_url)
        self.kfp: KfpDatabase | None = None
        if options.kfp_url:
            self.kfp = read_kfp_database(options.kfp_url)
        self.store_key = self.source.store_key()
        self.report = ImportReport(options.dry_run, safe_url(options.mlmd_url))
        self.known_artifacts: set[str] = set()
        self.experiments: set[str] = set()

    def close(self) -> None:
        self.source.close()

    def _kfp_run(self, context: RunContext) -> KfpRun | None:
        return self.kfp.runs.get(context.name) if self.kfp else None

    def selected_contexts(self) -> list[RunContext]:
        return select_contexts(self.source, self.kfp, self.options.namespace)

    def _existing(self, session: Session, column: Any, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), CHUNK):
            part = wanted[start : start + CHUNK]
            found.update(session.scalars(select(column).where(column.in_(part))))
        return found

    def run(self) -> ImportReport:
        started = now_us()
        contexts = self.selected_contexts()
        with self.database.read_session() as session:
            done = self._existing(session, Run.id, [c.name for c in contexts])
        pending = [c for c in contexts if c.name not in done]
        self.report.skipped["run: already imported"] += len(done)
        counts = self.source.counts(pending)
        self.progress.start(len(pending), counts.executions)
        if pending and not self.options.dry_run:
            self._mark(IMPORT_RUNNING, started)
        self._import_catalog()
        batch: list[MappedRun] = []
        size = 0
        for records in self.source.iter_runs(pending):
            mapped = self._map(records)
            if mapped is not None:
                batch.append(mapped)
                size += len(mapped.tasks)
            self.progress.advance(1, len(records.executions))
            if size >= self.options.batch_executions:
                self._write(batch)
                batch, size = [], 0
        self._write(batch)
        self.report.seconds = (now_us() - started) / 1e6
        if pending and not self.options.dry_run:
            self._mark(IMPORT_COMPLETE, started)
        return self.report

    def _map(self, records: RunRecords) -> MappedRun | None:
        kfp = self._kfp_run(records.context)
        if kfp is not None and kfp.state not in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
            self.report.skipped[f"run: still {kfp.state} in KFP (import it once it ended)"] += 1
            return None
        mapper = RunMapper(records, self.store_key, kfp, self.experiments)
        mapped = mapper.map()
        self.report.skipped.update(mapper.skipped)
        return mapped

    # -- writes -----------------------------------------------------------------------------
    def _write(self, batch: list[MappedRun]) -> None:
        if not batch:
            return
        if self.options.dry_run:
            with self.database.read_session() as session:
                self._count(batch, self._new_artifacts(session, batch))
            return
        with self.database.write_session() as session:
            artifacts = self._new_artifacts(session, batch)
            conn = session.connection()
            conn.execute(insert(_table(Run)), [m.run for m in batch])
            conn.execute(insert(_table(Task)), [t for m in batch for t in m.tasks])
            if artifacts:
                conn.execute(insert(_table(Artifact)), artifacts)
            links = [link for m in batch for link in m.links]
            if links:
                conn.execute(insert(_table(ArtifactTask)), links)
        self._count(batch, artifacts)

    def _new_artifacts(self, session: Session, batch: list[MappedRun]) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for mapped in batch:
            for row in mapped.artifacts:
                rows.setdefault(row["id"], row)
        unknown = [i for i in rows if i not in self.known_artifacts]
        stored = self._existing(session, Artifact.id, unknown)
        self.known_artifacts.update(rows)
        fresh = [rows[i] for i in unknown if i not in stored]
        self.report.skipped["artifact: already stored (shared with an earlier run)"] += sum(
            len(m.artifacts) for m in batch
        ) - len(fresh)
        return fresh

    def _count(self, batch: list[MappedRun], artifacts: list[dict[str, Any]]) -> None:
        self.report.imported["runs"] += len(batch)
        self.report.imported["tasks"] += sum(len(m.tasks) for m in batch)
        self.report.imported["artifacts"] += len(artifacts)
        self.report.imported["links"] += sum(len(m.links) for m in batch)

    def _mark(self, state: int, started: int) -> None:
        key = import_id(self.store_key, self.options.namespace)
        values = {
            "state": state,
            "source": safe_url(self.options.mlmd_url),
            "kfp_source": safe_url(self.options.kfp_url) if self.options.kfp_url else "",
            "namespace": self.options.namespace or "",
            "finished_at": now_us() if state == IMPORT_COMPLETE else 0,
            "report": self.report.as_dict() if state == IMPORT_COMPLETE else None,
        }
        with self.database.write_session() as session:
            if session.get(MlmdImport, key) is None:
                session.add(MlmdImport(id=key, started_at=started, **values))
            else:
                session.execute(update(MlmdImport).where(MlmdImport.id == key).values(**values))

    # -- experiments, pipelines, versions (KFP's database) ---------------------------------
    def _import_catalog(self) -> None:
        if self.kfp is None:
            return
        experiments = [_experiment(r) for r in self.kfp.experiments]
        pipelines = [_pipeline(r) for r in self.kfp.pipelines]
        versions = [v for v in map(_version, self.kfp.versions) if v is not None]
        with self.database.read_session() as session:
            have_exp = self._existing(session, Experiment.id, [e["id"] for e in experiments])
            have_pipe = self._existing(session, Pipeline.id, [p["id"] for p in pipelines])
            have_ver = self._existing(session, PipelineVersion.id, [v["id"] for v in versions])
            taken = set(session.execute(select(Experiment.namespace, Experiment.display_name)))
            taken_p = set(session.execute(select(Pipeline.namespace, Pipeline.name)))
        new_exp = [e for e in experiments if e["id"] not in have_exp]
        clash = [e for e in new_exp if (e["namespace"], e["display_name"]) in taken]
        new_exp = [e for e in new_exp if e not in clash]
        self.experiments = have_exp | {e["id"] for e in new_exp}
        new_pipe = [p for p in pipelines if p["id"] not in have_pipe]
        new_pipe = [p for p in new_pipe if (p["namespace"], p["name"]) not in taken_p]
        known_pipes = have_pipe | {p["id"] for p in new_pipe}
        new_ver = [
            v for v in versions if v["id"] not in have_ver and v["pipeline_id"] in known_pipes
        ]
        self.report.skipped["experiment: name taken in kfpd (runs keep no experiment)"] += len(
            clash
        )
        self.report.imported["experiments"] += len(new_exp)
        self.report.imported["pipelines"] += len(new_pipe)
        self.report.imported["pipeline_versions"] += len(new_ver)
        if self.options.dry_run:
            return
        with self.database.write_session() as session:
            conn = session.connection()
            for model, rows in (
                (Experiment, new_exp),
                (Pipeline, new_pipe),
                (PipelineVersion, new_ver),
            ):
                if rows:
                    conn.execute(insert(_table(model)), rows)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _storage(value: Any) -> int:
    text = str(value or "").upper()
    archived = text in ("ARCHIVED", "STORAGESTATE_ARCHIVED")
    return int(StorageState.ARCHIVED if archived else StorageState.AVAILABLE)


def _experiment(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["UUID"]),
        "namespace": str(row.get("Namespace") or ""),
        "display_name": str(row.get("Name") or row["UUID"]),
        "description": str(row.get("Description") or ""),
        "created_at": int(row.get("CreatedAtInSec") or 0) * 1_000_000,
        "storage_state": _storage(row.get("StorageState")),
        "last_run_created_at": int(row.get("LastRunCreatedAtInSec") or 0) * 1_000_000,
    }


def _pipeline(row: dict[str, Any]) -> dict[str, Any]:
    name = str(row.get("Name") or row["UUID"])
    return {
        "id": str(row["UUID"]),
        "namespace": str(row.get("Namespace") or ""),
        "name": name,
        "display_name": str(row.get("DisplayName") or name),
        "description": str(row.get("Description") or ""),
        "created_at": int(row.get("CreatedAtInSec") or 0) * 1_000_000,
        "tags": None,
    }


def _version(row: dict[str, Any]) -> dict[str, Any] | None:
    from kfpd.db.kfp_source import parse_manifest

    spec = parse_manifest(row.get("PipelineSpec"))
    if spec is None:
        return None
    name = str(row.get("Name") or row["UUID"])
    return {
        "id": str(row["UUID"]),
        "pipeline_id": str(row.get("PipelineId") or ""),
        "name": name,
        "display_name": str(row.get("DisplayName") or name),
        "description": str(row.get("Description") or ""),
        "created_at": int(row.get("CreatedAtInSec") or 0) * 1_000_000,
        "pipeline_spec": spec,
        "platform_spec": None,
        "code_source_url": str(row.get("CodeSourceUrl") or ""),
        "package_url": "",
    }


def import_mlmd(
    database: Database, options: ImportOptions, progress: Progress | None = None
) -> ImportReport:
    importer = Importer(database, options, progress or _NoProgress())
    try:
        return importer.run()
    finally:
        importer.close()
