"""The web UI: static pages at ``/`` and ``/ui/static``, plus the few read endpoints under
``/ui/api`` that the public v2beta1 API lacks (a run's graph in one light call, artifact bytes,
artifacts by run, metrics of a run). Everything else the UI reads through /apis/v2beta1."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from markdown_it import MarkdownIt

from kfpd.api.convert import artifact_out, experiment_out, run_out
from kfpd.api.deps import Db, Listing, opt_bool, opt_str
from kfpd.config import Settings
from kfpd.domain.errors import InvalidArgument, KfpdError
from kfpd.schemas.base import refuse_control
from kfpd.services import artifact_files as files
from kfpd.services import artifacts as artifacts_svc
from kfpd.services import experiments as experiments_svc
from kfpd.services import runs as runs_svc
from kfpd.services import ui as svc
from kfpd.services.runs import RunView
from kfpd.services.storage import Storage

STATIC_DIR = Path(__file__).resolve().parents[2] / "ui" / "static"


def _asset_version() -> str:
    """A digest of every asset: the versioned asset path changes whenever one of them does."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(STATIC_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


ASSET_VERSION = _asset_version()
# Assets under /ui/v/<version>/ never change, so browsers keep them: a repeat visit fetches
# only the page and the API. Modules import each other by relative path, so they stay inside
# the versioned prefix. /ui/static/ serves the same files, revalidated on every load.
ASSET_PREFIX = f"/ui/v/{ASSET_VERSION}"
router = APIRouter(prefix="/ui/api", tags=["ui"], include_in_schema=False)
Q = Annotated[str | None, Query()]

