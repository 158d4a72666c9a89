"""A small synchronous client over httpx, speaking the same wire models as the server."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from kfpd.domain.enums import IOType
from kfpd.schemas.artifacts import (
    Artifact,
    ArtifactTask,
    CreateArtifactRequest,
    CreateArtifactsBulkRequest,
    CreateArtifactsBulkResponse,
    CreateArtifactTasksBulkRequest,
    CreateArtifactTasksBulkResponse,
    ListArtifactResponse,
    ListArtifactTasksResponse,
)
from kfpd.schemas.experiments import Experiment, ExperimentCreate, ListExperimentsResponse
from kfpd.schemas.launch import AppendLogRequest, FinishTaskRequest, TaskLog
from kfpd.schemas.lineage import LineageResponse
from kfpd.schemas.runs import DeleteRunReply, ListRunsResponse, Run, RunCreate
from kfpd.schemas.tasks import (
    FindCachedTaskRequest,
    FindCachedTaskResponse,
    ListTasksResponse,
    PipelineTask,
    UpdateTasksBulkRequest,
    UpdateTasksBulkResponse,
)

M = TypeVar("M", bound=BaseModel)
API = "/apis/v2beta1"


class KfpdApiError(Exception):
    """The server answered with an error: ``status`` is the HTTP status, ``message`` its text."""

    def __init__(self, status: int, message: str, grpc_code: int | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.grpc_code = grpc_code


class KfpdClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KfpdClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        response = self._http.request(method, API + path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                raise KfpdApiError(response.status_code, body.get("message", ""), body.get("code"))
            except ValueError:
                raise KfpdApiError(response.status_code, response.text) from None
        return model.model_validate(response.json())

    @staticmethod
    def _body(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json", exclude_none=True)

    # -- experiments and runs

    def create_experiment(self, display_name: str, namespace: str = "") -> Experiment:
        body = ExperimentCreate(display_name=display_name, namespace=namespace)
        return self._call("POST", "/experiments", Experiment, json=self._body(body))

    def list_experiments(self, **params: Any) -> ListExperimentsResponse:
        return self._call("GET", "/experiments", ListExperimentsResponse, params=params)

    def create_run(self, run: RunCreate) -> Run:
        return self._call("POST", "/runs", Run, json=self._body(run))

    def get_run(self, run_id: str, *, full: bool = False) -> Run:
        params = {"view": "FULL"} if full else {}
        return self._call("GET", f"/runs/{run_id}", Run, params=params)

    def list_runs(self, **params: Any) -> ListRunsResponse:
        return self._call("GET", "/runs", ListRunsResponse, params=params)

    def delete_run(
        self, run_id: str, *, delete_artifacts: bool = False, dry_run: bool = False
    ) -> DeleteRunReply:
        params = {"delete_artifacts": "true"} if delete_artifacts else {}
        if dry_run:
            params["dry_run"] = "true"
        return self._call("DELETE", f"/runs/{run_id}", DeleteRunReply, params=params)

    def terminate_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{run_id}:terminate", _Empty)

    def retry_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{run_id}:retry", _Empty)

    # -- tasks

    def create_task(self, run_id: str, task: PipelineTask) -> PipelineTask:
        return self._call("POST", f"/runs/{run_id}/tasks", PipelineTask, json=self._body(task))

    def update_task(self, run_id: str, task_id: str, task: PipelineTask) -> PipelineTask:
        return self._call(
            "PATCH", f"/runs/{run_id}/tasks/{task_id}", PipelineTask, json=self._body(task)
        )

    def update_tasks_bulk(
        self, run_id: str, tasks: dict[str, PipelineTask]
    ) -> UpdateTasksBulkResponse:
        body = UpdateTasksBulkRequest(tasks=tasks)
        return self._call(
            "POST",
            f"/runs/{run_id}/tasks:batchUpdate",
            UpdateTasksBulkResponse,
            json=self._body(body),
        )

    def get_task(self, run_id: str, task_id: str) -> PipelineTask:
        return self._call("GET", f"/runs/{run_id}/tasks/{task_id}", PipelineTask)

    def list_tasks(
        self, run_id: str, *, parent_id: str | None = None, **params: Any
    ) -> ListTasksResponse:
        if parent_id:
            params["parent_id"] = parent_id
        return self._call("GET", f"/runs/{run_id}/tasks", ListTasksResponse, params=params)

    def find_cached_task(self, fingerprint: str, namespace: str = "") -> PipelineTask | None:
        body = FindCachedTaskRequest(cache_fingerprint=fingerprint, namespace=namespace)
        return self._call(
            "POST", "/tasks:findCached", FindCachedTaskResponse, json=self._body(body)
        ).task

    # -- execution (launchers; the client's token must be the run's)

    def finish_task(self, run_id: str, task_id: str, request: FinishTaskRequest) -> PipelineTask:
        return self._call(
            "POST",
            f"/runs/{run_id}/tasks/{task_id}:finish",
            PipelineTask,
            json=self._body(request),
        )

    def append_log(self, run_id: str, task_id: str, text: str) -> None:
        body = AppendLogRequest(text=text)
        self._call("POST", f"/runs/{run_id}/tasks/{task_id}/logs", _Empty, json=self._body(body))

    def read_log(
        self, run_id: str, task_id: str, offset: int = 0, limit_bytes: int | None = None
    ) -> TaskLog:
        params: dict[str, Any] = {"offset": offset}
        if limit_bytes is not None:
            params["limit_bytes"] = limit_bytes
        return self._call("GET", f"/runs/{run_id}/tasks/{task_id}/logs", TaskLog, params=params)

    # -- artifacts and links

    def create_artifact(self, request: CreateArtifactRequest) -> Artifact:
        return self._call("POST", "/artifacts", Artifact, json=self._body(request))

    def create_artifacts_bulk(self, requests: list[CreateArtifactRequest]) -> list[Artifact]:
        body = CreateArtifactsBulkRequest(artifacts=requests)
        return self._call(
            "POST", "/artifacts:batchCreate", CreateArtifactsBulkResponse, json=self._body(body)
        ).artifacts

    def get_artifact(self, artifact_id: str) -> Artifact:
        return self._call("GET", f"/artifacts/{artifact_id}", Artifact)

    def list_artifacts(self, **params: Any) -> ListArtifactResponse:
        return self._call("GET", "/artifacts", ListArtifactResponse, params=params)

    def create_artifact_task(self, link: ArtifactTask) -> ArtifactTask:
        return self._call(
            "POST", "/artifact_tasks", ArtifactTask, json={"artifact_task": self._body(link)}
        )

    def create_artifact_tasks_bulk(self, links: list[ArtifactTask]) -> list[ArtifactTask]:
        body = CreateArtifactTasksBulkRequest(artifact_tasks=links)
        return self._call(
            "POST",
            "/artifact_tasks:batchCreate",
            CreateArtifactTasksBulkResponse,
            json=self._body(body),
        ).artifact_tasks

    def list_artifact_tasks(
        self,
        *,
        task_ids: list[str] | None = None,
        run_ids: list[str] | None = None,
        artifact_ids: list[str] | None = None,
        io_type: IOType | None = None,
        **params: Any,
    ) -> ListArtifactTasksResponse:
        query: dict[str, Any] = dict(params)
        if task_ids:
            query["task_ids"] = task_ids
        if run_ids:
            query["run_ids"] = run_ids
        if artifact_ids:
            query["artifact_ids"] = artifact_ids
        if io_type is not None:
            query["type"] = io_type.name
        return self._call("GET", "/artifact_tasks", ListArtifactTasksResponse, params=query)

    # -- lineage (kfpd extension)

    def artifact_lineage(self, artifact_id: str, **params: Any) -> LineageResponse:
        """Lineage of an artifact; params: direction, max_hops, page_size, page_token,
        namespace, node_kind, artifact_type (see docs/api.md)."""
        return self._call(
            "GET", f"/artifacts/{artifact_id}/lineage", LineageResponse, params=_query(params)
        )

    def task_lineage(self, task_id: str, **params: Any) -> LineageResponse:
        """Lineage of a task; same params as :meth:`artifact_lineage`."""
        return self._call(
            "GET", f"/tasks/{task_id}/lineage", LineageResponse, params=_query(params)
        )


def _query(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class _Empty(BaseModel):
    pass
