from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile

from kfpd.api.convert import pipeline_out, version_out
from kfpd.api.deps import Db, Listing, opt_bool, opt_str
from kfpd.schemas.pipelines import (
    CreatePipelineAndVersionRequest,
    ListPipelinesResponse,
    ListPipelineVersionsResponse,
    Pipeline,
    PipelineCreate,
    PipelineVersion,
    PipelineVersionCreate,
)
from kfpd.services import pipelines as svc

router = APIRouter(prefix="/apis/v2beta1/pipelines", tags=["pipelines"])
# The only routes that take multipart/form-data bodies (api/guard.py refuses it elsewhere).
MULTIPART_PATHS = (f"{router.prefix}/upload", f"{router.prefix}/upload_version")
Q = Annotated[str | None, Query()]


@router.post("/upload", response_model=Pipeline, response_model_exclude_none=True)
def upload_pipeline(
    db: Db,
    uploadfile: Annotated[UploadFile, File()],
    name: Q = None,
    display_name: Q = None,
    description: Q = None,
    namespace: Q = None,
) -> Pipeline:
    loaded = svc.read_package(uploadfile.file.read(), uploadfile.filename or "")
    with db.write_session() as s:
        pipeline, _version = svc.upload_pipeline(
            s,
            loaded,
            uploadfile.filename or "",
            name=opt_str(name),
            display_name=opt_str(display_name),
            description=opt_str(description),
            namespace=opt_str(namespace),
        )
        return pipeline_out(pipeline)


@router.post("/upload_version", response_model=PipelineVersion, response_model_exclude_none=True)
def upload_pipeline_version(
    db: Db,
    uploadfile: Annotated[UploadFile, File()],
    name: Q = None,
    display_name: Q = None,
    description: Q = None,
    pipelineid: Q = None,
) -> PipelineVersion:
    loaded = svc.read_package(uploadfile.file.read(), uploadfile.filename or "")
    with db.write_session() as s:
        version = svc.upload_version(
            s,
            loaded,
            uploadfile.filename or "",
            pipeline_id=opt_str(pipelineid),
            name=opt_str(name),
            display_name=opt_str(display_name),
            description=opt_str(description),
        )
        return version_out(version)


@router.post("", response_model=Pipeline, response_model_exclude_none=True)
def create_pipeline(body: PipelineCreate, db: Db) -> Pipeline:
    with db.write_session() as s:
        return pipeline_out(svc.create_pipeline(s, body))


@router.post("/create", response_model=dict[str, Any], response_model_exclude_none=True)
def create_pipeline_and_version(body: CreatePipelineAndVersionRequest, db: Db) -> dict[str, Any]:
    spec = svc.version_spec(body.pipeline_version)
    with db.write_session() as s:
        pipeline, _version = svc.create_pipeline_and_version(
            s, body.pipeline, body.pipeline_version, spec
        )
        return pipeline_out(pipeline).dump()


@router.get("/names/{name}", response_model=Pipeline, response_model_exclude_none=True)
def get_pipeline_by_name(name: str, db: Db, namespace: Q = None) -> Pipeline:
    with db.read_session() as s:
        return pipeline_out(svc.get_pipeline_by_name(s, opt_str(namespace) or "", name))


@router.get("/{pipeline_id}", response_model=Pipeline, response_model_exclude_none=True)
def get_pipeline(pipeline_id: str, db: Db) -> Pipeline:
    with db.read_session() as s:
        return pipeline_out(svc.get_pipeline(s, pipeline_id))


@router.get("", response_model=ListPipelinesResponse, response_model_exclude_none=True)
def list_pipelines(
    db: Db, listing: Listing, request: Request, namespace: Q = None
) -> ListPipelinesResponse:
    exact: bool = request.app.state.auth.multi_user
    with db.read_session() as s:
        page = svc.list_pipelines(s, opt_str(namespace) or "", listing, exact=exact)
        return ListPipelinesResponse(
            pipelines=[pipeline_out(p) for p in page.items],
            total_size=page.total_size,
            next_page_token=page.next_page_token or None,
        )


@router.delete("/{pipeline_id}")
def delete_pipeline(pipeline_id: str, db: Db, cascade: Q = None) -> dict[str, Any]:
    with db.write_session() as s:
        svc.delete_pipeline(s, pipeline_id, cascade=opt_bool(cascade, "cascade"))
    return {}


@router.post(
    "/{pipeline_id}/versions", response_model=PipelineVersion, response_model_exclude_none=True
)
def create_pipeline_version(
    pipeline_id: str, body: PipelineVersionCreate, db: Db
) -> PipelineVersion:
    spec = svc.version_spec(body)
    with db.write_session() as s:
        return version_out(svc.create_version(s, pipeline_id, body, spec))


@router.get(
    "/{pipeline_id}/versions",
    response_model=ListPipelineVersionsResponse,
    response_model_exclude_none=True,
)
def list_pipeline_versions(
    pipeline_id: str, db: Db, listing: Listing
) -> ListPipelineVersionsResponse:
    with db.read_session() as s:
        page = svc.list_versions(s, pipeline_id, listing)
        return ListPipelineVersionsResponse(
            pipeline_versions=[version_out(v) for v in page.items],
            total_size=page.total_size,
            next_page_token=page.next_page_token or None,
        )


@router.get(
    "/{pipeline_id}/versions/{version_id}",
    response_model=PipelineVersion,
    response_model_exclude_none=True,
)
def get_pipeline_version(pipeline_id: str, version_id: str, db: Db) -> PipelineVersion:
    with db.read_session() as s:
        return version_out(svc.get_version(s, pipeline_id, version_id))


@router.delete("/{pipeline_id}/versions/{version_id}")
def delete_pipeline_version(pipeline_id: str, version_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.delete_version(s, pipeline_id, version_id)
    return {}
