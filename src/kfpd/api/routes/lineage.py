"""Lineage of an artifact or a task (kfpd extension; contract in docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kfpd.api.deps import Db, opt_int, opt_str
from kfpd.domain.enums import ArtifactType, TaskState
from kfpd.domain.errors import InvalidArgument
from kfpd.schemas.lineage import LineageEdge, LineageNode, LineageResponse, LineageRoot
from kfpd.services import lineage as svc

router = APIRouter(prefix="/apis/v2beta1", tags=["lineage"])
Q = Annotated[str | None, Query()]


def _choice(value: str | None, name: str, choices: type[svc.Direction] | type[svc.NodeKind]) -> str:
    text = (opt_str(value) or "").strip().upper()
    allowed = [c.value for c in choices]
    if text not in allowed:
        raise InvalidArgument(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return text


def _artifact_type(value: str | None) -> ArtifactType | None:
    text = opt_str(value)
    if text is None:
        return None
    by_name = {m.name.upper(): m for m in ArtifactType}
    found = by_name.get(text.strip().upper())
    if found is not None:
        return found
    try:  # numbers, as for every enum of the API
        return ArtifactType(ArtifactType.parse(text))
    except ValueError as exc:
        raise InvalidArgument(f"artifact_type: {exc}") from exc


def _query(
    kind: svc.NodeKind,
    root_id: str,
    direction: str | None,
    max_hops: str | None,
    page_size: str | None,
    page_token: str | None,
    namespace: str | None,
    node_kind: str | None,
    artifact_type: str | None,
) -> svc.LineageQuery:
    hops = opt_int(max_hops, "max_hops")
    size = opt_int(page_size, "page_size")
    return svc.LineageQuery(
        root_kind=kind,
        root_id=root_id,
        direction=svc.Direction(_choice(direction, "direction", svc.Direction))
        if opt_str(direction)
        else svc.Direction.BOTH,
        max_hops=svc.DEFAULT_MAX_HOPS if hops is None else hops,
        page_size=svc.DEFAULT_PAGE_SIZE if size is None else size,
        page_token=opt_str(page_token),
        namespace=opt_str(namespace),
        node_kind=svc.NodeKind(_choice(node_kind, "node_kind", svc.NodeKind))
        if opt_str(node_kind)
        else None,
        artifact_type=_artifact_type(artifact_type),
    )


def _out(page: svc.LineagePage) -> LineageResponse:
    nodes = []
    for n in page.nodes:
        if n.kind == svc.NodeKind.TASK:
            type_name = n.task_type.name if n.task_type is not None else None
            state = TaskState(n.task_state) if n.task_state is not None else None
        else:
            type_name = n.artifact_type.name if n.artifact_type is not None else None
            state = None
        nodes.append(
            LineageNode(
                kind=n.kind.value,
                id=n.id,
                hop=n.hop,
                direction=n.direction.value,  # type: ignore[arg-type]
                name=n.name or None,
                display_name=(n.display_name or None) if n.kind == svc.NodeKind.TASK else None,
                type=type_name,
                state=state,
                uri=n.uri or None,
                run_id=n.run_id or None,
            )
        )
    return LineageResponse(
        root=LineageRoot(kind=page.root_kind.value, id=page.root_id),
        nodes=nodes,
        edges=[
            LineageEdge(source_id=e.source_id, target_id=e.target_id, io_type=e.io_type, key=e.key)
            for e in page.edges
        ],
        next_page_token=page.next_page_token or None,
        total_size=page.total_size,
    )


@router.get(
    "/artifacts/{artifact_id}/lineage",
    response_model=LineageResponse,
    response_model_exclude_none=True,
)
def artifact_lineage(
    artifact_id: str,
    db: Db,
    direction: Q = None,
    max_hops: Q = None,
    page_size: Q = None,
    page_token: Q = None,
    namespace: Q = None,
    node_kind: Q = None,
    artifact_type: Q = None,
) -> LineageResponse:
    query = _query(
        svc.NodeKind.ARTIFACT,
        artifact_id,
        direction,
        max_hops,
        page_size,
        page_token,
        namespace,
        node_kind,
        artifact_type,
    )
    with db.read_session() as s:
        return _out(svc.lineage(s, query))


@router.get(
    "/tasks/{task_id}/lineage", response_model=LineageResponse, response_model_exclude_none=True
)
def task_lineage(
    task_id: str,
    db: Db,
    direction: Q = None,
    max_hops: Q = None,
    page_size: Q = None,
    page_token: Q = None,
    namespace: Q = None,
    node_kind: Q = None,
    artifact_type: Q = None,
) -> LineageResponse:
    query = _query(
        svc.NodeKind.TASK,
        task_id,
        direction,
        max_hops,
        page_size,
        page_token,
        namespace,
        node_kind,
        artifact_type,
    )
    with db.read_session() as s:
        return _out(svc.lineage(s, query))
