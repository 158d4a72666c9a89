from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from kfpd.api.convert import page_dict, task_dict, wire_json
from kfpd.api.deps import Db, database_of, opt_str, parse_list_request
from kfpd.api.lean_route import LeanRoute
from kfpd.domain.errors import InvalidArgument
from kfpd.schemas.tasks import (
    FindCachedTaskRequest,
    FindCachedTaskResponse,
    ListTasksResponse,
    PipelineTask,
    UpdateTasksBulkRequest,
    UpdateTasksBulkResponse,
)
from kfpd.services import artifacts as artifacts_svc
from kfpd.services import taskdata
from kfpd.services import tasks as svc

router = APIRouter(prefix="/apis/v2beta1", tags=["tasks"])
Q = Annotated[str | None, Query()]

# Routes send wire dicts built from the rows (api/convert.py); response_model documents the shape.


async def create_task(request: Request, run_id: str, body: PipelineTask) -> Response:
    """CreateTask: idempotent by the task's logical key; links in ``inputs.artifacts`` too."""

    one_namespace: bool = request.app.state.auth.multi_user

    def create(s: Session) -> dict[str, Any]:
        return task_dict(svc.create_task(s, run_id, body, one_namespace=one_namespace))

    return wire_json(await database_of(request).run_write(create))


# Called for every task a run records: served by LeanRoute (api/lean_route.py).
router.add_api_route(
    "/runs/{run_id}/tasks",
    create_task,
    methods=["POST"],
    response_model=PipelineTask,
    response_model_exclude_none=True,
    route_class_override=LeanRoute,
)


@router.patch(
    "/runs/{run_id}/tasks/{task_id}", response_model=PipelineTask, response_model_exclude_none=True
)
async def update_task(run_id: str, task_id: str, body: PipelineTask, db: Db) -> Response:
    def update(s: Session) -> dict[str, Any]:
        task = svc.update_task(s, run_id, task_id, body)
        return task_dict(task, artifacts_svc.hydrate(s, [task]))

    return wire_json(await db.run_write(update))


@router.post(
    "/runs/{run_id}/tasks:batchUpdate",
    response_model=UpdateTasksBulkResponse,
    response_model_exclude_none=True,
)
def update_tasks_bulk(run_id: str, body: UpdateTasksBulkRequest, db: Db) -> Response:
    if body.run_id and body.run_id != run_id:
        raise InvalidArgument("run_id in the body does not match the path")
    with db.write_session() as s:
        tasks = svc.update_tasks_bulk(s, run_id, body.tasks)
        hydration = artifacts_svc.hydrate(s, tasks)
        return wire_json({"tasks": {t.id: task_dict(t, hydration) for t in tasks}})


@router.get(
    "/runs/{run_id}/tasks/{task_id}", response_model=PipelineTask, response_model_exclude_none=True
)
def get_task(run_id: str, task_id: str, db: Db) -> Response:
    with db.read_session() as s:
        task = svc.get_task(s, run_id, task_id)
        return wire_json(task_dict(task, artifacts_svc.hydrate(s, [task])))


@router.get(
    "/runs/{run_id}/tasks", response_model=ListTasksResponse, response_model_exclude_none=True
)
def list_tasks(
    run_id: str,
    db: Db,
    page_token: Q = None,
    page_size: Q = None,
    filter: Q = None,
    order_by: Q = None,
    sort_by: Q = None,
    parent_id: Q = None,
) -> Response:
    base = parse_list_request(page_token, page_size, order_by or sort_by, filter)
    with db.read_session() as s:
        page = svc.list_tasks(s, run_id, opt_str(parent_id), base)
        hydration = artifacts_svc.hydrate(s, page.items)
        return wire_json(page_dict("tasks", [task_dict(t, hydration) for t in page.items], page))


@router.post(
    "/tasks:findCached", response_model=FindCachedTaskResponse, response_model_exclude_none=True
)
def find_cached_task(body: FindCachedTaskRequest, db: Db) -> Response:
    with db.read_session() as s:
        task = taskdata.find_cached_task(s, body.namespace or "", body.cache_fingerprint)
        if task is None:
            return wire_json({})
        return wire_json({"task": task_dict(task, artifacts_svc.hydrate(s, [task]))})
