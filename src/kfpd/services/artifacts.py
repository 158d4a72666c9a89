"""Artifacts and artifact-task links (the lineage edges). Artifacts outlive runs."""

from __future__ import annotations

import hashlib
import json
import struct
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kfpd.db.errors import is_foreign_key_violation
from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import Artifact, ArtifactTask, Task
from kfpd.domain.enums import GROUP_TASK_TYPES, OUTPUT_IO_TYPES, ArtifactType, IOType
from kfpd.domain.errors import InvalidArgument, NotFound
from kfpd.domain.filtering import Op, parse_filter
from kfpd.domain.timeutil import now_us
from kfpd.schemas.artifacts import ArtifactTask as ArtifactTaskBody
from kfpd.schemas.artifacts import CreateArtifactRequest
from kfpd.schemas.tasks import IOArtifact
from kfpd.services.common import detached, lock_run_for_writes, new_id, require

ARTIFACT_FIELDS: dict[str, Field] = {
    "artifact_id": Field(Artifact.id),
    "id": Field(Artifact.id),
    "namespace": Field(Artifact.namespace, sortable=False),
    "type": Field(Artifact.type, "enum", ArtifactType),
    "uri": Field(Artifact.uri, sortable=False),
    "name": Field(Artifact.name),
    "display_name": Field(Artifact.name),
    "description": Field(Artifact.description, sortable=False),
    "created_at": Field(Artifact.created_at, "timestamp"),
    "last_update": Field(Artifact.last_update, "timestamp"),
    "number_value": Field(Artifact.number_value, "float"),
}

# Link types that make a task an artifact's producer (a final-status output is not one).
PRODUCER_LINK_TYPES = [int(t) for t in OUTPUT_IO_TYPES if t != IOType.TASK_FINAL_STATUS_OUTPUT]

LINK_FIELDS: dict[str, Field] = {
    "id": Field(ArtifactTask.id),
    "artifact_id": Field(ArtifactTask.artifact_id, sortable=False),
    "task_id": Field(ArtifactTask.task_id, sortable=False),
    "run_id": Field(ArtifactTask.run_id, sortable=False),
    "type": Field(ArtifactTask.type, "enum", IOType),
    "key": Field(ArtifactTask.key),
    "created_at": Field(ArtifactTask.created_at, "timestamp"),
}


def uri_hash(uri: str | None) -> str:
    return hashlib.sha256(uri.encode()).hexdigest() if uri else ""


def _canonical_metadata(metadata: dict[str, Any] | None) -> str:
    return json.dumps(metadata or {}, sort_keys=True, separators=(",", ":"))


def identity_key(atype: int, uri: str, name: str, description: str, metadata: Any) -> str:
    """Identity of an artifact for find-or-create (importer with reimport=false)."""
    h = hashlib.sha256(struct.pack(">i", atype))
    for part in (uri, name, description, _canonical_metadata(metadata)):
        raw = part.encode()
        h.update(struct.pack(">I", len(raw)) + raw)
    return h.hexdigest()


@dataclass(frozen=True)
class _Checked:
    request: CreateArtifactRequest
    atype: ArtifactType
    link_type: IOType


def _check_create(req: CreateArtifactRequest) -> _Checked:
    art = req.artifact
    if art is None:
        raise InvalidArgument("artifact is required")
    if art.artifact_id:
        raise InvalidArgument("artifact.artifact_id is assigned by the server; leave it empty")
    atype = art.type or ArtifactType.TYPE_UNSPECIFIED
    if atype == ArtifactType.TYPE_UNSPECIFIED:
        raise InvalidArgument("artifact.type is required")
    require(art.name, "artifact.name")
    require(req.run_id, "run_id")
    require(req.task_id, "task_id")
    require(req.producer_key, "producer_key")
    if atype == ArtifactType.Metric and art.number_value is None:
        raise InvalidArgument("a Metric artifact needs number_value")
    if (
        atype in {ArtifactType.ClassificationMetric, ArtifactType.SlicedClassificationMetric}
        and art.metadata is None
    ):
        raise InvalidArgument(f"a {atype.name} artifact needs metadata")
    link_type = req.type or IOType.OUTPUT
    if link_type == IOType.UNSPECIFIED:
        raise InvalidArgument("type must not be UNSPECIFIED")
    return _Checked(req, atype, link_type)


