"""The launcher's server endpoints: :finish (one transaction), task logs, run tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kfpd.config import Settings
from kfpd.domain.tokens import issue_run_token
from tests.helpers import compiled, ok

API = "/apis/v2beta1"


class Graph:
    """A graph_demo run with a ROOT task, as the orchestrator would have started it."""

    def __init__(self, api: TestClient, tmp_path: Path) -> None:
        self.api = api
        self.tmp_path = tmp_path
        self.secret = Settings(data_dir=tmp_path).run_token_secret()
        run = ok(
            api.post(
                f"{API}/runs", json={"display_name": "x", "pipeline_spec": compiled("graph_demo")}
            )
        )
        self.run_id = run["run_id"]
        self.root = self.task(name="ROOT", type="ROOT", scope_path="root")["task_id"]
        self.headers = {"Authorization": f"Bearer {issue_run_token(self.secret, self.run_id)}"}

    def task(self, **fields: Any) -> dict[str, Any]:
        return ok(
            self.api.post(f"{API}/runs/{self.run_id}/tasks", json={"state": "RUNNING", **fields})
        )

    def runtime(self, name: str = "make-data", **fields: Any) -> str:
        task = self.task(
            name=name,
            type="RUNTIME",
            scope_path=f"root.{name}",
            parent_task_id=self.root,
            **fields,
        )
        return str(task["task_id"])

    def finish(
        self, task_id: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        return self.api.post(
            f"{API}/runs/{self.run_id}/tasks/{task_id}:finish",
            json=body,
            headers=self.headers if headers is None else headers,
        )

    def append(self, task_id: str, text: str, headers: dict[str, str] | None = None) -> Any:
        return self.api.post(
            f"{API}/runs/{self.run_id}/tasks/{task_id}/logs",
            json={"text": text},
            headers=self.headers if headers is None else headers,
        )

    def read(self, task_id: str, **params: Any) -> dict[str, Any]:
        return ok(self.api.get(f"{API}/runs/{self.run_id}/tasks/{task_id}/logs", params=params))

    def get(self, task_id: str) -> dict[str, Any]:
        return ok(self.api.get(f"{API}/runs/{self.run_id}/tasks/{task_id}"))


@pytest.fixture
def graph(api: TestClient, tmp_path: Path) -> Graph:
    return Graph(api, tmp_path)


FINISHED = {
    "state": "SUCCEEDED",
    "output_parameters": {"Output": 3, "names": ["a", "b"]},
    "output_artifacts": [
        {
            "key": "data",
            "name": "data",
            "uri": "file:///tmp/p/data",
            "schema_title": "system.Dataset",
            "metadata": {"rows": 3},
        },
        {
            "key": "metrics",
            "name": "accuracy",
            "schema_title": "system.Metrics",
            "metadata": {"accuracy": 0.9},
            "number_value": 0.9,
        },
        {
            "key": "metrics",
            "name": "loss",
            "schema_title": "system.Metrics",
            "metadata": {"loss": 0.1},
            "number_value": 0.1,
        },
        {
            "key": "roc",
            "name": "roc",
            "schema_title": "system.ClassificationMetrics",
            "metadata": {"confusionMatrix": {"annotationSpecs": [], "rows": []}},
        },
        {"key": "vertex", "name": "m", "uri": "gs://b/m", "schema_title": "google.VertexModel"},
    ],
    "log_uri": "file:///tmp/p/executor-logs",
    "log_text": "the end\n",
}


def test_finish_records_outputs_artifacts_logs_and_state(graph: Graph) -> None:
    task_id = graph.runtime()
    task = ok(graph.finish(task_id, FINISHED))
    assert task["state"] == "SUCCEEDED" and task["end_time"]
    params = {p["parameter_key"]: p for p in task["outputs"]["parameters"]}
    assert params["Output"] == {
        "value": 3,
        "type": "OUTPUT",
        "parameter_key": "Output",
        "producer": {"task_name": "make-data"},
    }
    assert params["names"]["value"] == ["a", "b"]
    groups = {g["artifact_key"]: g for g in task["outputs"]["artifacts"]}
    assert set(groups) == {"data", "metrics", "roc", "vertex", "executor-logs"}
    assert all(
        g["type"] == "OUTPUT" and g["producer"] == {"task_name": "make-data"}
        for g in groups.values()
    )
    [data] = groups["data"]["artifacts"]
    assert (data["type"], data["uri"], data["metadata"]) == (
        "Dataset",
        "file:///tmp/p/data",
        {"rows": 3},
    )
    metrics = sorted(
        (a["name"], a["type"], a["number_value"]) for a in groups["metrics"]["artifacts"]
    )
    assert metrics == [("accuracy", "Metric", 0.9), ("loss", "Metric", 0.1)]
    [roc] = groups["roc"]["artifacts"]
    assert roc["type"] == "ClassificationMetric" and "uri" not in roc
    [vertex] = groups["vertex"]["artifacts"]
    assert vertex["type"] == "Artifact"
    assert vertex["metadata"] == {"_kfp_schema_title": "google.VertexModel"}
    [logs] = groups["executor-logs"]["artifacts"]
    assert (logs["name"], logs["uri"]) == ("executor-logs", "file:///tmp/p/executor-logs")
    assert graph.get(task_id) == task
    log = graph.read(task_id)
    assert log == {"text": "the end\n", "next_offset": 8, "complete": True}


def test_the_finish_reply_is_the_task_as_stored_with_its_inputs_and_outputs(graph: Graph) -> None:
    upstream = graph.runtime("make-data")
    made = ok(graph.finish(upstream, FINISHED))
    data = next(g for g in made["outputs"]["artifacts"] if g["artifact_key"] == "data")
    link = {
        "artifacts": data["artifacts"],
        "type": "TASK_OUTPUT_INPUT",
        "artifact_key": "in",
        "producer": {"task_name": "make-data"},
    }
    task_id = graph.runtime("train", inputs={"artifacts": [link]})
    task = ok(graph.finish(task_id, FINISHED))
    [inputs] = task["inputs"]["artifacts"]
    assert (inputs["artifact_key"], inputs["artifacts"]) == ("in", data["artifacts"])
    assert len(task["outputs"]["artifacts"]) == 5
    assert graph.get(task_id) == task
    # A failed attempt with retries left drops its outputs again: the reply shows none.
    failing = graph.runtime("flaky")
    failed = ok(graph.finish(failing, {**FINISHED, "state": "FAILED", "error_message": "x"}))
    assert graph.get(failing) == failed


def test_outputs_of_a_loop_iteration_carry_the_iteration(graph: Graph) -> None:
    loop = graph.task(
        name="for-loop-2",
        type="LOOP",
        scope_path="root.for-loop-2",
        parent_task_id=graph.root,
        type_attributes={"iteration_count": 2},
    )
    iteration = graph.task(
        name="for-loop-2",
        type="LOOP_ITERATION",
        scope_path="root.for-loop-2",
        parent_task_id=loop["task_id"],
        type_attributes={"iteration_index": 1},
    )
    square = graph.task(
        name="square",
        type="RUNTIME",
        scope_path="root.for-loop-2.square",
        parent_task_id=iteration["task_id"],
        type_attributes={"iteration_index": 1},
    )
    body = {
        "state": "SUCCEEDED",
        "output_parameters": {"Output": 4},
        "output_artifacts": [{"key": "out", "uri": "file:///x", "schema_title": "system.Artifact"}],
    }
    task = ok(graph.finish(square["task_id"], body))
    assert task["outputs"]["parameters"][0]["producer"] == {"task_name": "square", "iteration": "1"}
    [group] = task["outputs"]["artifacts"]
    assert group["producer"] == {"task_name": "square", "iteration": "1"}
    assert group["artifacts"][0]["name"] == "out"  # the key names an artifact without a name
    assert graph.get(iteration["task_id"])["state"] == "SUCCEEDED", "rolled up"


def test_a_failed_task_fails_its_run_with_the_message(graph: Graph) -> None:
    task_id = graph.runtime()
    body = {"state": "FAILED", "error_message": "the command exited with code 1; boom"}
    task = ok(graph.finish(task_id, body))
    assert task["state"] == "FAILED"
    assert task["status_metadata"]["message"] == body["error_message"]
    assert task["state_history"][-1]["error"]["message"] == body["error_message"]
    run = ok(graph.api.get(f"{API}/runs/{graph.run_id}"))
    assert run["state"] == "FAILED"
    assert "boom" in run["error"]["message"]


def test_finish_records_where_the_launcher_ran(graph: Graph) -> None:
    task_id = graph.runtime(pods=[{"name": "planned-pod", "type": "EXECUTOR"}])
    placement = {"executor": "kubernetes", "pod_name": "p-1", "pod_uid": "uid-1"}
    task = ok(graph.finish(task_id, {"state": "SUCCEEDED", "placement": placement}))
    assert task["pods"] == [{"name": "p-1", "uid": "uid-1", "type": "EXECUTOR"}]
    assert task["status_metadata"]["custom_properties"] == {"placement": placement}
    ray_task = graph.runtime(name="ray-task")
    body = {"state": "FAILED", "error_message": "boom", "placement": {"ray_task_id": "t-9"}}
    task = ok(graph.finish(ray_task, body))
    assert task["pods"] == [{"uid": "t-9", "type": "EXECUTOR"}]
    assert task["status_metadata"]["message"] == "boom"


def test_a_task_finishes_once(graph: Graph) -> None:
    task_id = graph.runtime()
    ok(graph.finish(task_id, {"state": "SUCCEEDED", "output_parameters": {"Output": 1}}))
    again = graph.finish(task_id, {"state": "SUCCEEDED", "output_parameters": {"Output": 2}})
    assert again.status_code == 409, again.text
    assert "already ended" in again.json()["message"]
    late = graph.append(task_id, "late text")
    assert late.status_code == 409
    assert graph.get(task_id)["outputs"]["parameters"][0]["value"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "state": "SUCCEEDED",
                "output_artifacts": [{"key": "m", "schema_title": "system.Metrics"}],
            },
            "number_value",
        ),
        ({"state": "DONE"}, "state"),
        ({"state": "SUCCEEDED", "unknown": 1}, "unknown field"),
        ({"state": "SUCCEEDED", "output_artifacts": [{"name": "no key"}]}, "key"),
    ],
)
def test_bad_reports_are_rejected_and_change_nothing(
    graph: Graph, body: dict[str, Any], message: str
) -> None:
    task_id = graph.runtime()
    body = {**body, "output_parameters": {"Output": 1}, "log_uri": "file:///l"}
    response = graph.finish(task_id, body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    task = graph.get(task_id)
    assert task["state"] == "RUNNING"
    assert "outputs" not in task or not task["outputs"].get("parameters")
    links = ok(graph.api.get(f"{API}/artifact_tasks", params={"task_ids": task_id}))
    assert links.get("artifact_tasks", []) == []


def test_reports_need_a_token_for_their_run(graph: Graph) -> None:
    task_id = graph.runtime()
    other = {"Authorization": f"Bearer {issue_run_token(graph.secret, 'another-run')}"}
    forged = {"Authorization": f"Bearer {graph.run_id}.AAAA"}
    cases = [({}, 401), ({"Authorization": "Basic abc"}, 401), (forged, 401), (other, 403)]
    for headers, status in cases:
        for response in (
            graph.finish(task_id, {"state": "SUCCEEDED"}, headers),
            graph.append(task_id, "x", headers),
        ):
            assert response.status_code == status, (headers, response.text)
            assert response.json()["code"] == (16 if status == 401 else 7)
    assert graph.get(task_id)["state"] == "RUNNING"
    assert graph.read(task_id)["text"] == ""


def test_logs_stream_while_running_and_complete_after(graph: Graph) -> None:
    task_id = graph.runtime()
    ok(graph.append(task_id, "line 1\n"))
    ok(graph.append(task_id, "línea 2\n"))
    log = graph.read(task_id)
    assert log == {"text": "line 1\nlínea 2\n", "next_offset": 16, "complete": False}
    part = graph.read(task_id, offset=7, limit_bytes=2)  # "l" + half of "í"
    assert part == {"text": "l", "next_offset": 8, "complete": False}
    assert graph.read(task_id, offset=16)["text"] == ""
    ok(
        graph.finish(
            task_id, {"state": "SUCCEEDED", "output_parameters": {"Output": 1}, "log_text": "end\n"}
        )
    )
    head = graph.read(task_id, limit_bytes=7)
    assert head == {"text": "line 1\n", "next_offset": 7, "complete": False}, "more to read"
    rest = graph.read(task_id, offset=7)
    assert rest == {"text": "línea 2\nend\n", "next_offset": 20, "complete": True}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"offset": "-1"}, 400),
        ({"offset": "x"}, 400),
        ({"limit_bytes": "0"}, 400),
        ({"limit_bytes": "999999999"}, 400),
    ],
)
def test_bad_log_reads(graph: Graph, params: dict[str, str], status: int) -> None:
    task_id = graph.runtime()
    response = graph.api.get(f"{API}/runs/{graph.run_id}/tasks/{task_id}/logs", params=params)
    assert response.status_code == status, response.text


def test_unknown_tasks_and_finished_runs(graph: Graph) -> None:
    missing = graph.api.get(f"{API}/runs/{graph.run_id}/tasks/nope/logs")
    assert missing.status_code == 404
    assert graph.finish("nope", {"state": "SUCCEEDED"}).status_code == 404
    assert graph.append("nope", "x").status_code == 404
    other = Graph(graph.api, graph.tmp_path)
    foreign = other.runtime()  # a task of another run, reported under this run's path
    refused = graph.finish(foreign, {"state": "SUCCEEDED"})
    assert refused.status_code == 404 and "not found in run" in refused.json()["message"]
    assert other.get(foreign)["state"] == "RUNNING"
    task_id = graph.runtime()
    ok(graph.api.post(f"{API}/runs/{graph.run_id}:terminate"))
    response = graph.finish(task_id, {"state": "SUCCEEDED"})
    assert response.status_code == 409, response.text
    assert graph.read(task_id)["complete"] is True


def test_the_python_client_speaks_these_endpoints(graph: Graph) -> None:
    from kfpd.client.http import KfpdApiError, KfpdClient
    from kfpd.schemas.launch import FinishTaskRequest

    task_id = graph.runtime()
    token = issue_run_token(graph.secret, graph.run_id)
    transport = graph.api._transport  # the app behind the TestClient
    with KfpdClient("http://127.0.0.1", token=token, transport=transport) as client:
        client.append_log(graph.run_id, task_id, "hello\n")
        assert client.read_log(graph.run_id, task_id).text == "hello\n"
        request = FinishTaskRequest(state="SUCCEEDED", output_parameters={"Output": 5})
        task = client.finish_task(graph.run_id, task_id, request)
        assert task.state is not None and task.state.name == "SUCCEEDED"
        log = client.read_log(graph.run_id, task_id, offset=2, limit_bytes=100)
        assert (log.text, log.next_offset, log.complete) == ("llo\n", 6, True)
        with pytest.raises(KfpdApiError) as info:
            client.finish_task(graph.run_id, task_id, request)
        assert info.value.status == 409


def test_deleting_a_run_deletes_its_logs(graph: Graph) -> None:
    task_id = graph.runtime()
    ok(graph.append(task_id, "hello\n"))
    assert graph.read(task_id)["text"] == "hello\n"
    log_dir = graph.tmp_path / "logs" / graph.run_id
    assert log_dir.is_dir()
    ok(graph.api.delete(f"{API}/runs/{graph.run_id}"))
    assert not log_dir.exists()
    assert graph.api.get(f"{API}/runs/{graph.run_id}/tasks/{task_id}/logs").status_code == 404
