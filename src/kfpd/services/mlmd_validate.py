"""After ``kfpd import-mlmd``: compare what kfpd holds with the ML Metadata store.

For every imported run: one task per MLMD execution, and one artifact_tasks link per
INPUT/OUTPUT event (direction and key kept; a ``system.Metrics`` artifact counts once per
value, as it is split). Expected ids come from the
MLMD rows through the importer's id function only, so a mapping that dropped, added or
mis-pointed a row shows up as a difference.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from kfpd.db.engine import Database
from kfpd.db.kfp_source import read_kfp_database
from kfpd.db.mlmd_source import EVENT_INPUT, EVENT_OUTPUT, MlmdSource, RunRecords
from kfpd.db.models import ArtifactTask, Run, Task
from kfpd.domain.enums import IOType
from kfpd.services.mlmd_import import select_contexts
from kfpd.services.mlmd_mapping import NOT_METADATA, entity_id

Edge = tuple[str, str, str, str]  # task id, artifact id, "in" | "out", key
SHOWN = 5  # ids listed per difference


def _artifact_ids(store_key: str, records: RunRecords, artifact_id: int) -> list[str]:
    artifact = records.artifacts[artifact_id]
    if artifact.type_name != "system.Metrics":
        return [entity_id(store_key, "artifact", artifact_id)]
    return [
        entity_id(store_key, "artifact", artifact_id, key)
        for key, value in artifact.props.items()
        if key not in NOT_METADATA
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ]


def expected_edges(store_key: str, records: RunRecords) -> set[Edge]:
    edges: set[Edge] = set()
    for event in records.events:
        if event.type not in (EVENT_INPUT, EVENT_OUTPUT):
            continue
        task = entity_id(store_key, "execution", event.execution_id)
        way = "out" if event.type == EVENT_OUTPUT else "in"
        for artifact in _artifact_ids(store_key, records, event.artifact_id):
            edges.add((task, artifact, way, event.key))
    return edges


def _stored(database: Database, run_id: str) -> tuple[set[str], set[Edge]]:
    with database.read_session() as session:
        tasks = set(session.scalars(select(Task.id).where(Task.run_id == run_id)))
        rows = session.execute(
            select(
                ArtifactTask.task_id, ArtifactTask.artifact_id, ArtifactTask.type, ArtifactTask.key
            ).where(ArtifactTask.run_id == run_id)
        )
        edges = {(t, a, "out" if IOType(kind).is_output else "in", k) for t, a, kind, k in rows}
    return tasks, edges


def _diff(what: str, run_id: str, expected: set[Any], stored: set[Any]) -> list[str]:
    out = []
    missing, extra = sorted(expected - stored), sorted(stored - expected)
    if missing:
        out.append(f"run {run_id}: {len(missing)} {what} missing in kfpd, e.g. {missing[:SHOWN]}")
    if extra:
        out.append(f"run {run_id}: {len(extra)} {what} in kfpd not in MLMD, e.g. {extra[:SHOWN]}")
    return out


@dataclass
class Validation:
    """Differences as readable lines (none: all match), and the totals compared:
    ``counts[name] = (in MLMD, in kfpd)`` over the imported runs."""

    differences: list[str] = field(default_factory=list)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)


def validate_import(
    database: Database, mlmd_url: str, kfp_url: str | None = None, namespace: str | None = None
) -> Validation:
    """Compare every imported run of the store with what kfpd holds."""
    source = MlmdSource(mlmd_url)
    try:
        kfp = read_kfp_database(kfp_url) if kfp_url else None
        store_key = source.store_key()
        contexts = select_contexts(source, kfp, namespace)
        with database.read_session() as session:
            imported = set(
                session.scalars(select(Run.id).where(Run.id.in_([c.name for c in contexts])))
            )
        differences: list[str] = []
        mlmd_totals: Counter[str] = Counter()
        kfpd_totals: Counter[str] = Counter()
        for context in contexts:
            if context.name not in imported:
                run = kfp.runs.get(context.name) if kfp else None
                if run is None or run.state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
                    differences.append(f"run {context.name}: in MLMD, not in kfpd")
                continue
            records = source.load_run(context)
            tasks, edges = _stored(database, context.name)
            want = {entity_id(store_key, "execution", e.id) for e in records.executions}
            want_edges = expected_edges(store_key, records)
            differences += _diff("tasks", context.name, want, tasks)
            differences += _diff("lineage edges", context.name, want_edges, edges)
            mlmd_totals.update(runs=1, tasks=len(want), edges=len(want_edges))
            kfpd_totals.update(runs=1, tasks=len(tasks), edges=len(edges))
        counts = {k: (mlmd_totals[k], kfpd_totals[k]) for k in ("runs", "tasks", "edges")}
        return Validation(differences, counts)
    finally:
        source.close()
