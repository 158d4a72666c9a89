"""Lineage: the artifacts and tasks upstream or downstream of an artifact or a task, to N hops.

Data flows producer task -> artifact -> consumer task. The edges are artifact_tasks rows:
an output link (OUTPUT, ITERATOR_OUTPUT, ONE_OF_OUTPUT) of a RUNTIME or IMPORTER task, and an
input link of a RUNTIME task. Group tasks carry propagated copies of their children's links;
those are not edges. One hop is one edge, so tasks and artifacts alternate along a path.

A walk is one SQL statement (portable to SQLite, PostgreSQL and MariaDB):

* Per direction, a recursive CTE walks *tasks* two hops at a time (task -> artifact -> task),
  carrying the edge that reached each task; every step is an index lookup
  (artifact_tasks by (task_id, type) and by the unique key's (artifact_id, type) prefix,
  tasks by primary key).
  UNION (not UNION ALL) keeps one row per (task, hop, edge), so cycles and diamonds cannot
  blow up: at most tasks x hops x in-degree rows. The artifacts between are joined on after.
* Each node is kept at its smallest hop (upstream before downstream on a tie) with every edge
  that reaches it there: an edge from a node at hop h-1, or from the root. (That node's own
  smallest hop is then h-1: were it smaller, this node's would be too.)
* Window functions then count the nodes and cut one keyset page ordered by (hop, kind, id).

Every page repeats the walk (there is no server-side cursor). A page that looks downstream
first walks only EARLY_HOPS past its cursor, and to max_hops only when that neither fills it
nor dies out before its limit, so the first pages of a huge neighbourhood (a dataset every run
reads) stay fast; total_size is left out when the full walk was not needed.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, ArtifactTask, Task
from kfpd.domain.enums import ArtifactType, IOType, TaskType
from kfpd.domain.errors import InvalidArgument, NotFound
from kfpd.domain.page_token import decode_page_token, encode_page_token

MAX_HOPS_LIMIT = 100
DEFAULT_MAX_HOPS = 3
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 200

INPUT_LINK_TYPES = (
    IOType.COMPONENT_DEFAULT_INPUT,
    IOType.TASK_OUTPUT_INPUT,
    IOType.COMPONENT_INPUT,
    IOType.RUNTIME_VALUE_INPUT,
    IOType.COLLECTED_INPUTS,
    IOType.ITERATOR_INPUT,
    IOType.ITERATOR_INPUT_RAW,
)
OUTPUT_LINK_TYPES = (IOType.OUTPUT, IOType.ITERATOR_OUTPUT, IOType.ONE_OF_OUTPUT)
PRODUCER_TASK_TYPES = (TaskType.RUNTIME, TaskType.IMPORTER)
CONSUMER_TASK_TYPES = (TaskType.RUNTIME,)


def _contiguous(types: tuple[IOType, ...]) -> tuple[int, int]:
    """Both link-type sets are runs of consecutive numbers, which the SQL asks for as ranges:
    a range on the second column of the (artifact_id, type, ...) key is an index bound on
    every database, where PostgreSQL may apply an IN list only as a filter."""
    low, high = min(types), max(types)
    if {int(t) for t in types} != set(range(low, high + 1)):
        raise AssertionError(f"link types {types} are not consecutive numbers")
    return int(low), int(high)


_INPUTS = _contiguous(INPUT_LINK_TYPES)
_OUTPUTS = _contiguous(OUTPUT_LINK_TYPES)
_PRODUCERS = [int(t) for t in PRODUCER_TASK_TYPES]
_CONSUMERS = [int(t) for t in CONSUMER_TASK_TYPES]


class Direction(StrEnum):
    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"
    BOTH = "BOTH"


class NodeKind(StrEnum):
    ARTIFACT = "ARTIFACT"
    TASK = "TASK"


# SQL codes; their order is the page order of (hop, kind) and the tie-break of directions.
_KIND_CODE = {NodeKind.ARTIFACT: 0, NodeKind.TASK: 1}
_KIND_OF_CODE = {v: k for k, v in _KIND_CODE.items()}
_UP, _DOWN = 0, 1
_DIRECTION_OF_CODE = {_UP: Direction.UPSTREAM, _DOWN: Direction.DOWNSTREAM}


@dataclass(frozen=True)
class LineageQuery:
    root_kind: NodeKind
    root_id: str
    direction: Direction = Direction.BOTH
    max_hops: int = DEFAULT_MAX_HOPS
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str | None = None
    namespace: str | None = None
    node_kind: NodeKind | None = None
    artifact_type: ArtifactType | None = None

    def check(self) -> None:
        if not self.root_id:
            raise InvalidArgument(f"{self.root_kind.value.lower()} id is required")
        if not 1 <= self.max_hops <= MAX_HOPS_LIMIT:
            raise InvalidArgument(f"max_hops must be between 1 and {MAX_HOPS_LIMIT}")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.artifact_type == ArtifactType.TYPE_UNSPECIFIED:
            raise InvalidArgument("artifact_type must not be TYPE_UNSPECIFIED")

    def of_root(self, kind: NodeKind, root_id: str) -> LineageQuery:
        return dataclasses.replace(self, root_kind=kind, root_id=root_id)

    def fingerprint(self) -> list[Any]:
        """What a page token is bound to: everything but the page size and the token."""
        return [
            self.root_kind.value,
            self.root_id,
            self.direction.value,
            self.max_hops,
            self.namespace or "",
            self.node_kind.value if self.node_kind else "",
            int(self.artifact_type) if self.artifact_type else 0,
        ]


@dataclass(frozen=True)
class LineageEdge:
    """A link in data-flow orientation: task -> artifact (output) or artifact -> task (input)."""

    source_id: str
    target_id: str
    io_type: IOType
    key: str


@dataclass
class LineageNode:
    kind: NodeKind
    id: str
    hop: int
    direction: Direction
    name: str = ""
    display_name: str = ""
    task_type: TaskType | None = None
    task_state: int | None = None
    artifact_type: ArtifactType | None = None
    uri: str | None = None
    run_id: str | None = None


@dataclass
class LineagePage:
    root_kind: NodeKind
    root_id: str
    nodes: list[LineageNode] = field(default_factory=list)
    edges: list[LineageEdge] = field(default_factory=list)
    next_page_token: str = ""
    total_size: int | None = None


# ---------------------------------------------------------------------------- page tokens


def _encode_token(query: LineageQuery, after: tuple[int, int, str]) -> str:
    return encode_page_token({"q": query.fingerprint(), "after": list(after)})


def _decode_token(query: LineageQuery) -> tuple[int, int, str] | None:
    token = query.page_token
    if not token:
        return None
    invalid = InvalidArgument("invalid page_token: not a lineage token this server issued")
    payload = decode_page_token(token, {"q", "after"}, "lineage token")
    after = payload["after"]
    if not (
        isinstance(after, list)
        and len(after) == 3
        and isinstance(after[0], int)
        and after[1] in _KIND_OF_CODE
        and isinstance(after[2], str)
    ):
        raise invalid
    if payload["q"] != query.fingerprint():
        raise InvalidArgument(
            "page_token was issued for another lineage query (root, direction, max_hops, "
            "namespace, node_kind and artifact_type must stay the same)"
        )
    return int(after[0]), int(after[1]), str(after[2])


# ---------------------------------------------------------------------------- the SQL

_ID = String(36)
_KEY = String(191)


def _edge_columns(source: Any, target: Any, io_type: Any, key: Any) -> list[ColumnElement[Any]]:
    # Explicit casts: a recursive CTE's column types must match between its two terms on
    # PostgreSQL, and MariaDB sizes them from the first term.
    return [
        cast(source, _ID).label("src"),
        cast(target, _ID).label("dst"),
        cast(io_type, Integer).label("io"),
        cast(key, _KEY).label("lkey"),
    ]


def _range(types: tuple[int, int]) -> range:
    return range(types[0], types[1] + 1)


def _link_type(column: Any, types: tuple[int, int]) -> ColumnElement[bool]:
    clause: ColumnElement[bool] = column.between(_int(types[0]), _int(types[1]))
    return clause


def _int(value: int) -> ColumnElement[int]:
    """A constant of ours, inlined (hop steps and codes; never user input)."""
    return literal_column(str(int(value)), Integer)


@dataclass(frozen=True)
class _Shape:
    """What changes the SQL text of a query; every value goes in as a bound parameter."""

    root_kind: NodeKind
    direction: Direction
    namespaced: bool
    node_kind: NodeKind | None
    typed: bool
    continued: bool
    dialect: str

    @classmethod
    def of(cls, query: LineageQuery, continued: bool, dialect: str) -> _Shape:
        return cls(
            query.root_kind,
            query.direction,
            query.namespace is not None,
            query.node_kind,
            query.artifact_type is not None,
            continued,
            dialect,
        )

    @property
    def equality_joins(self) -> bool:
        return self.dialect in {"mysql", "mariadb"}


def _params(
    query: LineageQuery, after: tuple[int, int, str] | None, walk_hops: int
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "root_id": query.root_id,
        "walk_hops": walk_hops,
        "limit": query.page_size + 1,
    }
    if query.namespace is not None:
        params["namespace"] = query.namespace
    if query.artifact_type is not None:
        params["artifact_type"] = int(query.artifact_type)
    if after is not None:
        params["after_hop"], params["after_kind"], params["after_id"] = after
    return params


class _Builder:
    """Builds the one statement that answers a lineage page of a given shape."""

    def __init__(self, shape: _Shape) -> None:
        self.shape = shape
        self.links = ArtifactTask.__table__
        self.tasks = Task.__table__
        self.artifacts = Artifact.__table__
        self.root_id = bindparam("root_id", type_=_ID)
        self.walk_hops = bindparam("walk_hops", type_=Integer)
        self.namespace = bindparam("namespace", type_=String(63))

    def _task_ok(self, t: Any, types: list[int]) -> ColumnElement[bool]:
        clauses = [t.c.type.in_(types)]
        if self.shape.namespaced:
            clauses.append(t.c.namespace == self.namespace)
        return and_(*clauses)

    def _through_artifact(self, stmt: Select[Any], link: Any) -> Select[Any]:
        """With a namespace, the walk only passes through artifacts of that namespace."""
        if not self.shape.namespaced:
            return stmt
        a = self.artifacts.alias()
        return stmt.join(a, and_(a.c.id == link.c.artifact_id, a.c.namespace == self.namespace))

    def walk(self, up: bool) -> CTE:
        """Tasks reachable from the root in one direction, each with the edge that reached it.

        Upstream, a task's edge is its output link to an artifact nearer the root; downstream,
        the input link from one.
        """
        name = "walk_up" if up else "walk_down"
        # Seed: the root task at hop 0, or the root artifact's producers/consumers at hop 1.
        if self.shape.root_kind == NodeKind.TASK:
            t = self.tasks.alias("root_task")
            seed = select(
                t.c.id.label("task_id"),
                t.c.type.label("ttype"),
                _int(0).label("hop"),
                *_edge_columns(null(), null(), null(), null()),
            ).where(t.c.id == self.root_id)
        else:
            link = self.links.alias("seed_link")
            t = self.tasks.alias("seed_task")
            seed = (
                select(
                    t.c.id.label("task_id"),
                    t.c.type.label("ttype"),
                    _int(1).label("hop"),
                    *self._edge(link, t, up),
                )
                .select_from(link)
                .join(t, t.c.id == link.c.task_id)
                .where(
                    link.c.artifact_id == self.root_id,
                    _link_type(link.c.type, _OUTPUTS if up else _INPUTS),
                    self._task_ok(t, _PRODUCERS if up else _CONSUMERS),
                )
            )
        cte = seed.cte(name, recursive=True)
        # Step: task -> its artifacts (inputs upstream, outputs downstream) -> their
        # producers/consumers, two hops further.
        near = self.links.alias(f"{name}_near")
        far = self.links.alias(f"{name}_far")
        t = self.tasks.alias(f"{name}_task")
        step = select(
            t.c.id,
            t.c.type,
            (cte.c.hop + _int(2)).label("hop"),
            *self._edge(far, t, up),
        ).select_from(cte)
        step = step.join(
            near,
            and_(
                near.c.task_id == cte.c.task_id,
                _link_type(near.c.type, _INPUTS if up else _OUTPUTS),
            ),
        )
        step = self._through_artifact(step, near)
        if up and self.shape.equality_joins:
            # An artifact's producer among possibly thousands of consumer links. MySQL/MariaDB
            # join through an index by equalities only, and would read every link of the
            # artifact: one lookup per output type instead, in this join order.
            types = union_all(*(select(_int(v).label("t")) for v in _range(_OUTPUTS)))
            out_types = types.subquery(f"{name}_types")
            step = step.join(out_types, true()).join(
                far,
                and_(far.c.artifact_id == near.c.artifact_id, far.c.type == out_types.c.t),
            )
            step = step.prefix_with("STRAIGHT_JOIN", dialect=self.shape.dialect)
        else:
            # Elsewhere a range on the key's second column is an index bound.
            step = step.join(
                far,
                and_(
                    far.c.artifact_id == near.c.artifact_id,
                    _link_type(far.c.type, _OUTPUTS if up else _INPUTS),
                ),
            )
        step = step.join(t, t.c.id == far.c.task_id).where(
            cte.c.ttype.in_(_CONSUMERS if up else _PRODUCERS),
            self._task_ok(t, _PRODUCERS if up else _CONSUMERS),
            cte.c.hop + _int(2) <= self.walk_hops,
        )
        return cte.union(step)

    @staticmethod
    def _edge(link: Any, task: Any, up: bool) -> list[ColumnElement[Any]]:
        """The edge of a link reaching ``task``: task -> artifact upstream (its output),
        artifact -> task downstream (its input)."""
        if up:
            return _edge_columns(task.c.id, link.c.artifact_id, link.c.type, link.c.key)
        return _edge_columns(link.c.artifact_id, task.c.id, link.c.type, link.c.key)

    def rows(self, walk: CTE, up: bool) -> list[Select[Any]]:
        """(kind, id, dir, hop, edge) rows of one direction: its tasks, then its artifacts."""
        direction = _int(_UP if up else _DOWN).label("dir")
        tasks = select(
            _int(_KIND_CODE[NodeKind.TASK]).label("kind"),
            walk.c.task_id.label("id"),
            direction,
            walk.c.hop,
            walk.c.src,
            walk.c.dst,
            walk.c.io,
            walk.c.lkey,
        ).where(walk.c.hop >= 1)
        # Artifacts: the inputs (upstream) or outputs (downstream) of the walk's tasks.
        hops = select(walk.c.task_id, walk.c.ttype, walk.c.hop).distinct().subquery()
        link = self.links.alias(f"{walk.name}_art")
        if up:
            edge = _edge_columns(link.c.artifact_id, hops.c.task_id, link.c.type, link.c.key)
        else:
            edge = _edge_columns(hops.c.task_id, link.c.artifact_id, link.c.type, link.c.key)
        arts = (
            select(
                _int(_KIND_CODE[NodeKind.ARTIFACT]).label("kind"),
                link.c.artifact_id.label("id"),
                direction,
                (hops.c.hop + _int(1)).label("hop"),
                *edge,
            )
            .select_from(hops)
            .join(
                link,
                and_(
                    link.c.task_id == hops.c.task_id,
                    _link_type(link.c.type, _INPUTS if up else _OUTPUTS),
                ),
            )
        )
        arts = self._through_artifact(arts, link).where(
            hops.c.ttype.in_(_CONSUMERS if up else _PRODUCERS),
            hops.c.hop + _int(1) <= self.walk_hops,
        )
        return [tasks, arts]

    def statement(self) -> Select[Any]:
        shape = self.shape
        parts: list[Select[Any]] = []
        if shape.direction in (Direction.UPSTREAM, Direction.BOTH):
            parts += self.rows(self.walk(up=True), up=True)
        if shape.direction in (Direction.DOWNSTREAM, Direction.BOTH):
            parts += self.rows(self.walk(up=False), up=False)
        r = union_all(*parts).subquery("reached")

        # Each node at its smallest hop (upstream first on a tie), with the edges reaching it.
        rank = r.c.hop * 2 + r.c.dir
        ranked = (
            select(
                r,
                func.min(rank).over(partition_by=(r.c.kind, r.c.id)).label("best"),
                # Rows at the walk's hop limit: with none, a deeper walk finds nothing more.
                # (A SUM, not MAX(hop) OVER (): MariaDB computes that one in quadratic time.)
                func.sum(case((r.c.hop >= self.walk_hops, 1), else_=0)).over().label("at_limit"),
            )
            .where(or_(r.c.kind != _int(_KIND_CODE[shape.root_kind]), r.c.id != self.root_id))
            .subquery("ranked")
        )
        keep = [ranked.c.hop * 2 + ranked.c.dir == ranked.c.best]
        if shape.node_kind is not None:
            keep.append(ranked.c.kind == _int(_KIND_CODE[shape.node_kind]))
        if shape.typed:
            typed = select(self.artifacts.c.id).where(
                self.artifacts.c.type == bindparam("artifact_type", type_=Integer)
            )
            keep.append(
                or_(ranked.c.kind != _int(_KIND_CODE[NodeKind.ARTIFACT]), ranked.c.id.in_(typed))
            )
        names = ("kind", "id", "dir", "hop", "src", "dst", "io", "lkey", "at_limit")
        cols = [ranked.c[n] for n in names]
        first = case(
            (func.row_number().over(partition_by=(ranked.c.kind, ranked.c.id)) == 1, 1),
            else_=0,
        )
        kept = select(*cols, first.label("first")).where(*keep).subquery("kept")
        # total: the nodes of the whole answer, counted before the page is cut.
        counted = select(kept, func.sum(kept.c.first).over().label("total")).subquery("counted")
        order = (counted.c.hop, counted.c.kind, counted.c.id)
        page = select(counted, func.dense_rank().over(order_by=order).label("pos"))
        if shape.continued:
            hop = bindparam("after_hop", type_=Integer)
            kind = bindparam("after_kind", type_=Integer)
            node_id = bindparam("after_id", type_=_ID)
            page = page.where(
                or_(
                    counted.c.hop > hop,
                    and_(counted.c.hop == hop, counted.c.kind > kind),
                    and_(counted.c.hop == hop, counted.c.kind == kind, counted.c.id > node_id),
                )
            )
        paged = page.subquery("paged")

        # The page's nodes described in the same statement: task or artifact columns, and for
        # an artifact the run of its first producing link.
        nt = self.tasks.alias("node_task")
        na = self.artifacts.alias("node_artifact")
        pl = self.links.alias("producer_link")
        pt = self.tasks.alias("producer_task")
        is_task = paged.c.kind == _int(_KIND_CODE[NodeKind.TASK])
        is_artifact = paged.c.kind == _int(_KIND_CODE[NodeKind.ARTIFACT])
        producer_run = (
            select(pl.c.run_id)
            .join(pt, pt.c.id == pl.c.task_id)
            .where(
                pl.c.artifact_id == paged.c.id,
                _link_type(pl.c.type, _OUTPUTS),
                pt.c.type.in_(_PRODUCERS),
            )
            .order_by(pl.c.created_at, pl.c.id)
            .limit(1)
            .correlate(paged)
            .scalar_subquery()
        )
        return (
            select(
                paged.c.kind,
                paged.c.id,
                paged.c.dir,
                paged.c.hop,
                paged.c.src,
                paged.c.dst,
                paged.c.io,
                paged.c.lkey,
                paged.c.total,
                paged.c.at_limit,
                func.coalesce(nt.c.name, na.c.name).label("name"),
                nt.c.display_name,
                nt.c.type.label("task_type"),
                nt.c.state.label("task_state"),
                nt.c.run_id.label("task_run_id"),
                na.c.type.label("artifact_type"),
                na.c.uri,
                case((is_artifact, producer_run), else_=null()).label("artifact_run_id"),
            )
            .select_from(paged)
            .outerjoin(nt, and_(is_task, nt.c.id == paged.c.id))
            .outerjoin(na, and_(is_artifact, na.c.id == paged.c.id))
            .where(paged.c.pos <= bindparam("limit", type_=Integer))
            .order_by(paged.c.hop, paged.c.kind, paged.c.id, paged.c.src, paged.c.dst, paged.c.io)
        )


@functools.lru_cache(maxsize=256)
def _statement(shape: _Shape) -> Select[Any]:
    """Built once per shape: building the SQLAlchemy construct costs more than running it."""
    return _Builder(shape).statement()


@functools.lru_cache(maxsize=4)
def _root_statement(kind: NodeKind) -> Select[Any]:
    model: type[Task] | type[Artifact] = Task if kind == NodeKind.TASK else Artifact
    return select(model.namespace).where(model.id == bindparam("root_id", type_=_ID))


# ---------------------------------------------------------------------------- use case


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _check_root(session: Session, query: LineageQuery) -> None:
    stmt = _root_statement(query.root_kind)
    namespace = session.execute(stmt, {"root_id": query.root_id}).scalar()
    # A root outside the requested namespace is reported as unknown, as it is to that caller.
    if namespace is None or (query.namespace is not None and namespace != query.namespace):
        what = query.root_kind.value.lower()
        raise NotFound(f"{what} {query.root_id!r} not found")


def _node(row: Any) -> LineageNode:
    kind = _KIND_OF_CODE[int(row.kind)]
    node = LineageNode(kind, row.id, int(row.hop), _DIRECTION_OF_CODE[int(row.dir)])
    node.name = row.name or ""
    if kind == NodeKind.TASK:
        node.display_name = row.display_name or ""
        node.task_type = TaskType(row.task_type) if row.task_type is not None else None
        node.task_state = row.task_state
        node.run_id = row.task_run_id
    else:
        node.artifact_type = ArtifactType(row.artifact_type) if row.artifact_type else None
        node.uri = row.uri
        node.run_id = row.artifact_run_id
    return node


# A page that looks downstream first walks only this many hops past its cursor: enough to
# fill it in a wide graph, where walking all max_hops from a dataset that every run reads
# could take seconds. Upstream alone is bounded by what the root was made from (fan-in), so
# it walks to max_hops at once rather than pay for a second statement on deep chains.
EARLY_HOPS = 2


def lineage(session: Session, query: LineageQuery) -> LineagePage:
    """One page of the lineage of ``query.root_*`` (see the module docstring).

    Looking downstream, the page is cut from a walk of ``cursor hop + EARLY_HOPS`` hops when
    that walk fills it (nodes further away sort after it, and nodes within it have the same
    smallest hops and edges as in the full walk); total_size is then unknown and left out.
    Otherwise the walk goes to max_hops and total_size is exact.
    """
    query.check()
    after = _decode_token(query)
    _check_root(session, query)
    stmt = _statement(_Shape.of(query, after is not None, _dialect(session)))
    walk_hops = query.max_hops
    if query.direction != Direction.UPSTREAM:
        walk_hops = min(query.max_hops, (after[0] if after else 0) + EARLY_HOPS)
    rows = session.execute(stmt, _params(query, after, walk_hops)).all()
    if walk_hops < query.max_hops and len({(r.kind, r.id) for r in rows}) <= query.page_size:
        # Not filled: walk all the way, unless this walk already died out before its limit.
        if not rows or rows[0].at_limit:
            rows = session.execute(stmt, _params(query, after, query.max_hops)).all()
        walk_hops = query.max_hops

    nodes: list[LineageNode] = []
    edges: list[LineageEdge] = []
    seen: set[LineageEdge] = set()
    more = False
    for row in rows:  # ordered by node, then edge
        if not nodes or (_KIND_CODE[nodes[-1].kind], nodes[-1].id) != (int(row.kind), row.id):
            if len(nodes) == query.page_size:
                more = True  # the first node of the next page
                break
            nodes.append(_node(row))
        edge = LineageEdge(row.src, row.dst, IOType(int(row.io)), row.lkey or "")
        if edge not in seen:  # one link per iteration of a loop is the same edge
            seen.add(edge)
            edges.append(edge)

    total: int | None = None
    if walk_hops == query.max_hops:
        # Counted over the whole answer, so any row carries it; an empty page after a cursor
        # (the graph shrank since) has none.
        total = int(rows[0].total or 0) if rows else (0 if after is None else None)
    next_token = ""
    if more:
        last = nodes[-1]
        next_token = _encode_token(query, (last.hop, _KIND_CODE[last.kind], last.id))
    return LineagePage(
        root_kind=query.root_kind,
        root_id=query.root_id,
        nodes=nodes,
        edges=edges,
        next_page_token=next_token,
        total_size=total,
    )


def first_page_statement(query: LineageQuery, dialect: str) -> Select[Any]:
    """The statement of a query's first page with its values bound (for plans and benches)."""
    query.check()
    params = _params(query, None, query.max_hops)
    return _statement(_Shape.of(query, False, dialect)).params(**params)
