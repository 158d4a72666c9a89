from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from kfpd.api.convert import model_json, run_out
from kfpd.api.deps import Db, Events, Listing, opt_bool, opt_str, parse_view
from kfpd.config import Settings
from kfpd.domain.enums import StorageState, ViewMode
from kfpd.domain.errors import InvalidArgument
from kfpd.schemas.runs import ListRunsResponse, Run, RunCreate
from kfpd.services import artifacts as artifacts_svc
from kfpd.services import runs as svc
from kfpd.services import storage as storage_svc
from kfpd.services.logstore import LogStore
from kfpd.services.storage import Storage

router = APIRouter(prefix="/apis/v2beta1/runs", tags=["runs"])
Q = Annotated[str | None, Query()]


@router.post("", response_model=Run, response_model_exclude_none=True)
def create_run(body: RunCreate, db: Db, events: Events) -> Run:
    inline = svc.inline_spec(body)  # parsed and validated before the session opens
    with db.write_session() as s:
        run = svc.create_run(s, body, inline)
        created = run_out(svc.RunView(run))
    events.run_created(created.run_id or "")
    return created


@router.get("/{run_id}", response_model=Run, response_model_exclude_none=True)
def get_run(run_id: str, db: Db, view: Q = None) -> Response:
    mode = parse_view(view)
    with db.read_session() as s:
        found = svc.get_run(s, run_id, mode)
        # run_details.task_details is on every GetRun, as upstream fills it (scripts read it).
        tasks = found.tasks if found.full else svc.run_tasks(s, run_id)
        hydration = artifacts_svc.hydrate(s, tasks)
        return model_json(run_out(found, hydration, details_of=tasks))


@router.get("", response_model=ListRunsResponse, response_model_exclude_none=True)
def list_runs(
    db: Db,
    listing: Listing,
    namespace: Q = None,
    experiment_id: Q = None,
    view: Q = None,
    skip_count: Q = None,
) -> Response:
    mode = parse_view(view)
    # The KFP UI sends skip_count=true: total_size (a COUNT over every match) is then 0.
    count = not opt_bool(skip_count, "skip_count")
    with db.read_session() as s:
        page = svc.list_runs(
            s,
            namespace=opt_str(namespace) or "",
            experiment_id=opt_str(experiment_id),
            request=listing,
            view=mode,
            count=count,
        )
        hydration = None
        if mode == ViewMode.FULL:
            hydration = artifacts_svc.hydrate(s, [t for v in page.items for t in v.tasks])
        reply = ListRunsResponse(
            runs=[run_out(v, hydration, with_spec=mode == ViewMode.FULL) for v in page.items],
            total_size=page.total_size,
            next_page_token=page.next_page_token or None,
        )
        return model_json(reply)


@router.post("/{run_id}:archive")
def archive_run(run_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.set_storage_state(s, run_id, StorageState.ARCHIVED)
    return {}


@router.post("/{run_id}:unarchive")
def unarchive_run(run_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.set_storage_state(s, run_id, StorageState.AVAILABLE)
    return {}


@router.delete("/{run_id}")
def delete_run(
    run_id: str,
    db: Db,
    request: Request,
    delete_artifacts: Annotated[str | None, Query()] = None,
    dry_run: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Delete a run. kfpd extension: ``delete_artifacts=true`` also deletes the objects of the
    artifacts it produced under its own output prefix; with ``dry_run=true`` nothing is
    deleted and the answer lists what would be (``artifact_objects``) and what is kept."""
    settings: Settings = request.app.state.settings
    storage: Storage = request.app.state.storage
    plan: storage_svc.RunObjects | None = None
    if opt_bool(delete_artifacts, "delete_artifacts"):
        with db.read_session() as s:
            plan = storage_svc.run_objects(storage, s, run_id)
        if opt_bool(dry_run, "dry_run"):
            return {"dry_run": True, "artifact_objects": plan.delete, "kept": plan.kept}
    elif opt_bool(dry_run, "dry_run"):
        raise InvalidArgument("dry_run applies to delete_artifacts=true")
    with db.write_session() as s:
        svc.delete_run(s, run_id)
    # After the commit: a failed delete keeps its logs and objects.
    LogStore(settings.log_root).delete_run(run_id)
    if plan is None:
        return {}
    storage_svc.delete_objects(storage, plan, settings.artifact_root)
    return {"artifact_objects": plan.delete, "kept": plan.kept, "errors": plan.errors}


@router.post("/{run_id}:terminate")
def terminate_run(run_id: str, db: Db, events: Events) -> dict[str, Any]:
    with db.write_session() as s:
        svc.terminate_run(s, run_id)
    events.run_terminated(run_id)
    return {}


@router.post("/{run_id}:retry")
def retry_run(run_id: str, db: Db, events: Events) -> dict[str, Any]:
    with db.write_session() as s:
        svc.retry_run(s, run_id)
    events.run_retried(run_id)
    return {}