# The UI page itself: only this origin, no inline scripts, frames only from this origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; frame-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# Artifact bytes and rendered artifact pages: a sandbox with an opaque origin and no scripts,
# whether they are framed by the UI or opened directly.
ARTIFACT_CSP = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "media-src data:; form-action 'none'; frame-ancestors 'self'"
)
ARTIFACT_HEADERS = {
    "Content-Security-Policy": ARTIFACT_CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _artifact_root(request: Request) -> Path:
    return _settings(request).artifact_root


def _storage(request: Request) -> Storage | None:
    return getattr(request.app.state, "storage", None)


# ---------------------------------------------------------------- run graph, metrics, compare


@router.get("/runs/{run_id}/graph")
def run_graph(run_id: str, request: Request, db: Db, spec: Q = None) -> Response:
    """The run with every task's state (no inputs/outputs), and its spec on request.

    Polled by the run page while the run executes; an unchanged graph answers 304.
    """
    with db.read_session() as s:
        run = svc.get_run_row(s, run_id)
        tasks = svc.run_tasks_compact(s, run_id)
        body: dict[str, Any] = {
            "run": run_out(RunView(run, task_count=len(tasks)), with_spec=False).dump(),
            "tasks": tasks,
        }
        if opt_bool(spec, "spec"):
            body["spec"] = run.pipeline_spec
    data = json.dumps(body, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha1(data, usedforsecurity=False).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type="application/json", headers=headers)


def _metric_out(metric: svc.RunMetric) -> dict[str, Any]:
    out: dict[str, Any] = {
        "artifact": artifact_out(metric.artifact).dump(),
        "task_id": metric.task_id,
        "task_name": metric.task_name,
        "key": metric.key,
    }
    if metric.iteration is not None:
        out["iteration"] = metric.iteration
    return out


@router.get("/runs/{run_id}/metrics")
def run_metrics(run_id: str, db: Db) -> dict[str, Any]:
    with db.read_session() as s:
        return {"metrics": [_metric_out(m) for m in svc.run_metrics(s, run_id)]}


@router.get("/compare")
def compare_runs(db: Db, run_ids: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
    """Runs side by side: each run (parameters, state, times) with its metrics."""
    ids = svc.check_compare_ids(run_ids or [])
    with db.read_session() as s:
        runs = []
        for run_id in ids:
            view = runs_svc.get_run(s, run_id)  # with its task count
            runs.append(
                {
                    "run": run_out(view, with_spec=False).dump(),
                    "metrics": [_metric_out(m) for m in svc.run_metrics(s, run_id)],
                }
            )
    return {"runs": runs}


# ---------------------------------------------------------------- the run form's default


@router.post("/experiments:default")
def default_experiment(db: Db, namespace: Q = None) -> dict[str, Any]:
    """A namespace's "Default" experiment, created if missing (race-free): where the run form
    puts a run by default. The API's own default (a run naming no experiment) is the one of
    the shared namespace, where in multi-user mode only admins may create runs."""
    name = opt_str(namespace) or ""
    try:
        refuse_control(name)
    except ValueError as exc:
        raise InvalidArgument(f"namespace {exc}") from None
    with db.write_session() as s:
        return experiment_out(experiments_svc.default_experiment(s, name)).dump()


# ---------------------------------------------------------------- artifacts


@router.get("/artifacts")
def list_artifacts(
    db: Db, listing: Listing, namespace: Q = None, run_id: Q = None
) -> dict[str, Any]:
    """ListArtifacts with a run filter and each artifact's producer (task and run)."""
    with db.read_session() as s:
        page = artifacts_svc.list_artifacts(
            s, opt_str(namespace) or "", listing, produced_in_run=opt_str(run_id)
        )
        found = svc.producers(s, [a.id for a in page.items])
        items = []
        for row in page.items:
            item = artifact_out(row).dump()
            producer = found.get(row.id)
            if producer is not None:
                item["producer"] = producer.__dict__
            items.append(item)
    out: dict[str, Any] = {"artifacts": items, "total_size": page.total_size}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


@router.get("/artifacts/{artifact_id}/preview")
def artifact_preview(artifact_id: str, request: Request, db: Db, path: Q = None) -> dict[str, Any]:
    """How to show an artifact's bytes, with the head of text files (capped)."""
    with db.read_session() as s:
        artifact = artifacts_svc.get_artifact(s, artifact_id)
    info = files.preview(artifact, _artifact_root(request), opt_str(path) or "", _storage(request))
    return {
        "kind": info.kind,
        "size": info.size,
        "text": info.text,
        "truncated": info.truncated,
        "content_type": info.content_type,
        "path": info.path,
        "entries": [e.__dict__ for e in info.entries],
        "limit_bytes": files.PREVIEW_TEXT_BYTES,
        # Which object-store settings wrote it (upstream's store_session_info; no secrets).
        "store_session_info": artifact.store_session_info,
    }


@router.get("/artifacts/{artifact_id}/content")
def artifact_content(
    artifact_id: str, request: Request, db: Db, path: Q = None, download: Q = None
) -> Response:
    """The artifact's bytes (one file), sandboxed by CSP; ``download=true`` saves it.

    Local files are sent as files; object-store files are streamed through the server."""
    with db.read_session() as s:
        artifact = artifacts_svc.get_artifact(s, artifact_id)
    target = files.file_for_download(
        artifact, _artifact_root(request), opt_str(path) or "", _storage(request)
    )
    attach = opt_bool(download, "download")
    media_type = files.content_type(target)
    if target.local_path is not None:
        return FileResponse(
            target.local_path,
            media_type=media_type,
            filename=target.name if attach else None,
            content_disposition_type="attachment" if attach else "inline",
            headers=ARTIFACT_HEADERS,
        )
    disposition = "attachment" if attach else "inline"
    if attach:
        disposition += f"; filename*=utf-8''{quote(target.name)}"
    headers = {
        **ARTIFACT_HEADERS,
        "Content-Disposition": disposition,
        "Content-Length": str(target.size()),
    }
    return StreamingResponse(target.stream(), media_type=media_type, headers=headers)


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_RENDER_STYLE = (
    "body{font:14px/1.5 system-ui,sans-serif;margin:12px;color:#1f2328}"
    "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:3px 8px}"
    "pre,code{background:#f6f8fa}pre{padding:8px;overflow:auto}"
)


def _page(body: str, title: str, status: int = 200) -> HTMLResponse:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_RENDER_STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=ARTIFACT_HEADERS)


@router.get("/artifacts/{artifact_id}/render", response_class=HTMLResponse)
def artifact_render(artifact_id: str, request: Request, db: Db, path: Q = None) -> HTMLResponse:
    """HTML and markdown artifacts as a page for a sandboxed frame: no scripts ever run.

    Errors come back as a short HTML message, since a frame cannot show JSON nicely.
    """
    try:
        with db.read_session() as s:
            artifact = artifacts_svc.get_artifact(s, artifact_id)
        text, info = files.read_for_render(
            artifact, _artifact_root(request), opt_str(path) or "", _storage(request)
        )
    except KfpdError as exc:
        message = f"<p class='error'>Cannot show this artifact: {html.escape(exc.message)}</p>"
        return _page(message, "artifact", exc.http_status)
    if info.kind == "html":
        return HTMLResponse(text, headers=ARTIFACT_HEADERS)
    if info.kind == "markdown":
        return _page(_MARKDOWN.render(text), artifact.name)
    return _page(f"<pre>{html.escape(text)}</pre>", artifact.name)


# ---------------------------------------------------------------- pages


_INDEX = (STATIC_DIR / "index.html").read_text().replace("/ui/static/", f"{ASSET_PREFIX}/")


def index_page() -> HTMLResponse:
    return HTMLResponse(
        _INDEX, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
    )


class _Assets(StaticFiles):
    """Static assets with a fixed Cache-Control header."""

    def __init__(self, cache_control: str) -> None:
        super().__init__(directory=STATIC_DIR)
        self.cache_control = cache_control

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = self.cache_control
        return response


def install(app: FastAPI) -> None:
    """Serve the UI from this server: the page at ``/``, assets, and ``/ui/api``."""
    app.include_router(router)
    app.add_api_route("/", index_page, methods=["GET"], include_in_schema=False)
    app.mount(ASSET_PREFIX, _Assets("public, max-age=31536000, immutable"), name="ui-assets")
    app.mount("/ui/static", _Assets("no-cache"), name="ui-static")
