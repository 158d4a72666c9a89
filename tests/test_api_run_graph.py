"""Record a whole run graph through the HTTP task/artifact API, the way a launcher would,
then read it back and check the server's status roll-up and terminal-run guard."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import compiled, ok

API = "/apis/v2beta1"


def _task(api: TestClient, run_id: str, **fields: Any) -> dict[str, Any]:
    body = {"state": "RUNNING", **fields}
    return ok(api.post(f"{API}/runs/{run_id}/tasks", json=body))


def _finish(api: TestClient, run_id: str, task_id: str, **fields: Any) -> dict[str, Any]:
    body = {"state": "SUCCEEDED", "end_time": "2026-01-01T00:00:00Z", **fields}
    return ok(api.patch(f"{API}/runs/{run_id}/tasks/{task_id}", json=body))


def _artifacts(
    api: TestClient, run_id: str, task_id: str, *items: dict[str, Any]
) -> list[dict[str, Any]]:
    reqs = [{"run_id": run_id, "task_id": task_id, **item} for item in items]
    return ok(api.post(f"{API}/artifacts:batchCreate", json={"artifacts": reqs}))["artifacts"]


def _link(api: TestClient, **link: Any) -> dict[str, Any]:
    return ok(api.post(f"{API}/artifact_tasks", json={"artifact_task": link}))


def test_launcher_style_run_graph_rolls_up_and_locks(api: TestClient) -> None:
    spec = compiled("graph_demo")
    run = ok(api.post(f"{API}/runs", json={"display_name": "graph", "pipeline_spec": spec}))
    run_id = run["run_id"]
    assert run["state"] == "PENDING"

    root = _task(
        api,
        run_id,
        name="ROOT",
        type="ROOT",
        scope_path="root",
        inputs={
            "parameters": [
                {
                    "parameter_key": "threshold",
                    "value": 1,
                    "type": "RUNTIME_VALUE_INPUT",
                    "producer": {"task_name": "ROOT"},
                }
            ]
        },
    )
    assert ok(api.get(f"{API}/runs/{run_id}"))["state"] == "RUNNING"

    # make-data: a runtime task with a Dataset and a Metric output.
    make = _task(
        api,
        run_id,
        name="make-data",
        type="RUNTIME",
        scope_path="root.make-data",
        parent_task_id=root["task_id"],
    )
    again = _task(
        api,
        run_id,
        name="make-data",
        type="RUNTIME",
        scope_path="root.make-data",
        parent_task_id=root["task_id"],
    )
    assert again["task_id"] == make["task_id"], "CreateTask is idempotent by logical key"
    dataset, metric = _artifacts(
        api,
        run_id,
        make["task_id"],
        {
            "producer_key": "data",
            "artifact": {
                "name": "data",
                "type": "Dataset",
                "uri": "file:///tmp/data",
                "metadata": {"rows": 3},
            },
        },
        {
            "producer_key": "metrics",
            "artifact": {"name": "rows", "type": "Metric", "number_value": 3},
        },
    )
    _finish(
        api,
        run_id,
        make["task_id"],
        outputs={
            "parameters": [
                {
                    "parameter_key": "Output",
                    "value": 3,
                    "type": "OUTPUT",
                    "producer": {"task_name": "make-data"},
                }
            ]
        },
    )
    assert ok(api.get(f"{API}/runs/{run_id}"))["state"] == "RUNNING"

    # for-loop-2: LOOP with two LOOP_ITERATION children, each with a square task.
    loop = _task(
        api,
        run_id,
        name="for-loop-2",
        display_name="Loop",
        type="LOOP",
        scope_path="root.for-loop-2",
        parent_task_id=root["task_id"],
        type_attributes={"iteration_count": "2"},
    )
    squares = []
    for i in range(2):
        iteration = _task(
            api,
            run_id,
            name="for-loop-2",
            type="LOOP_ITERATION",
            scope_path="root.for-loop-2",
            parent_task_id=loop["task_id"],
            type_attributes={"iteration_index": i},
        )
        sq = _task(
            api,
            run_id,
            name="square",
            type="RUNTIME",
            scope_path="root.for-loop-2.square",
            parent_task_id=iteration["task_id"],
            type_attributes={"iteration_index": str(i)},
            inputs={
                "parameters": [
                    {
                        "parameter_key": "x",
                        "value": i + 1,
                        "type": "ITERATOR_INPUT",
                        "producer": {"task_name": "for-loop-2", "iteration": i},
                    }
                ]
            },
        )
        _link(
            api,
            artifact_id=dataset["artifact_id"],
            task_id=sq["task_id"],
            run_id=run_id,
            type="COMPONENT_INPUT",
            producer={"task_name": "make-data"},
            key="data",
        )
        _finish(
            api,
            run_id,
            sq["task_id"],
            outputs={
                "parameters": [
                    {
                        "parameter_key": "Output",
                        "value": (i + 1) ** 2,
                        "type": "ITERATOR_OUTPUT",
                        "producer": {"task_name": "square", "iteration": i},
                    }
                ]
            },
        )
        squares.append(sq)
        state = ok(api.get(f"{API}/runs/{run_id}/tasks/{iteration['task_id']}"))["state"]
        assert state == "SUCCEEDED", "an iteration rolls up when its only task finishes"
    assert ok(api.get(f"{API}/runs/{run_id}/tasks/{loop['task_id']}"))["state"] == "SUCCEEDED"
    assert ok(api.get(f"{API}/runs/{run_id}"))["state"] == "RUNNING", "condition-3 has not run yet"

    # condition-3 (branch taken) -> inner (nested pipeline DAG) -> summarize.
    cond = _task(
        api,
        run_id,
        name="condition-3",
        type="CONDITION_BRANCH",
        scope_path="root.condition-3",
        parent_task_id=root["task_id"],
    )
    inner = _task(
        api,
        run_id,
        name="inner",
        type="DAG",
        scope_path="root.condition-3.inner",
        parent_task_id=cond["task_id"],
    )
    summ = _task(
        api,
        run_id,
        name="summarize",
        type="RUNTIME",
        scope_path="root.condition-3.inner.summarize",
        parent_task_id=inner["task_id"],
        inputs={
            "parameters": [
                {
                    "parameter_key": "values",
                    "value": [1, 4],
                    "type": "COLLECTED_INPUTS",
                    "producer": {"task_name": "for-loop-2"},
                }
            ]
        },
    )
    _link(
        api,
        artifact_id=dataset["artifact_id"],
        task_id=summ["task_id"],
        run_id=run_id,
        type="TASK_OUTPUT_INPUT",
        producer={"task_name": "make-data"},
        key="data",
    )
    # The summary is produced as a ONE_OF_OUTPUT-typed link (kfpd honours the requested type).
    (summary,) = _artifacts(
        api,
        run_id,
        summ["task_id"],
        {
            "producer_key": "report",
            "type": "ONE_OF_OUTPUT",
            "artifact": {"name": "report", "type": "Markdown", "uri": "file:///tmp/r.md"},
        },
    )
    _finish(api, run_id, summ["task_id"])

    final = ok(api.get(f"{API}/runs/{run_id}", params={"view": "FULL"}))
    assert final["state"] == "SUCCEEDED"
    assert final["finished_at"]
    assert [h["state"] for h in final["state_history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert final["task_count"] == 10
    by_id = {t["task_id"]: t for t in final["tasks"]}
    assert len(by_id) == 10
    assert all(t["state"] == "SUCCEEDED" for t in final["tasks"])
    assert {by_id[root["task_id"]]["type"], by_id[loop["task_id"]]["type"]} == {"ROOT", "LOOP"}
    root_children = {c["name"] for c in by_id[root["task_id"]]["child_tasks"]}
    assert root_children == {"make-data", "for-loop-2", "condition-3"}
    make_out = by_id[make["task_id"]]["outputs"]
    assert {a["artifact_key"]: a["type"] for a in make_out["artifacts"]} == {
        "data": "OUTPUT",
        "metrics": "OUTPUT",
    }
    assert make_out["parameters"][0]["value"] == 3
    sq0 = by_id[squares[0]["task_id"]]
    assert sq0["type_attributes"]["iteration_index"] == "0"
    assert sq0["inputs"]["artifacts"][0]["artifacts"][0]["artifact_id"] == dataset["artifact_id"]
    assert sq0["inputs"]["artifacts"][0]["type"] == "COMPONENT_INPUT"
    assert by_id[summ["task_id"]]["outputs"]["artifacts"][0]["type"] == "ONE_OF_OUTPUT"
    assert by_id[summ["task_id"]]["inputs"]["parameters"][0]["value"] == [1, 4]

    # ListTasks by parent, paged.
    page1 = ok(
        api.get(f"{API}/runs/{run_id}/tasks", params={"parent_id": loop["task_id"], "page_size": 1})
    )
    assert page1["total_size"] == 2 and len(page1["tasks"]) == 1
    page2 = ok(
        api.get(
            f"{API}/runs/{run_id}/tasks",
            params={"parent_id": loop["task_id"], "page_token": page1["next_page_token"]},
        )
    )
    assert {t["type_attributes"]["iteration_index"] for t in page1["tasks"] + page2["tasks"]} == {
        "0",
        "1",
    }
    assert "next_page_token" not in page2

    # ListArtifactTasks by IO type.
    def links(io_type: str) -> list[dict[str, Any]]:
        return ok(api.get(f"{API}/artifact_tasks", params={"run_ids": run_id, "type": io_type}))[
            "artifact_tasks"
        ]

    assert len(links("OUTPUT")) == 2
    assert {x["task_id"] for x in links("COMPONENT_INPUT")} == {s["task_id"] for s in squares}
    assert [x["artifact_id"] for x in links("ONE_OF_OUTPUT")] == [summary["artifact_id"]]
    assert len(links("TASK_OUTPUT_INPUT")) == 1
    by_artifact = ok(
        api.get(f"{API}/artifact_tasks", params=[("artifact_ids", dataset["artifact_id"])])
    )
    assert by_artifact["total_size"] == 4  # 1 producer + 2 loop consumers + 1 summary consumer

    # The run is finished: writes to its tasks and links are refused.
    refused = api.patch(f"{API}/runs/{run_id}/tasks/{summ['task_id']}", json={"state": "FAILED"})
    assert refused.status_code == 409
    assert "SUCCEEDED" in refused.json()["message"]
    assert (
        api.post(
            f"{API}/runs/{run_id}/tasks", json={"name": "late", "state": "RUNNING"}
        ).status_code
        == 409
    )
    late_link = {
        "artifact_id": metric["artifact_id"],
        "task_id": summ["task_id"],
        "run_id": run_id,
        "type": "TASK_OUTPUT_INPUT",
        "producer": {"task_name": "make-data"},
        "key": "m",
    }
    assert api.post(f"{API}/artifact_tasks", json={"artifact_task": late_link}).status_code == 409

    # Deleting the run removes tasks and links; artifacts stay.
    ok(api.delete(f"{API}/runs/{run_id}"))
    assert api.get(f"{API}/runs/{run_id}").status_code == 404
    assert ok(api.get(f"{API}/artifacts/{dataset['artifact_id']}"))["name"] == "data"
    assert ok(api.get(f"{API}/artifact_tasks", params={"run_ids": run_id}))["total_size"] == 0


def test_failure_rolls_up_but_waits_for_exit_handler_style_tasks(api: TestClient) -> None:
    """A failed task fails its DAG; the run stays open while a sibling can still run."""
    spec = compiled("graph_demo")
    run_id = ok(api.post(f"{API}/runs", json={"display_name": "f", "pipeline_spec": spec}))[
        "run_id"
    ]
    root = _task(api, run_id, name="ROOT", type="ROOT", scope_path="root")
    make = _task(
        api,
        run_id,
        name="make-data",
        type="RUNTIME",
        scope_path="root.make-data",
        parent_task_id=root["task_id"],
    )
    failed = ok(
        api.patch(
            f"{API}/runs/{run_id}/tasks/{make['task_id']}",
            json={"state": "FAILED", "status_metadata": {"message": "boom"}},
        )
    )
    assert failed["state"] == "FAILED"
    # for-loop-2 and condition-3 depend on make-data and can never start: the root fails now.
    run = ok(api.get(f"{API}/runs/{run_id}"))
    assert run["state"] == "FAILED"
    assert "boom" in run["error"]["message"]
    retried = api.post(f"{API}/runs/{run_id}:retry")
    assert retried.status_code == 200
    after = ok(api.get(f"{API}/runs/{run_id}", params={"view": "FULL"}))
    assert after["state"] == "RUNNING"
    assert {t["state"] for t in after["tasks"]} == {"RUNNING"}
