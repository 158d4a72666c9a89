"""LeanRoute (CreateTask, :finish): documented by FastAPI, bodies checked by pydantic-core,
errors as every other route reports them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, Request, Response
from fastapi.testclient import TestClient

from kfpd.api.lean_route import LeanRoute
from kfpd.domain.tokens import issue_run_token
from kfpd.schemas.tasks import PipelineTask
from tests.helpers import JSON, compiled, ok

API = "/apis/v2beta1"


def _err(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert text in body["message"], body
    assert body["error"] == body["message"] and isinstance(body["code"], int)


@pytest.fixture
def run_id(api: TestClient) -> str:
    run = ok(api.post(f"{API}/runs", json={"pipeline_spec": compiled("graph_demo")}))
    return str(run["run_id"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{nope", "malformed JSON"),
        (b"", "malformed JSON"),
        (b'{"name": "x", "colour": "red"}', "colour: unknown field"),
        (b'{"name": "x", "state": "DANCING"}', "invalid TaskState"),
        (b'{"name": "x", "pods": "not a list"}', "pods"),
        (b"[1, 2]", "body"),
    ],
)
def test_create_task_refuses_bad_bodies(
    api: TestClient, run_id: str, content: bytes, message: str
) -> None:
    _err(api.post(f"{API}/runs/{run_id}/tasks", content=content, headers=JSON), 400, message)
    assert ok(api.get(f"{API}/runs/{run_id}/tasks"))["total_size"] == 0


def test_finish_refuses_bad_bodies_before_anything_else(api: TestClient, run_id: str) -> None:
    url = f"{API}/runs/{run_id}/tasks/nope:finish"
    _err(api.post(url, json={"state": "SUCCEEDED"}), 401, "run token")  # token first
    _err(api.post(url, content=b"{nope", headers=JSON), 401, "run token")  # no body read first
    secret = api.app.state.settings.run_token_secret()  # type: ignore[attr-defined]
    token = {"authorization": f"Bearer {issue_run_token(secret, run_id)}"}
    _err(api.post(url, content=b"{nope", headers={**JSON, **token}), 400, "malformed JSON")
    _err(api.post(url, json={"state": "MAYBE"}, headers=token), 400, "state")


def test_the_routes_are_documented_like_the_others(api: TestClient) -> None:
    paths = ok(api.get("/openapi.json"))["paths"]
    create = paths["/apis/v2beta1/runs/{run_id}/tasks"]["post"]
    finish = paths["/apis/v2beta1/runs/{run_id}/tasks/{task_id}:finish"]["post"]
    assert [p["name"] for p in create["parameters"]] == ["run_id"]
    assert [p["name"] for p in finish["parameters"]] == ["run_id", "task_id"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PipelineTask"}
    body = finish["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/FinishTaskRequest"}
    reply = finish["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply == {"$ref": "#/components/schemas/PipelineTask"}


# The signatures below are what LeanRoute is asked to serve: their arguments are the point.
async def _extra_dependency(request: Request, run_id: str, body: PipelineTask, n: int) -> Response:  # noqa: ARG001
    return Response()


async def _no_body(request: Request, run_id: str) -> Response:  # noqa: ARG001
    return Response()


@pytest.mark.parametrize("endpoint", [_extra_dependency, _no_body])
def test_endpoints_it_cannot_serve_are_refused_at_start_up(endpoint: Any) -> None:
    router = APIRouter()
    with pytest.raises(TypeError, match="LeanRoute endpoint takes"):
        router.add_api_route(
            "/runs/{run_id}", endpoint, methods=["POST"], route_class_override=LeanRoute
        )