def _producer(task_name: str, iteration: int | None) -> dict[str, Any]:
    producer: dict[str, Any] = {"task_name": task_name}
    if iteration is not None:
        producer["iteration"] = str(iteration)
    return producer


# The write paths use these prebuilt Core statements on plain row dicts (no ORM unit of work);
# the Artifact and ArtifactTask objects they return are detached snapshots of the rows written.
Values = dict[str, Any]

_ARTIFACTS = cast(Table, Artifact.__table__)
_A = _ARTIFACTS.c
_LINKS = cast(Table, ArtifactTask.__table__)
_L = _LINKS.c
_T = cast(Table, Task.__table__).c
_TASK_REFS = select(_T.id, _T.run_id, _T.namespace, _T.name).where(
    _T.id.in_(bindparam("task_ids", expanding=True))
)
_ARTIFACT_IDS = select(_A.id, _A.namespace).where(
    _A.id.in_(bindparam("artifact_ids", expanding=True))
)
_ARTIFACT_BY_IDENTITY = select(_ARTIFACTS).where(
    _A.namespace == bindparam("namespace"), _A.identity_key == bindparam("identity_key")
)
_LINKS_BETWEEN = select(_LINKS).where(
    _L.task_id.in_(bindparam("task_ids", expanding=True)),
    _L.artifact_id.in_(bindparam("artifact_ids", expanding=True)),
)
_LINKS_OF_TASKS = (
    select(_LINKS, _ARTIFACTS)
    .join(_ARTIFACTS, _A.id == _L.artifact_id)
    .where(_L.task_id.in_(bindparam("task_ids", expanding=True)))
    .order_by(_L.task_id, _L.type, _L.key, _L.id)
)
_LINKS_OF_TASK = (
    select(_LINKS, _ARTIFACTS)
    .join(_ARTIFACTS, _A.id == _L.artifact_id)
    .where(_L.task_id == bindparam("task_id"))
    .order_by(_L.type, _L.key, _L.id)
)
_CHILDREN_OF = (
    select(_T.parent_task_id, _T.id, _T.name)
    .where(_T.parent_task_id.in_(bindparam("task_ids", expanding=True)))
    .order_by(_T.created_at, _T.id)
)
_INSERT_ARTIFACT = insert(_ARTIFACTS)
_INSERT_LINK = insert(_LINKS)


def _artifact_snapshot(values: Values) -> Artifact:
    """A detached Artifact of a row dict (its "metadata" column is the metadata_ attribute)."""
    attrs = {k: v for k, v in values.items() if k != "metadata"}
    attrs["metadata_"] = values["metadata"]
    return detached(Artifact, attrs)


@dataclass(frozen=True)
class _TaskRef:
    """What a link or an artifact needs of its task."""

    id: str
    run_id: str
    namespace: str
    name: str


def _task_refs(conn: Connection, pairs: set[tuple[str, str]]) -> dict[str, _TaskRef]:
    """Load tasks by id and check each belongs to the run named with it."""
    ids = [t for t, _ in pairs]
    rows = conn.execute(_TASK_REFS, {"task_ids": ids})
    tasks = {r.id: _TaskRef(r.id, r.run_id, r.namespace, r.name) for r in rows}
    for task_id, run_id in pairs:
        task = tasks.get(task_id)
        if task is None or task.run_id != run_id:
            raise NotFound(f"task {task_id!r} not found in run {run_id}")
    return tasks


@dataclass(frozen=True)
class _LinkSpec:
    artifact_id: str
    task: _TaskRef
    io_type: IOType
    producer: dict[str, Any] | None
    key: str
    unseen: bool = False  # its artifact or task was just created: no stored link can exist


