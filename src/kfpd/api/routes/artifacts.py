from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kfpd.api.convert import artifact_dict, link_dict, page_dict, wire_json
from kfpd.api.deps import Db, Listing, opt_str
from kfpd.domain.enums import IOType
from kfpd.domain.errors import InvalidArgument
from kfpd.schemas.artifacts import (
    Artifact,
    ArtifactTask,
    CreateArtifactRequest,
    CreateArtifactsBulkRequest,
    CreateArtifactsBulkResponse,
    CreateArtifactTaskRequest,
    CreateArtifactTasksBulkRequest,
    CreateArtifactTasksBulkResponse,
    ListArtifactResponse,
    ListArtifactTasksResponse,
)
from kfpd.services import artifacts as svc

router = APIRouter(prefix="/apis/v2beta1", tags=["artifacts"])
Q = Annotated[str | None, Query()]

# Routes send wire dicts built from the rows (api/convert.py); response_model documents the shape.


@router.post("/artifacts", response_model=Artifact, response_model_exclude_none=True)
def create_artifact(body: CreateArtifactRequest, db: Db) -> Response:
    with db.write_session() as s:
        return wire_json(artifact_dict(svc.create_artifacts(s, [body])[0]))


@router.post(
    "/artifacts:batchCreate",
    response_model=CreateArtifactsBulkResponse,
    response_model_exclude_none=True,
)
def create_artifacts_bulk(body: CreateArtifactsBulkRequest, db: Db) -> Response:
    with db.write_session() as s:
        rows = svc.create_artifacts(s, body.artifacts)
        return wire_json({"artifacts": [artifact_dict(r) for r in rows]})


@router.get("/artifacts/{artifact_id}", response_model=Artifact, response_model_exclude_none=True)
def get_artifact(artifact_id: str, db: Db) -> Response:
    with db.read_session() as s:
        return wire_json(artifact_dict(svc.get_artifact(s, artifact_id)))


@router.get("/artifacts", response_model=ListArtifactResponse, response_model_exclude_none=True)
def list_artifacts(db: Db, listing: Listing, namespace: Q = None) -> Response:
    with db.read_session() as s:
        page = svc.list_artifacts(s, opt_str(namespace), listing)
        return wire_json(page_dict("artifacts", [artifact_dict(a) for a in page.items], page))


@router.post("/artifact_tasks", response_model=ArtifactTask, response_model_exclude_none=True)
def create_artifact_task(body: CreateArtifactTaskRequest, db: Db, request: Request) -> Response:
    if body.artifact_task is None:
        raise InvalidArgument("artifact_task is required")
    one_namespace: bool = request.app.state.auth.multi_user
    with db.write_session() as s:
        links = svc.create_artifact_tasks(s, [body.artifact_task], one_namespace=one_namespace)
        return wire_json(link_dict(links[0]))


@router.post(
    "/artifact_tasks:batchCreate",
    response_model=CreateArtifactTasksBulkResponse,
    response_model_exclude_none=True,
)
def create_artifact_tasks_bulk(
    body: CreateArtifactTasksBulkRequest, db: Db, request: Request
) -> Response:
    one_namespace: bool = request.app.state.auth.multi_user
    with db.write_session() as s:
        links = svc.create_artifact_tasks(s, body.artifact_tasks, one_namespace=one_namespace)
        return wire_json({"artifact_tasks": [link_dict(x) for x in links]})


@router.get(
    "/artifact_tasks", response_model=ListArtifactTasksResponse, response_model_exclude_none=True
)
def list_artifact_tasks(
    db: Db,
    listing: Listing,
    task_ids: Annotated[list[str] | None, Query()] = None,
    run_ids: Annotated[list[str] | None, Query()] = None,
    artifact_ids: Annotated[list[str] | None, Query()] = None,
    type: Q = None,
) -> Response:
    io_type = None
    if opt_str(type):
        try:
            io_type = IOType(IOType.parse(type))
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
    with db.read_session() as s:
        page = svc.list_artifact_tasks(
            s,
            task_ids=task_ids or [],
            run_ids=run_ids or [],
            artifact_ids=artifact_ids or [],
            io_type=io_type,
            request=listing,
        )
        return wire_json(page_dict("artifact_tasks", [link_dict(x) for x in page.items], page))
