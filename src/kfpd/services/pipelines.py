"""Pipelines and their versions (uploaded IR)."""

from __future__ import annotations

import fsspec
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kfpd.db.listing import Field, ListRequest, Page, list_page
from kfpd.db.models import Pipeline, PipelineVersion
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from kfpd.domain.timeutil import now_us
from kfpd.schemas.base import refuse_control
from kfpd.schemas.pipelines import PipelineCreate, PipelineVersionCreate
from kfpd.services.common import flush_unique, get_or_404, new_id
from kfpd.spec.loader import LoadedSpec, load_package, split_spec
from kfpd.spec.validate import validate_spec

PIPELINE_FIELDS: dict[str, Field] = {
    "pipeline_id": Field(Pipeline.id),
    "id": Field(Pipeline.id),
    "name": Field(Pipeline.name),
    "display_name": Field(Pipeline.display_name),
    "description": Field(Pipeline.description, sortable=False),
    "created_at": Field(Pipeline.created_at, "timestamp"),
    "namespace": Field(Pipeline.namespace, sortable=False),
}

VERSION_FIELDS: dict[str, Field] = {
    "pipeline_version_id": Field(PipelineVersion.id),
    "id": Field(PipelineVersion.id),
    "name": Field(PipelineVersion.name),
    "display_name": Field(PipelineVersion.display_name),
    "description": Field(PipelineVersion.description, sortable=False),
    "created_at": Field(PipelineVersion.created_at, "timestamp"),
}

MAX_NAME = 255


def _name(*candidates: str | None) -> str:
    for c in candidates:
        if c and c.strip():
            try:
                refuse_control(c)  # before strip(), which would drop some (NEL, ...)
            except ValueError as exc:
                raise InvalidArgument(f"name {c[:40]!r} {exc}") from None
            name = c.strip()
            if len(name) > MAX_NAME:
                raise InvalidArgument(f"name {name[:40]!r}... is longer than {MAX_NAME} characters")
            return name
    raise InvalidArgument("a name is required (name, display_name or the file name)")


def _strip_ext(filename: str) -> str:
    for ext in (".tar.gz", ".tgz", ".zip", ".yaml", ".yml", ".json"):
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename


def create_pipeline(session: Session, body: PipelineCreate) -> Pipeline:
    name = _name(body.name, body.display_name)
    namespace = body.namespace or ""
    row = Pipeline(
        id=new_id(),
        namespace=namespace,
        name=name,
        display_name=body.display_name or name,
        description=body.description or "",
        created_at=now_us(),
        tags=body.tags,
    )
    session.add(row)
    flush_unique(session, lambda: f"pipeline {name!r} already exists in namespace {namespace!r}")
    return row


def _add_version(
    session: Session,
    pipeline: Pipeline,
    loaded: LoadedSpec,
    *,
    name: str,
    display_name: str | None,
    description: str | None,
    code_source_url: str = "",
    package_url: str = "",
) -> PipelineVersion:
    row = PipelineVersion(
        id=new_id(),
        pipeline_id=pipeline.id,
        name=name,
        display_name=display_name or name,
        description=description or loaded.description,
        created_at=now_us(),
        pipeline_spec=loaded.pipeline_spec,
        platform_spec=loaded.platform_spec,
        code_source_url=code_source_url,
        package_url=package_url,
    )
    session.add(row)
    flush_unique(
        session, lambda: f"pipeline version {name!r} already exists in pipeline {pipeline.id}"
    )
    return row


def read_package(data: bytes, filename: str) -> LoadedSpec:
    """Parse and validate an uploaded package: before any session is opened (parsing is the
    expensive, bounded part; the session then only writes)."""
    loaded = load_package(data, filename)
    validate_spec(loaded)
    return loaded


def upload_pipeline(
    session: Session,
    loaded: LoadedSpec,
    filename: str,
    *,
    name: str | None,
    display_name: str | None,
    description: str | None,
    namespace: str | None,
) -> tuple[Pipeline, PipelineVersion]:
    """Upload: create the pipeline and its first version from a package (``read_package``)."""
    pipeline_name = _name(name, display_name, _strip_ext(filename), loaded.pipeline_name)
    pipeline = create_pipeline(
        session,
        PipelineCreate(
            name=pipeline_name,
            display_name=display_name or pipeline_name,
            description=description if description is not None else loaded.description,
            namespace=namespace or "",
        ),
    )
    version = _add_version(
        session,
        pipeline,
        loaded,
        name=pipeline_name,
        display_name=display_name,
        description=description,
    )
    return pipeline, version


def upload_version(
    session: Session,
    loaded: LoadedSpec,
    filename: str,
    *,
    pipeline_id: str | None,
    name: str | None,
    display_name: str | None,
    description: str | None,
) -> PipelineVersion:
    if not pipeline_id:
        raise InvalidArgument("pipelineid is required to upload a pipeline version")
    pipeline = get_pipeline(session, pipeline_id)
    return _add_version(
        session,
        pipeline,
        loaded,
        name=_name(name, display_name, _strip_ext(filename)),
        display_name=display_name,
        description=description,
    )