def _ensure_links(conn: Connection, specs: list[_LinkSpec], now: int) -> list[Values]:
    """Insert links; one already stored, or given twice, is returned instead (idempotent)."""
    links: dict[tuple[str, str, int, int, str], Values] = {}
    stored = [s for s in specs if not s.unseen]
    if stored:
        params = {
            "task_ids": list({s.task.id for s in stored}),
            "artifact_ids": list({s.artifact_id for s in stored}),
        }
        for row in conn.execute(_LINKS_BETWEEN, params):
            links[(row.artifact_id, row.task_id, row.type, row.iteration, row.key)] = dict(
                row._mapping
            )
    out: list[Values] = []
    new: list[Values] = []
    for spec in specs:
        iteration = -1
        if spec.producer and spec.producer.get("iteration") is not None:
            iteration = int(spec.producer["iteration"])
        identity = (spec.artifact_id, spec.task.id, int(spec.io_type), iteration, spec.key)
        link = links.get(identity)
        if link is None:
            link = {
                "id": new_id(),
                "artifact_id": spec.artifact_id,
                "task_id": spec.task.id,
                "run_id": spec.task.run_id,
                "type": int(spec.io_type),
                "iteration": iteration,
                "producer": spec.producer,
                "key": spec.key,
                "created_at": now,
            }
            links[identity] = link
            new.append(link)
        out.append(link)
    if new:
        conn.execute(_INSERT_LINK, new)
    return out


def _artifact_for(
    conn: Connection,
    checked: _Checked,
    task: _TaskRef,
    now: int,
    by_identity: dict[tuple[str, str], Values],
) -> tuple[Values, bool]:
    """The artifact row a create request names: a reused one (False) or a new one (True)."""
    req = checked.request
    art = req.artifact
    assert art is not None
    if art.namespace and task.namespace and art.namespace != task.namespace:
        raise InvalidArgument(
            f"artifact namespace {art.namespace!r} differs from its run's {task.namespace!r}"
        )
    namespace = task.namespace
    ident = None
    if req.reuse_if_exists:
        ident = identity_key(
            int(checked.atype), art.uri or "", art.name or "", art.description or "", art.metadata
        )
        found = by_identity.get((namespace, ident))
        if found is None:
            params = {"namespace": namespace, "identity_key": ident}
            row = conn.execute(_ARTIFACT_BY_IDENTITY, params).first()
            found = dict(row._mapping) if row is not None else None
        if found is not None:
            by_identity[(namespace, ident)] = found
            return found, False
    values: Values = {
        "id": new_id(),
        "namespace": namespace,
        "type": int(checked.atype),
        "uri": art.uri or None,
        "uri_hash": uri_hash(art.uri),
        "name": art.name or "",
        "description": art.description or "",
        "created_at": now,
        "last_update": now,
        "metadata": art.metadata,
        "number_value": art.number_value,
        "identity_key": ident,
    }
    if ident is not None:
        by_identity[(namespace, ident)] = values
    return values, True


def create_artifacts(session: Session, requests: list[CreateArtifactRequest]) -> list[Artifact]:
    """Create artifacts with their producer links, all in the caller's transaction."""
    if not requests:
        raise InvalidArgument("artifacts must not be empty")
    checked = [_check_create(r) for r in requests]
    conn = session.connection()
    for run_id in sorted({c.request.run_id or "" for c in checked}):
        lock_run_for_writes(conn, run_id)
    tasks = _task_refs(conn, {(c.request.task_id or "", c.request.run_id or "") for c in checked})
    return _write_artifacts(conn, checked, tasks)


SessionInfoOf = Callable[[str], dict[str, Any] | None]


def create_task_outputs(
    session: Session,
    task: Mapping[str, Any],
    requests: list[CreateArtifactRequest],
    session_info_of: SessionInfoOf | None = None,
) -> list[tuple[Values, Values]]:
    """:func:`create_artifacts` for the outputs of one task whose row the caller has read under
    its run's lock (the launcher's ``:finish``): no second lock, no task lookup.
    ``session_info_of(uri)``: the store_session_info of a new artifact, written with its row.
    Returns the (link, artifact) rows written (or found: links are idempotent)."""
    checked = [_check_create(r) for r in requests]
    for c in checked:
        if c.request.task_id != task["id"] or c.request.run_id != task["run_id"]:
            raise InvalidArgument("every output must name the finishing task and its run")
    ref = _TaskRef(task["id"], task["run_id"], task["namespace"], task["name"])
    rows, links = _write_rows(session.connection(), checked, {ref.id: ref}, session_info_of)
    by_id = {r["id"]: r for r in rows}
    return [(link, by_id[link["artifact_id"]]) for link in links]


