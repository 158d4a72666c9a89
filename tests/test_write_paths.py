"""The launcher's write paths: links carried by CreateTask, canonical wire JSON from the routes
that skip response-model validation, and bulk updates whose roll-up touches another task of
the same batch."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from kfpd.schemas.artifacts import (
    Artifact,
    ArtifactTask,
    CreateArtifactsBulkResponse,
    ListArtifactTasksResponse,
)
from kfpd.schemas.tasks import ListTasksResponse, PipelineTask, UpdateTasksBulkResponse
from tests.helpers import JSON, ok

API = "/apis/v2beta1"


def _spec(*names: str) -> dict[str, Any]:
    """A valid IR whose root DAG runs ``names`` one after the other."""
    tasks: dict[str, Any] = {}
    for i, name in enumerate(names):
        tasks[name] = {"componentRef": {"name": "comp-step"}, "taskInfo": {"name": name}}
        if i:
            tasks[name]["dependentTasks"] = [names[i - 1]]
    container = {"image": "python:3.11", "command": ["python", "-c"], "args": ["print(1)"]}
    return {
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.0",
        "pipelineInfo": {"name": "write-paths"},
        "deploymentSpec": {"executors": {"exec-step": {"container": container}}},
        "components": {"comp-step": {"executorLabel": "exec-step"}},
        "root": {"dag": {"tasks": tasks}},
    }


def _canonical(model: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """Assert a response is exactly what its model dumps (enums by name, no nulls...)."""
    assert model.model_validate(body).model_dump(mode="json", exclude_none=True) == body
    return body


def _run(api: TestClient, *names: str) -> tuple[str, str]:
    run = ok(api.post(f"{API}/runs", json={"display_name": "w", "pipeline_spec": _spec(*names)}))
    root = ok(
        api.post(
            f"{API}/runs/{run['run_id']}/tasks",
            json={"name": "ROOT", "type": "ROOT", "scope_path": "root", "state": "RUNNING"},
        )
    )
    return run["run_id"], root["task_id"]


def _task(api: TestClient, run_id: str, root_id: str, name: str, **fields: Any) -> Any:
    body = {
        "name": name,
        "type": "RUNTIME",
        "state": "RUNNING",
        "scope_path": f"root.{name}",
        "parent_task_id": root_id,
        **fields,
    }
    return api.post(f"{API}/runs/{run_id}/tasks", json=body)


def _dataset(api: TestClient, run_id: str, task_id: str, key: str) -> dict[str, Any]:
    req = {
        "run_id": run_id,
        "task_id": task_id,
        "producer_key": key,
        "artifact": {"name": key, "type": "Dataset", "uri": f"s3://b/{key}"},
    }
    made = ok(api.post(f"{API}/artifacts:batchCreate", json={"artifacts": [req]}))
    result: dict[str, Any] = _canonical(CreateArtifactsBulkResponse, made)["artifacts"][0]
    return result


def _input(artifact_id: str, producer: str, key: str = "in", **extra: Any) -> dict[str, Any]:
    return {
        "artifacts": [{"artifact_id": artifact_id}],
        "type": "TASK_OUTPUT_INPUT",
        "artifact_key": key,
        "producer": {"task_name": producer},
        **extra,
    }


def _links(api: TestClient, task_id: str) -> list[dict[str, Any]]:
    found = ok(api.get(f"{API}/artifact_tasks", params={"task_ids": task_id}))
    links: list[dict[str, Any]] = _canonical(ListArtifactTasksResponse, found)["artifact_tasks"]
    return links


def test_create_task_records_the_links_it_lists(api: TestClient) -> None:
    run_id, root_id = _run(api, "a", "b", "c")
    a = ok(_task(api, run_id, root_id, "a"))
    data = _dataset(api, run_id, a["task_id"], "data")

    b = ok(
        _task(api, run_id, root_id, "b", inputs={"artifacts": [_input(data["artifact_id"], "a")]})
    )
    assert "artifacts" not in b["inputs"], "CreateTask answers without artifacts, as upstream"
    (link,) = _links(api, b["task_id"])
    assert link["artifact_id"] == data["artifact_id"]
    assert (link["type"], link["key"], link["producer"]) == (
        "TASK_OUTPUT_INPUT",
        "in",
        {"task_name": "a"},
    )
    read = _canonical(PipelineTask, ok(api.get(f"{API}/runs/{run_id}/tasks/{b['task_id']}")))
    (io,) = read["inputs"]["artifacts"]
    assert io["artifacts"][0]["artifact_id"] == data["artifact_id"]
    assert (io["artifact_key"], io["type"]) == ("in", "TASK_OUTPUT_INPUT")

    # A retried CreateTask returns the same task and does not duplicate its links.
    again = ok(
        _task(api, run_id, root_id, "b", inputs={"artifacts": [_input(data["artifact_id"], "a")]})
    )
    assert again["task_id"] == b["task_id"]
    assert len(_links(api, b["task_id"])) == 1

    # A cache hit is created final, with its outputs linked to the cached artifacts.
    out = {
        "artifacts": [{"artifact_id": data["artifact_id"]}],
        "type": "OUTPUT",
        "artifact_key": "copy",
        "producer": {"task_name": "c", "iteration": 2},
    }
    c = ok(_task(api, run_id, root_id, "c", state="CACHED", outputs={"artifacts": [out]}))
    (link,) = _links(api, c["task_id"])
    assert (link["type"], link["key"]) == ("OUTPUT", "copy")
    assert link["producer"] == {"task_name": "c", "iteration": "2"}


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"artifact_id": "no-such-artifact"}, 404, "no-such-artifact"),
        ({"type": "OUTPUT"}, 400, "OUTPUT is an output type"),
        ({"type": "UNSPECIFIED"}, 400, "inputs.artifacts[0].type is required"),
        ({"artifact_key": ""}, 400, "inputs.artifacts[0].artifact_key is required"),
        ({"producer": None}, 400, "inputs.artifacts[0].producer is required"),
        ({"artifacts": []}, 400, "must name at least one artifact"),
        ({"artifacts": [{"name": "x"}]}, 400, "artifacts[0].artifact_id is required"),
    ],
)
def test_create_task_with_a_bad_link_writes_nothing(
    api: TestClient, change: dict[str, Any], status: int, message: str
) -> None:
    run_id, root_id = _run(api, "a", "b")
    a = ok(_task(api, run_id, root_id, "a"))
    data = _dataset(api, run_id, a["task_id"], "data")
    link = _input(data["artifact_id"], "a")
    if "artifact_id" in change:
        link["artifacts"] = [{"artifact_id": change["artifact_id"]}]
    else:
        link.update(change)
    link = {k: v for k, v in link.items() if v is not None}
    refused = _task(api, run_id, root_id, "b", inputs={"artifacts": [link]})
    assert refused.status_code == status, refused.text
    assert message in refused.json()["message"]
    listed = ok(api.get(f"{API}/runs/{run_id}/tasks"))
    assert {t["name"] for t in listed["tasks"]} == {"ROOT", "a"}, "the task was not created"
    assert ok(api.get(f"{API}/artifact_tasks", params={"run_ids": run_id}))["total_size"] == 1


def test_output_links_must_have_output_types(api: TestClient) -> None:
    run_id, root_id = _run(api, "a", "b")
    a = ok(_task(api, run_id, root_id, "a"))
    data = _dataset(api, run_id, a["task_id"], "data")
    refused = _task(
        api, run_id, root_id, "b", outputs={"artifacts": [_input(data["artifact_id"], "a")]}
    )
    assert refused.status_code == 400
    assert (
        "outputs.artifacts[0].type TASK_OUTPUT_INPUT is an input type" in refused.json()["message"]
    )


def test_write_responses_are_canonical_wire_json(api: TestClient) -> None:
    run_id, root_id = _run(api, "a")
    created = _task(
        api,
        run_id,
        root_id,
        "a",
        display_name="A",
        cache_fingerprint="f" * 64,
        pods=[{"name": "a-pod", "uid": "u1", "type": "DRIVER"}],
        type_attributes={"iteration_index": 3},
        status_metadata={"message": "starting", "custom_properties": {"k": None}},
        inputs={
            "parameters": [
                {"parameter_key": "none", "type": "COMPONENT_INPUT", "value": None},
                {
                    "parameter_key": "x",
                    "type": "ITERATOR_INPUT",
                    "value": {"nested": [1, None, 2.5]},
                    "producer": {"task_name": "loop", "iteration": "3"},
                },
            ]
        },
    )
    task = _canonical(PipelineTask, ok(created))
    assert task["type_attributes"] == {"iteration_index": "3"}
    assert task["inputs"]["parameters"][0] == {"type": "COMPONENT_INPUT", "parameter_key": "none"}
    assert task["inputs"]["parameters"][1]["value"] == {"nested": [1, None, 2.5]}
    assert task["outputs"] == {}
    assert task["status_metadata"] == {"message": "starting", "custom_properties": {"k": None}}
    assert [h["state"] for h in task["state_history"]] == ["RUNNING"]
    assert "end_time" not in task

    metric = {
        "run_id": run_id,
        "task_id": task["task_id"],
        "producer_key": "m",
        "iteration_index": 3,
        "artifact": {"name": "acc", "type": "Metric", "number_value": 0.25},
    }
    made = _canonical(
        CreateArtifactsBulkResponse,
        ok(api.post(f"{API}/artifacts:batchCreate", json={"artifacts": [metric]})),
    )
    assert made["artifacts"][0]["number_value"] == 0.25
    assert "uri" not in made["artifacts"][0]
    single = _canonical(
        Artifact, ok(api.post(f"{API}/artifacts", json={**metric, "producer_key": "m2"}))
    )
    assert single["type"] == "Metric"
    link = {
        "artifact_id": single["artifact_id"],
        "task_id": task["task_id"],
        "run_id": run_id,
        "type": "COMPONENT_INPUT",
        "producer": {"task_name": "a", "iteration": 1},
        "key": "again",
    }
    linked = _canonical(
        ArtifactTask, ok(api.post(f"{API}/artifact_tasks", json={"artifact_task": link}))
    )
    assert linked["producer"] == {"task_name": "a", "iteration": "1"}

    done = ok(
        api.patch(
            f"{API}/runs/{run_id}/tasks/{task['task_id']}",
            json={
                "state": "SUCCEEDED",
                "end_time": "2026-01-02T03:04:05.5Z",
                "outputs": {"parameters": [{"parameter_key": "y", "type": "OUTPUT", "value": 1.5}]},
            },
        )
    )
    _canonical(PipelineTask, done)
    assert done["end_time"] == "2026-01-02T03:04:05.500000Z"
    assert done["outputs"]["parameters"] == [{"value": 1.5, "type": "OUTPUT", "parameter_key": "y"}]
    outputs = {a["artifact_key"]: a for a in done["outputs"]["artifacts"]}
    assert outputs["m"]["producer"] == {"task_name": "a", "iteration": "3"}
    assert done["inputs"]["artifacts"][0]["artifact_key"] == "again"

    listed = _canonical(ListTasksResponse, ok(api.get(f"{API}/runs/{run_id}/tasks")))
    assert listed["total_size"] == 2
    root = next(t for t in listed["tasks"] if t["type"] == "ROOT")
    assert root["state"] == "SUCCEEDED"
    assert root["child_tasks"] == [{"task_id": task["task_id"], "name": "a"}]


def test_bulk_update_answers_with_states_rolled_up_within_the_batch(api: TestClient) -> None:
    run_id, root_id = _run(api, "a")
    a = ok(_task(api, run_id, root_id, "a"))
    body = {
        "tasks": {
            a["task_id"]: {"state": "SUCCEEDED"},
            root_id: {"display_name": "the root"},
        }
    }
    updated = _canonical(
        UpdateTasksBulkResponse, ok(api.post(f"{API}/runs/{run_id}/tasks:batchUpdate", json=body))
    )["tasks"]
    assert updated[a["task_id"]]["state"] == "SUCCEEDED"
    assert updated[root_id]["state"] == "SUCCEEDED", "a's finish rolled the root up"
    assert updated[root_id]["display_name"] == "the root"
    assert ok(api.get(f"{API}/runs/{run_id}"))["state"] == "SUCCEEDED"


def test_streamed_body_over_the_limit_is_refused(api: TestClient) -> None:
    """Without a Content-Length (chunked upload) the limit is counted as the body streams in."""
    chunk = b" " * (512 * 1024)  # the test app allows 2 MiB

    def body() -> Any:
        yield b'{"display_name": "big"'
        for _ in range(6):
            yield chunk
        yield b"}"

    refused = api.post(f"{API}/experiments", content=body(), headers=JSON)
    assert refused.status_code == 413, refused.text
    assert "larger than the limit" in refused.json()["message"]
    assert ok(api.get(f"{API}/experiments"))["total_size"] == 1  # Default only

    def small() -> Any:
        yield b'{"display_name": '
        yield b'"small"}'

    assert (
        ok(api.post(f"{API}/experiments", content=small(), headers=JSON))["display_name"] == "small"
    )