def version_spec(body: PipelineVersionCreate) -> tuple[LoadedSpec, str]:
    """A version body's spec (inline or read from package_url) and that URL, validated; call
    it before opening a session."""
    loaded, url = _spec_from_version_body(body)
    validate_spec(loaded)
    return loaded, url


def _spec_from_version_body(body: PipelineVersionCreate) -> tuple[LoadedSpec, str]:
    if body.pipeline_spec:
        return split_spec(body.pipeline_spec), ""
    url = body.package_url.pipeline_url if body.package_url else None
    if not url:
        raise InvalidArgument("a pipeline version needs pipeline_spec or package_url.pipeline_url")
    try:
        with fsspec.open(url, "rb") as fh:
            data = fh.read()
    except (OSError, ValueError, ImportError) as exc:
        raise InvalidArgument(f"cannot read package_url {url!r}: {exc}") from exc
    return load_package(data, url.rsplit("/", 1)[-1]), url


def create_version(
    session: Session,
    pipeline_id: str,
    body: PipelineVersionCreate,
    spec: tuple[LoadedSpec, str],
) -> PipelineVersion:
    """``spec``: ``version_spec(body)``."""
    if body.pipeline_id and body.pipeline_id != pipeline_id:
        raise InvalidArgument("pipeline_version.pipeline_id does not match the path")
    pipeline = get_pipeline(session, pipeline_id)
    loaded, url = spec
    return _add_version(
        session,
        pipeline,
        loaded,
        name=_name(body.name, body.display_name),
        display_name=body.display_name,
        description=body.description,
        code_source_url=body.code_source_url or "",
        package_url=url,
    )


def create_pipeline_and_version(
    session: Session,
    pipeline: PipelineCreate,
    version: PipelineVersionCreate,
    spec: tuple[LoadedSpec, str],
) -> tuple[Pipeline, PipelineVersion]:
    """``spec``: ``version_spec(version)``."""
    loaded, url = spec
    row = create_pipeline(session, pipeline)
    ver = _add_version(
        session,
        row,
        loaded,
        name=_name(version.name, version.display_name, row.name),
        display_name=version.display_name,
        description=version.description,
        code_source_url=version.code_source_url or "",
        package_url=url,
    )
    return row, ver


def get_pipeline(session: Session, pipeline_id: str) -> Pipeline:
    return get_or_404(session, Pipeline, pipeline_id, "pipeline")


def get_pipeline_by_name(session: Session, namespace: str, name: str) -> Pipeline:
    row = session.scalars(
        select(Pipeline).where(Pipeline.namespace == namespace, Pipeline.name == name)
    ).first()
    if row is None:
        raise NotFound(f"pipeline {name!r} not found in namespace {namespace!r}")
    return row


def list_pipelines(
    session: Session, namespace: str, request: ListRequest, *, exact: bool = False
) -> Page[Pipeline]:
    """``namespace`` "" lists every namespace, unless ``exact`` (multi-user: "" is the shared
    namespace, the only one a caller without a namespace may see)."""
    stmt = select(Pipeline)
    if namespace or exact:
        stmt = stmt.where(Pipeline.namespace == namespace)
    return list_page(
        session,
        stmt,
        fields=PIPELINE_FIELDS,
        id_field="pipeline_id",
        default_sort="created_at",
        request=request,
        context=[namespace],
    )


def delete_pipeline(session: Session, pipeline_id: str, *, cascade: bool) -> None:
    row = get_pipeline(session, pipeline_id)
    count = session.scalar(
        select(func.count())
        .select_from(PipelineVersion)
        .where(PipelineVersion.pipeline_id == row.id)
    )
    if count and not cascade:
        raise FailedPrecondition(
            f"pipeline {pipeline_id} has {count} version(s); delete them first or pass cascade=true"
        )
    session.execute(delete(PipelineVersion).where(PipelineVersion.pipeline_id == row.id))
    session.delete(row)


def get_version(session: Session, pipeline_id: str, version_id: str) -> PipelineVersion:
    row = get_or_404(session, PipelineVersion, version_id, "pipeline version")
    if row.pipeline_id != pipeline_id:
        raise NotFound(f"pipeline version {version_id!r} not found in pipeline {pipeline_id}")
    return row


def latest_version(session: Session, pipeline_id: str) -> PipelineVersion:
    row = session.scalars(
        select(PipelineVersion)
        .where(PipelineVersion.pipeline_id == pipeline_id)
        .order_by(PipelineVersion.created_at.desc(), PipelineVersion.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"pipeline {pipeline_id} has no versions")
    return row


def list_versions(
    session: Session, pipeline_id: str, request: ListRequest
) -> Page[PipelineVersion]:
    get_pipeline(session, pipeline_id)
    return list_page(
        session,
        select(PipelineVersion).where(PipelineVersion.pipeline_id == pipeline_id),
        fields=VERSION_FIELDS,
        id_field="pipeline_version_id",
        default_sort="created_at",
        request=request,
        context=[pipeline_id],
    )


def delete_version(session: Session, pipeline_id: str, version_id: str) -> None:
    session.delete(get_version(session, pipeline_id, version_id))