def _write_artifacts(
    conn: Connection, checked: list[_Checked], tasks: dict[str, _TaskRef]
) -> list[Artifact]:
    rows, _links = _write_rows(conn, checked, tasks)
    return [_artifact_snapshot(r) for r in rows]


def _write_rows(
    conn: Connection,
    checked: list[_Checked],
    tasks: dict[str, _TaskRef],
    session_info_of: SessionInfoOf | None = None,
) -> tuple[list[Values], list[Values]]:
    """Insert the new artifacts and every link; the artifact rows, then the link rows."""
    now = now_us()
    rows: list[Values] = []
    new_rows: list[Values] = []
    specs: list[_LinkSpec] = []
    by_identity: dict[tuple[str, str], Values] = {}
    for c in checked:
        task = tasks[c.request.task_id or ""]
        row, is_new = _artifact_for(conn, c, task, now, by_identity)
        if is_new:
            info = session_info_of(row["uri"]) if session_info_of and row["uri"] else None
            row["store_session_info"] = info  # in the INSERT: no UPDATE after it
            new_rows.append(row)
        rows.append(row)
        producer = _producer(task.name, c.request.iteration_index)
        key = c.request.producer_key or ""
        specs.append(_LinkSpec(row["id"], task, c.link_type, producer, key, unseen=is_new))
    if new_rows:
        conn.execute(_INSERT_ARTIFACT, new_rows)
    return rows, _ensure_links(conn, specs, now)


def get_artifact(session: Session, artifact_id: str) -> Artifact:
    row = session.get(Artifact, require(artifact_id, "artifact_id"))
    if row is None:
        raise NotFound(f"artifact {artifact_id!r} not found")
    return row


def list_artifacts(
    session: Session,
    namespace: str | None,
    request: ListRequest,
    *,
    produced_in_run: str | None = None,
) -> Page[Artifact]:
    """ListArtifacts. ``namespace`` None lists every namespace; a namespace (even "", the
    single-user one) is an equality the (namespace, created_at, id)-style indexes serve.
    ``produced_in_run`` keeps the artifacts a run's tasks produced (kept on the link table)."""
    stmt = select(Artifact)
    if namespace is not None:
        stmt = stmt.where(Artifact.namespace == namespace)
    if produced_in_run:
        produced = select(ArtifactTask.artifact_id).where(
            ArtifactTask.run_id == produced_in_run, ArtifactTask.type.in_(PRODUCER_LINK_TYPES)
        )
        stmt = stmt.where(Artifact.id.in_(produced))
    # Exact-URI lookups go through the hashed, indexed column.
    for pred in parse_filter(request.filter).predicates:
        if pred.key == "uri" and pred.op == Op.EQUALS and isinstance(pred.value, str):
            stmt = stmt.where(Artifact.uri_hash == uri_hash(pred.value))
    return list_page(
        session,
        stmt,
        fields=ARTIFACT_FIELDS,
        id_field="artifact_id",
        default_sort="created_at",
        request=request,
        context=[namespace, produced_in_run or ""],
    )


def _check_link(body: ArtifactTaskBody) -> None:
    require(body.artifact_id, "artifact_task.artifact_id")
    require(body.task_id, "artifact_task.task_id")
    require(body.run_id, "artifact_task.run_id")
    require(body.key, "artifact_task.key")
    if body.type is None or body.type == IOType.UNSPECIFIED:
        raise InvalidArgument("artifact_task.type is required and must not be UNSPECIFIED")
    if body.producer is None:
        raise InvalidArgument("artifact_task.producer is required")


