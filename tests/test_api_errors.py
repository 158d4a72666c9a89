"""Bad input gets a clear 4xx in KFP's error shape, never a 500, and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from kfpd.domain.tokens import issue_run_token
from tests.conftest import CORPUS, require_corpus
from tests.helpers import JSON, compiled, ok

require_corpus()

API = "/apis/v2beta1"
ADD = (CORPUS / "critical" / "add_numbers.yaml").read_bytes()
ADD_SPEC = yaml.safe_load(ADD)


def _err(response: Any, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "code", "message"}
    assert fragment.lower() in body["message"].lower(), body["message"]


EMPTY = (0, 0, 1)  # no pipeline, no run, the Default experiment (made at start-up)


def _counts(api: TestClient) -> tuple[int, int, int]:
    return (
        ok(api.get(f"{API}/pipelines"))["total_size"],
        ok(api.get(f"{API}/runs"))["total_size"],
        ok(api.get(f"{API}/experiments"))["total_size"],
    )


def _upload(api: TestClient, data: bytes, name: str = "p", filename: str = "p.yaml") -> Any:
    return api.post(
        f"{API}/pipelines/upload", params={"name": name}, files={"uploadfile": (filename, data)}
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"a: [unclosed", "not valid YAML"),
        (b"", "empty"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"PK\x03\x04broken", "invalid zip"),
        (b"just a string", "must be a non-empty JSON object"),
        (
            ADD.replace(b"schemaVersion: 2.1.0", b"schemaVersion: 9.9.9"),
            "unsupported IR schemaVersion",
        ),
        (ADD.replace(b"name: comp-add-numbers", b"name: comp-nope"), "unknown component"),
        (ADD.replace(b"pipelineInfo:", b"pipelineInfoo:"), "invalid pipeline spec"),
    ],
)
def test_bad_pipeline_files(api: TestClient, data: bytes, fragment: str) -> None:
    _err(_upload(api, data), 400, fragment)
    assert _counts(api) == EMPTY


def _spec_with(mutate: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(compiled("graph_demo")))
    mutate(spec)
    return spec


def _cycle(spec: dict[str, Any]) -> None:
    spec["root"]["dag"]["tasks"]["make-data"]["dependentTasks"] = ["for-loop-2"]


def _bad_cel(spec: dict[str, Any]) -> None:
    spec["root"]["dag"]["tasks"]["condition-3"]["triggerPolicy"]["condition"] = "inputs.x == ("


def _bad_producer(spec: dict[str, Any]) -> None:
    task = spec["root"]["dag"]["tasks"]["for-loop-2"]
    task["inputs"]["artifacts"]["pipelinechannel--make-data-data"]["taskOutputArtifact"][
        "producerTask"
    ] = "ghost"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (_cycle, "dependency cycle"),
        (_bad_cel, "invalid CEL"),
        (_bad_producer, "unknown task 'ghost'"),
    ],
)
def test_broken_pipelines_are_rejected_at_submission(
    api: TestClient, mutate: Any, fragment: str
) -> None:
    _err(
        api.post(f"{API}/runs", json={"display_name": "x", "pipeline_spec": _spec_with(mutate)}),
        400,
        fragment,
    )
    assert _counts(api) == EMPTY


def test_run_parameters_are_checked(api: TestClient) -> None:
    spec = ADD_SPEC
    body: dict[str, Any] = {"display_name": "r", "pipeline_spec": spec}
    _err(api.post(f"{API}/runs", json=body), 400, "missing required pipeline parameter")
    body["runtime_config"] = {"parameters": {"a": 1, "b": 2, "c": 3}}
    _err(api.post(f"{API}/runs", json=body), 400, "unknown pipeline parameter")
    body["runtime_config"] = {"parameters": {"a": "one", "b": 2}}
    _err(api.post(f"{API}/runs", json=body), 400, "must be NUMBER_INTEGER")
    assert _counts(api)[1] == 0
    body["runtime_config"] = {"parameters": {"a": 1.0, "b": 2}}
    assert ok(api.post(f"{API}/runs", json=body))["state"] == "PENDING"


def test_malformed_json_and_unknown_fields(api: TestClient) -> None:
    _err(api.post(f"{API}/experiments", content=b"{nope", headers=JSON), 400, "malformed JSON")
    _err(
        api.post(f"{API}/experiments", json={"display_name": "e", "colour": "red"}),
        400,
        "unknown field",
    )
    _err(api.post(f"{API}/experiments", json={"description": "no name"}), 400, "display_name")
    _err(
        api.post(f"{API}/runs", json={"display_name": "r", "pipeline_spec": {}, "zzz": 1}),
        400,
        "unknown field",
    )
    _err(api.post(f"{API}/runs", json={"display_name": "r"}), 400, "needs pipeline_spec")
    assert _counts(api) == EMPTY


@pytest.mark.parametrize(
    "path",
    [
        "/experiments/nope",
        "/pipelines/nope",
        "/pipelines/nope/versions",
        "/runs/nope",
        "/runs/nope/tasks",
        "/runs/nope/tasks/nope",
        "/artifacts/nope",
        "/pipelines/names/nope",
    ],
)
def test_unknown_ids_are_404(api: TestClient, path: str) -> None:
    _err(api.get(API + path), 404, "not found")


def test_unknown_ids_in_writes(api: TestClient) -> None:
    _err(api.post(f"{API}/runs/nope/tasks", json={"name": "t"}), 404, "not found")
    _err(api.post(f"{API}/runs/nope:archive"), 404, "not found")
    _err(api.delete(f"{API}/experiments/nope"), 404, "not found")
    _err(
        api.post(
            f"{API}/runs",
            json={
                "experiment_id": "nope",
                "pipeline_spec": ADD_SPEC,
                "runtime_config": {"parameters": {"a": 1, "b": 2}},
            },
        ),
        404,
        "experiment",
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"filter": "{bad"}, "not valid JSON"),
        (
            {
                "filter": json.dumps(
                    {"predicates": [{"operation": 1, "key": "colour", "stringValue": "x"}]}
                )
            },
            "unrecognized field",
        ),
        (
            {
                "filter": json.dumps(
                    {"predicates": [{"operation": 1, "key": "state", "stringValue": "HAPPY"}]}
                )
            },
            "invalid RunState",
        ),
        ({"sort_by": "colour"}, "cannot sort by"),
        ({"sort_by": "created_at sideways"}, "invalid sort_by"),
        ({"page_size": "-1"}, "must not be negative"),
        ({"page_size": "ten"}, "must be an integer"),
        ({"page_token": "not-a-token"}, "invalid page_token"),
        ({"view": "HUGE"}, "view must be"),
    ],
)
def test_invalid_list_requests(api: TestClient, params: dict[str, str], fragment: str) -> None:
    _err(api.get(f"{API}/runs", params=params), 400, fragment)


def test_page_token_bound_to_its_filter_and_sort(api: TestClient) -> None:
    for i in range(3):
        ok(api.post(f"{API}/experiments", json={"display_name": f"e{i}"}))
    first = ok(api.get(f"{API}/experiments", params={"page_size": 1, "sort_by": "display_name"}))
    token = first["next_page_token"]
    other_filter = json.dumps(
        {"predicates": [{"operation": 9, "key": "display_name", "stringValue": "e"}]}
    )
    _err(
        api.get(f"{API}/experiments", params={"page_token": token, "filter": other_filter}),
        400,
        "another filter",
    )
    _err(
        api.get(f"{API}/experiments", params={"page_token": token, "sort_by": "created_at"}),
        400,
        "another sort_by",
    )
    _err(
        api.get(f"{API}/experiments", params={"page_token": token, "namespace": "other"}),
        400,
        "another list",
    )
    nxt = ok(api.get(f"{API}/experiments", params={"page_token": token, "page_size": 5}))
    assert first["experiments"][0]["display_name"] == "Default"
    assert [e["display_name"] for e in nxt["experiments"]] == ["e0", "e1", "e2"]


def test_oversize_body(api: TestClient) -> None:
    big = b"x" * (3 * 1024 * 1024)  # the test app allows 2 MiB
    _err(_upload(api, big), 413, "larger than the limit")
    _err(
        api.post(f"{API}/experiments", content=b'{"display_name": "' + big + b'"}', headers=JSON),
        413,
        "limit",
    )
    assert _counts(api) == EMPTY


def test_duplicate_names_conflict(api: TestClient) -> None:
    ok(api.post(f"{API}/experiments", json={"display_name": "dup"}))
    _err(api.post(f"{API}/experiments", json={"display_name": "dup"}), 409, "already exists")
    ok(_upload(api, ADD, name="p1"))
    _err(_upload(api, ADD, name="p1"), 409, "already exists")
    assert _counts(api) == (1, 0, 2)


def test_task_and_artifact_validation(api: TestClient) -> None:
    run = ok(api.post(f"{API}/runs", json={"pipeline_spec": compiled("graph_demo")}))
    rid = run["run_id"]
    task = ok(
        api.post(
            f"{API}/runs/{rid}/tasks", json={"name": "ROOT", "type": "ROOT", "scope_path": "root"}
        )
    )
    tid = task["task_id"]
    _err(
        api.post(f"{API}/runs/{rid}/tasks", json={"name": "x", "state": "DANCING"}),
        400,
        "invalid TaskState",
    )
    _err(
        api.post(f"{API}/runs/{rid}/tasks", json={"name": "x", "parent_task_id": "ghost"}),
        400,
        "does not exist",
    )
    _err(
        api.post(f"{API}/runs/{rid}/tasks", json={"name": "x", "run_id": "other"}),
        400,
        "does not match",
    )
    _err(
        api.post(
            f"{API}/runs/{rid}/tasks", json={"name": "x", "inputs": {"parameters": [{"value": 1}]}}
        ),
        400,
        "parameter_key",
    )
    _err(
        api.patch(f"{API}/runs/{rid}/tasks/{tid}", json={"create_time": "nonsense"}),
        400,
        "RFC 3339",
    )
    _err(
        api.post(f"{API}/runs/{rid}/tasks:batchUpdate", json={"tasks": {}}),
        400,
        "must not be empty",
    )
    _err(
        api.post(
            f"{API}/runs/{rid}/tasks:batchUpdate",
            json={"tasks": {tid: {"state": "SUCCEEDED"}, "ghost": {}}},
        ),
        404,
        "not found",
    )
    assert ok(api.get(f"{API}/runs/{rid}/tasks/{tid}"))["state"] == "RUNNING", (
        "bulk is all-or-nothing"
    )

    def art(**over: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "run_id": rid,
            "task_id": tid,
            "producer_key": "o",
            "artifact": {"name": "a", "type": "Dataset"},
        }
        base.update(over)
        return base

    _err(api.post(f"{API}/artifacts", json=art(artifact=None)), 400, "artifact is required")
    _err(api.post(f"{API}/artifacts", json=art(artifact={"name": "a"})), 400, "type is required")
    _err(
        api.post(f"{API}/artifacts", json=art(artifact={"name": "m", "type": "Metric"})),
        400,
        "number_value",
    )
    _err(
        api.post(
            f"{API}/artifacts", json=art(artifact={"name": "c", "type": "ClassificationMetric"})
        ),
        400,
        "metadata",
    )
    _err(api.post(f"{API}/artifacts", json=art(producer_key="")), 400, "producer_key")
    _err(api.post(f"{API}/artifacts", json=art(task_id="ghost")), 404, "not found")
    _err(
        api.post(f"{API}/artifacts:batchCreate", json={"artifacts": [art(), art(task_id="ghost")]}),
        404,
        "not found",
    )
    assert ok(api.get(f"{API}/artifacts"))["total_size"] == 0, "bulk create is all-or-nothing"
    _err(api.get(f"{API}/artifact_tasks"), 400, "at least one")
    _err(
        api.get(f"{API}/artifact_tasks", params={"run_ids": rid, "type": "SIDEWAYS"}),
        400,
        "invalid IOType",
    )
    link = {
        "artifact_id": "ghost",
        "task_id": tid,
        "run_id": rid,
        "type": "OUTPUT",
        "producer": {"task_name": "x"},
        "key": "k",
    }
    _err(api.post(f"{API}/artifact_tasks", json={"artifact_task": link}), 404, "artifact")
    _err(
        api.post(f"{API}/artifact_tasks", json={"artifact_task": {**link, "type": "UNSPECIFIED"}}),
        400,
        "type",
    )
    token = {"authorization": f"Bearer {issue_run_token(_secret(api), rid)}"}
    _err(api.post(f"{API}/tasks:findCached", json={}, headers=token), 400, "cache_fingerprint")


def _secret(api: TestClient) -> bytes:
    secret: bytes = api.app.state.settings.run_token_secret()  # type: ignore[attr-defined]
    return secret


def test_openapi_and_unknown_routes(api: TestClient) -> None:
    schema = ok(api.get("/openapi.json"))
    assert "/apis/v2beta1/runs/{run_id}/tasks" in schema["paths"]
    _err(api.get(f"{API}/nothing-here"), 404, "not found")
    _err(api.put(f"{API}/runs"), 405, "method not allowed")
