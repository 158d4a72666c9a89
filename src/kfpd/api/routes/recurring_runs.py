"""RecurringRunService (/apis/v2beta1/recurringruns) plus kfpd's PATCH update."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from kfpd.api.convert import model_json, recurring_run_out
from kfpd.api.deps import Db, Listing, opt_str
from kfpd.domain.timeutil import now_us
from kfpd.schemas.recurring_runs import (
    ListRecurringRunsResponse,
    RecurringRun,
    RecurringRunUpdate,
)
from kfpd.services import recurring_runs as svc

router = APIRouter(prefix="/apis/v2beta1/recurringruns", tags=["recurring runs"])
Q = Annotated[str | None, Query()]


def _wake_scheduler(request: Request) -> None:
    """A schedule changed: let the scheduler look now rather than at its next poll."""
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.wake()


@router.post("", response_model=RecurringRun, response_model_exclude_none=True)
def create_recurring_run(body: RecurringRun, db: Db, request: Request) -> Response:
    now = now_us()
    with db.write_session() as s:
        out = recurring_run_out(svc.create_recurring_run(s, body, now), now)
    _wake_scheduler(request)
    return model_json(out)


@router.get("/{recurring_run_id}", response_model=RecurringRun, response_model_exclude_none=True)
def get_recurring_run(recurring_run_id: str, db: Db) -> Response:
    with db.read_session() as s:
        return model_json(recurring_run_out(svc.get_recurring_run(s, recurring_run_id), now_us()))


@router.get("", response_model=ListRecurringRunsResponse, response_model_exclude_none=True)
def list_recurring_runs(
    db: Db, listing: Listing, namespace: Q = None, experiment_id: Q = None
) -> Response:
    now = now_us()
    with db.read_session() as s:
        page = svc.list_recurring_runs(
            s,
            namespace=opt_str(namespace) or "",
            experiment_id=opt_str(experiment_id),
            request=listing,
        )
        reply = ListRecurringRunsResponse(
            recurring_runs=[recurring_run_out(r, now, with_spec=False) for r in page.items],
            total_size=page.total_size,
            next_page_token=page.next_page_token or None,
        )
        return model_json(reply)


@router.patch("/{recurring_run_id}", response_model=RecurringRun, response_model_exclude_none=True)
def update_recurring_run(
    recurring_run_id: str, body: RecurringRunUpdate, db: Db, request: Request
) -> Response:
    now = now_us()
    with db.write_session() as s:
        out = recurring_run_out(svc.update_recurring_run(s, recurring_run_id, body, now), now)
    _wake_scheduler(request)
    return model_json(out)


@router.post("/{recurring_run_id}:enable")
def enable_recurring_run(recurring_run_id: str, db: Db, request: Request) -> dict[str, Any]:
    with db.write_session() as s:
        svc.enable_recurring_run(s, recurring_run_id, now_us())
    _wake_scheduler(request)
    return {}


@router.post("/{recurring_run_id}:disable")
def disable_recurring_run(recurring_run_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.disable_recurring_run(s, recurring_run_id, now_us())
    return {}


@router.delete("/{recurring_run_id}")
def delete_recurring_run(recurring_run_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.delete_recurring_run(s, recurring_run_id)
    return {}