def create_artifact_tasks(
    session: Session, bodies: list[ArtifactTaskBody], *, one_namespace: bool = False
) -> list[ArtifactTask]:
    """CreateArtifactTask(s). ``one_namespace`` (multi-user mode): an artifact may only be
    linked to a task of its own namespace, so a launcher cannot reach another team's bytes."""
    if not bodies:
        raise InvalidArgument("artifact_tasks must not be empty")
    for body in bodies:
        _check_link(body)
    conn = session.connection()
    for run_id in sorted({b.run_id or "" for b in bodies}):
        lock_run_for_writes(conn, run_id)
    tasks = _task_refs(conn, {(b.task_id or "", b.run_id or "") for b in bodies})
    namespaces = _check_artifacts_exist(conn, list({b.artifact_id or "" for b in bodies}))
    if one_namespace:
        for body in bodies:
            _same_namespace(namespaces, [body.artifact_id or ""], tasks[body.task_id or ""])
    specs = []
    for body in bodies:
        assert body.producer is not None and body.type is not None
        task = tasks[body.task_id or ""]
        producer = body.producer.dump()
        specs.append(_LinkSpec(body.artifact_id or "", task, body.type, producer, body.key or ""))
    return [detached(ArtifactTask, link) for link in _ensure_links(conn, specs, now_us())]


def _check_artifacts_exist(conn: Connection, artifact_ids: list[str]) -> dict[str, str]:
    """The artifacts' namespaces; NotFound if one does not exist."""
    found = {r.id: r.namespace for r in conn.execute(_ARTIFACT_IDS, {"artifact_ids": artifact_ids})}
    missing = set(artifact_ids) - set(found)
    if missing:
        raise NotFound(f"artifact(s) not found: {sorted(missing)}")
    return found


def _same_namespace(namespaces: dict[str, str], artifact_ids: list[str], task: _TaskRef) -> None:
    foreign = sorted(a for a in artifact_ids if namespaces[a] != task.namespace)
    if foreign:
        raise InvalidArgument(f"artifact(s) of another namespace than task {task.id}'s: {foreign}")


def _link_specs(
    ref: _TaskRef, io: dict[str, list[IOArtifact]], *, new_task: bool
) -> list[_LinkSpec]:
    """The links a CreateTask body's ``inputs/outputs.artifacts`` ask for, checked."""
    specs: list[_LinkSpec] = []
    for side, entries in io.items():
        for i, entry in enumerate(entries):
            where = f"{side}.artifacts[{i}]"
            io_type = entry.type or IOType.UNSPECIFIED
            if io_type == IOType.UNSPECIFIED:
                raise InvalidArgument(f"{where}.type is required and must not be UNSPECIFIED")
            if io_type.is_output != (side == "outputs"):
                kind = "an output" if io_type.is_output else "an input"
                raise InvalidArgument(f"{where}.type {io_type.name} is {kind} type")
            key = require(entry.artifact_key, f"{where}.artifact_key")
            if entry.producer is None:
                raise InvalidArgument(f"{where}.producer is required")
            if not entry.artifacts:
                raise InvalidArgument(f"{where}.artifacts must name at least one artifact")
            producer = entry.producer.dump()
            for j, art in enumerate(entry.artifacts):
                artifact_id = require(art.artifact_id, f"{where}.artifacts[{j}].artifact_id")
                specs.append(_LinkSpec(artifact_id, ref, io_type, producer, key, unseen=new_task))
    return specs


def link_task_artifacts(
    session: Session,
    task: Task,
    io: dict[str, list[IOArtifact]],
    *,
    new_task: bool,
    one_namespace: bool = False,
) -> None:
    """Record the links a CreateTask body lists in ``inputs/outputs.artifacts`` (a kfpd extension:
    one request instead of CreateTask + CreateArtifactTasksBulk). ``io`` maps "inputs" and
    "outputs" to their IOArtifacts; each names stored artifacts by id, its IO type (an input type
    under inputs, an output type under outputs), key and producer. Idempotent like
    CreateArtifactTasksBulk. The caller holds the run's lock."""
    ref = _TaskRef(task.id, task.run_id, task.namespace, task.name)
    specs = _link_specs(ref, io, new_task=new_task)
    if not specs:
        return
    conn = session.connection()
    artifact_ids = sorted({s.artifact_id for s in specs})
    if not new_task or one_namespace:
        namespaces = _check_artifacts_exist(conn, artifact_ids)
        if one_namespace:
            _same_namespace(namespaces, artifact_ids, ref)
        _ensure_links(conn, specs, now_us())
        return
    # A new task's links are all new: the artifact foreign key checks the ids as they go in,
    # which saves a lookup on the call every launcher makes.
    try:
        _ensure_links(conn, specs, now_us())
    except IntegrityError as exc:
        if is_foreign_key_violation(exc):
            raise NotFound(f"artifact(s) not found: one or more of {artifact_ids}") from exc
        raise


