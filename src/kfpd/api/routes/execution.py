"""Launcher endpoints: report a task's outcome, stream and read its log (kfpd extensions)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from kfpd.api.convert import task_dict, wire_json
from kfpd.api.deps import Db, database_of, opt_int, run_events_of
from kfpd.api.lean_route import LeanRoute
from kfpd.config import Settings
from kfpd.schemas.launch import (
    AppendLogRequest,
    FinishTaskRequest,
    StorageSessions,
    StorageSessionsRequest,
    TaskLog,
)
from kfpd.schemas.tasks import PipelineTask
from kfpd.services import execution as svc
from kfpd.services.logstore import LogStore
from kfpd.services.storage import Storage

router = APIRouter(prefix="/apis/v2beta1/runs/{run_id}/tasks/{task_id}", tags=["execution"])
Q = Annotated[str | None, Query()]


def _logs(request: Request) -> LogStore:
    settings: Settings = request.app.state.settings
    return LogStore(
        settings.log_root,
        max_bytes=settings.task_log_max_bytes,
        artifact_root=settings.artifact_root,
    )


async def finish_task(
    request: Request, run_id: str, task_id: str, body: FinishTaskRequest
) -> Response:
    """Record a task's outputs and final state in one transaction (the launcher's report)."""
    logs = _logs(request)
    storage: Storage | None = getattr(request.app.state, "storage", None)
    info_of = storage.recorded_session_info if storage is not None else None

    def finish(s: Session) -> dict[str, Any]:
        return task_dict(*svc.finish_task(s, logs, run_id, task_id, body, info_of))

    reply = wire_json(await database_of(request).run_write(finish))
    # The engine moves on now, without waiting for the launcher process to exit.
    run_events_of(request).task_finished(run_id, task_id)
    return reply


# Every container task calls it once: served by LeanRoute (api/lean_route.py).
router.add_api_route(
    ":finish",
    finish_task,
    methods=["POST"],
    response_model=PipelineTask,
    response_model_exclude_none=True,
    route_class_override=LeanRoute,
)


@router.post("/logs")
def append_log(
    run_id: str, task_id: str, body: AppendLogRequest, db: Db, request: Request
) -> dict[str, object]:
    with db.read_session() as s:
        svc.append_log(s, _logs(request), run_id, task_id, body.text)
    return {}


@router.get("/logs", response_model=TaskLog)
def read_log(
    run_id: str,
    task_id: str,
    db: Db,
    request: Request,
    offset: Q = None,
    limit_bytes: Q = None,
) -> TaskLog:
    with db.read_session() as s:
        return svc.read_log(
            s,
            _logs(request),
            run_id,
            task_id,
            opt_int(offset, "offset") or 0,
            opt_int(limit_bytes, "limit_bytes"),
        )


@router.post(
    "/storage:sessions",
    response_model=StorageSessions,
    responses={200: {"description": "Sessions; the reply holds credentials: never log it."}},
)
def storage_sessions(
    run_id: str, task_id: str, body: StorageSessionsRequest, db: Db, request: Request
) -> Response:
    """Object-store sessions (endpoint, credentials) for a running task's remote artifact URIs.

    Only the task's launcher calls it, with the run's token; the reply is not cached."""
    storage: Storage = request.app.state.storage
    with db.read_session() as s:
        granted = storage.grant(s, run_id, task_id, body.uris)
    return Response(
        granted.model_dump_json(),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
