"""Lineage of an artifact or a task (kfpd extension; contract in docs/api.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query

from kfpd.api.deps import Db, opt_int, opt_str
from kfpd.domain.enums import ArtifactType, TaskState
from kfpd.domain.errors import InvalidArgument
from kfpd.schemas.lineage import LineageEdge, LineageNode, LineageResponse, LineageRoot
from kfpd.services import lineage as svc

router = APIRouter(prefix="/apis/v2beta1", tags=["lineage"])
Q = Annotated[str | None, Query()]
E = TypeVar("E", bound=StrEnum)


def _choice(value: str | None, name: str, choices: type[E]) -> E | None:
    """An enum by name, in any case; empty means unset."""
    text = opt_str(value)
    if text is None:
        return None
    try:
        return choices(text.strip().upper())
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise InvalidArgument(f"{name} must be one of {allowed}, got {value!r}") from None


def _artifact_type(value: str | None) -> ArtifactType | None:
    """An ArtifactType name in any case (``Dataset``, ``DATASET``) or number."""
    text = opt_str(value)
    if text is None:
        return None
    by_name = {m.name.upper(): m for m in ArtifactType}
    found = by_name.get(text.strip().upper())
    if found is not None:
        return found
    try:
        return ArtifactType(ArtifactType.parse(text))
    except ValueError as exc:
        raise InvalidArgument(f"artifact_type: {exc}") from exc


def lineage_params(
    direction: Q = None,
    max_hops: Q = None,
    page_size: Q = None,
    page_token: Q = None,
    namespace: Q = None,
    node_kind: Q = None,
    artifact_type: Q = None,
) -> svc.LineageQuery:
    """The query parameters, as a query of a root still to be named."""
    hops = opt_int(max_hops, "max_hops")
    size = opt_int(page_size, "page_size")
    return svc.LineageQuery(
        root_kind=svc.NodeKind.TASK,
        root_id="",
        direction=_choice(direction, "direction", svc.Direction) or svc.Direction.BOTH,
        max_hops=svc.DEFAULT_MAX_HOPS if hops is None else hops,
        page_size=svc.DEFAULT_PAGE_SIZE if size is None else size,
        page_token=opt_str(page_token),
        namespace=opt_str(namespace),
        node_kind=_choice(node_kind, "node_kind", svc.NodeKind),
        artifact_type=_artifact_type(artifact_type),
    )


Params = Annotated[svc.LineageQuery, Depends(lineage_params)]


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
                direction=n.direction.value,
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


def _answer(db: Db, query: svc.LineageQuery) -> LineageResponse:
    with db.read_session() as s:
        return _out(svc.lineage(s, query))


@router.get(
    "/artifacts/{artifact_id}/lineage",
    response_model=LineageResponse,
    response_model_exclude_none=True,
)
def artifact_lineage(artifact_id: str, db: Db, params: Params) -> LineageResponse:
    return _answer(db, params.of_root(svc.NodeKind.ARTIFACT, artifact_id))


@router.get(
    "/tasks/{task_id}/lineage", response_model=LineageResponse, response_model_exclude_none=True
)
def task_lineage(task_id: str, db: Db, params: Params) -> LineageResponse:
    return _answer(db, params.of_root(svc.NodeKind.TASK, task_id))