def list_artifact_tasks(
    session: Session,
    *,
    task_ids: list[str],
    run_ids: list[str],
    artifact_ids: list[str],
    io_type: IOType | None,
    request: ListRequest,
) -> Page[ArtifactTask]:
    if not (task_ids or run_ids or artifact_ids):
        raise InvalidArgument("give at least one of task_ids, run_ids or artifact_ids")
    if any(not x for x in [*task_ids, *run_ids, *artifact_ids]):
        raise InvalidArgument("task_ids, run_ids and artifact_ids must not contain empty strings")
    stmt = select(ArtifactTask)
    if task_ids:
        stmt = stmt.where(ArtifactTask.task_id.in_(task_ids))
    if run_ids:
        stmt = stmt.where(ArtifactTask.run_id.in_(run_ids))
    if artifact_ids:
        stmt = stmt.where(ArtifactTask.artifact_id.in_(artifact_ids))
    if io_type and io_type != IOType.UNSPECIFIED:
        stmt = stmt.where(ArtifactTask.type == int(io_type))
    return list_page(
        session,
        stmt,
        fields=LINK_FIELDS,
        id_field="id",
        default_sort="created_at",
        request=request,
        context=[sorted(task_ids), sorted(run_ids), sorted(artifact_ids), int(io_type or 0)],
    )


GROUP_TYPE_NUMBERS = frozenset(int(t) for t in GROUP_TASK_TYPES)


@dataclass
class Hydration:
    """Links with their artifacts, and child tasks, for a set of tasks (no query per task)."""

    links: dict[str, list[tuple[ArtifactTask, Artifact]]]
    children: dict[str, list[tuple[str, str]]]


def hydration_of(task_id: str, links: list[tuple[Values, Values]]) -> Hydration:
    """The :class:`Hydration` of one task without children from (link, artifact) rows already
    at hand, in :func:`hydrate`'s order."""
    ordered = sorted(links, key=lambda pair: (pair[0]["type"], pair[0]["key"], pair[0]["id"]))
    pairs = [(detached(ArtifactTask, link), _artifact_snapshot(art)) for link, art in ordered]
    return Hydration(links=defaultdict(list, {task_id: pairs}), children=defaultdict(list))


def hydrate(session: Session, tasks: list[Task]) -> Hydration:
    links: dict[str, list[tuple[ArtifactTask, Artifact]]] = defaultdict(list)
    children: dict[str, list[tuple[str, str]]] = defaultdict(list)
    conn = session.connection()
    width = len(_LINKS.c)
    for start in range(0, len(tasks), 500):
        chunk = tasks[start : start + 500]
        # One task (CreateTask, :finish): an equality lookup skips expanding an IN list.
        rows = (
            conn.execute(_LINKS_OF_TASK, {"task_id": chunk[0].id})
            if len(chunk) == 1
            else conn.execute(_LINKS_OF_TASKS, {"task_ids": [t.id for t in chunk]})
        )
        for row in rows:
            link = detached(ArtifactTask, dict(zip(_LINKS.c.keys(), row[:width], strict=True)))
            artifact = _artifact_snapshot(dict(zip(_ARTIFACTS.c.keys(), row[width:], strict=True)))
            links[link.task_id].append((link, artifact))
        # Only group tasks have children: runtime tasks skip the query.
        groups = [t.id for t in chunk if t.type in GROUP_TYPE_NUMBERS]
        if not groups:
            continue
        for parent_id, child_id, name in conn.execute(_CHILDREN_OF, {"task_ids": groups}):
            children[parent_id or ""].append((child_id, name))
    return Hydration(links=links, children=children)


def link_artifact(
    session: Session,
    *,
    artifact_id: str,
    task: Mapping[str, Any],
    io_type: IOType,
    producer: dict[str, Any] | None,
    key: str,
    now: int,
) -> None:
    """Link an existing artifact to a task row (idempotent); the caller holds the run lock."""
    ref = _TaskRef(task["id"], task["run_id"], task["namespace"], task["name"])
    _ensure_links(session.connection(), [_LinkSpec(artifact_id, ref, io_type, producer, key)], now)
