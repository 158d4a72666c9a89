from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from kfpd.api.convert import experiment_out
from kfpd.api.deps import Db, Listing, opt_str
from kfpd.schemas.experiments import Experiment, ExperimentCreate, ListExperimentsResponse
from kfpd.services import experiments as svc

router = APIRouter(prefix="/apis/v2beta1/experiments", tags=["experiments"])


@router.post("", response_model=Experiment, response_model_exclude_none=True)
def create_experiment(body: ExperimentCreate, db: Db) -> Experiment:
    with db.write_session() as s:
        return experiment_out(svc.create_experiment(s, body))


@router.get("/{experiment_id}", response_model=Experiment, response_model_exclude_none=True)
def get_experiment(experiment_id: str, db: Db) -> Experiment:
    with db.read_session() as s:
        return experiment_out(svc.get_experiment(s, experiment_id))


@router.get("", response_model=ListExperimentsResponse, response_model_exclude_none=True)
def list_experiments(
    db: Db, listing: Listing, namespace: Annotated[str | None, Query()] = None
) -> ListExperimentsResponse:
    with db.read_session() as s:
        page = svc.list_experiments(s, opt_str(namespace) or "", listing)
        return ListExperimentsResponse(
            experiments=[experiment_out(e) for e in page.items],
            total_size=page.total_size,
            next_page_token=page.next_page_token or None,
        )


@router.post("/{experiment_id}:archive")
def archive_experiment(experiment_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.archive_experiment(s, experiment_id)
    return {}


@router.post("/{experiment_id}:unarchive")
def unarchive_experiment(experiment_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.unarchive_experiment(s, experiment_id)
    return {}


@router.delete("/{experiment_id}")
def delete_experiment(experiment_id: str, db: Db) -> dict[str, Any]:
    with db.write_session() as s:
        svc.delete_experiment(s, experiment_id)
    return {}
