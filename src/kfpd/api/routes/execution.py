"""Launcher endpoints: report a task's outcome, stream and read its log (kfpd extensions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from kfpd.api.convert import task_dict, wire_json
from kfpd.api.deps import Db, Events, RunToken, opt_int
from kfpd.config import Settings
from kfpd.schemas.launch import AppendLogRequest, FinishTaskRequest, TaskLog
from kfpd.schemas.tasks import PipelineTask
from kfpd.services import artifacts as artifacts_svc
from kfpd.services import execution as svc
from kfpd.services.logstore import LogStore

router = APIRouter(prefix="/apis/v2beta1/runs/{run_id}/tasks/{task_id}", tags=["execution"])
Q = Annotated[str | None, Query()]


def _logs(request: Request) -> LogStore:
    settings: Settings = request.app.state.settings
    return LogStore(settings.log_root)


@router.post(
    ":finish",
    response_model=PipelineTask,
    response_model_exclude_none=True,
    dependencies=[RunToken],
)
def finish_task(
    run_id: str, task_id: str, body: FinishTaskRequest, db: Db, request: Request, events: Events
) -> Response:
    with db.write_session() as s:
        task = svc.finish_task(s, _logs(request), run_id, task_id, body)
        reply = wire_json(task_dict(task, artifacts_svc.hydrate(s, [task])))
    # The engine moves on now, without waiting for the launcher process to exit.
    events.task_finished(run_id, task_id)
    return reply


@router.post("/logs", dependencies=[RunToken])
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
