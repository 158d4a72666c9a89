"""What scripts written for upstream KFP read: run_details, 501 for known endpoints kfpd lacks."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient

from tests.helpers import compiled


def test_get_run_fills_run_details_task_details(orchestrated_server: Any, tmp_path: Path) -> None:
    import kfp

    url = orchestrated_server()
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(compiled("lifecycle:cacheable")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = kfp.Client(host=url)
    run_id = client.create_run_from_pipeline_package(
        str(path), arguments={"text": "compat"}, enable_caching=False
    ).run_id
    assert client.wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1).state == (
        "SUCCEEDED"
    )
    run = client.get_run(run_id)  # the SDK's default view, as scripts call it
    details = run.run_details.task_details
    by_name = {d.display_name: d for d in details}
    assert {"make-dataset", "read-dataset"} <= set(by_name)
    maker, reader = by_name["make-dataset"], by_name["read-dataset"]
    assert maker.state == "SUCCEEDED" and maker.run_id == run_id and maker.task_id
    assert maker.start_time <= maker.end_time
    produced = maker.outputs["data"].artifact_ids
    assert len(produced) == 1
    assert reader.inputs["data"].artifact_ids == produced  # lineage readable from details
    assert any(d.child_tasks for d in details)  # the root lists its children
    raw = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}").json()
    assert "tasks" not in raw  # DEFAULT view still leaves the FULL-only task list out
    full = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}", params={"view": "FULL"}).json()
    for task in full["tasks"]:
        if task["type"] == "RUNTIME":  # a local process, named as one (no made-up pod)
            [pod] = task["pods"]
            assert re.fullmatch(r"local process \d+ on \S+", pod["name"]), pod


def test_known_upstream_endpoints_answer_501(api: TestClient) -> None:
    for method, path in [
        ("GET", "/apis/v1beta1/runs"),
        ("POST", "/apis/v1beta1/pipelines/upload"),
        ("GET", "/apis/v2beta1/visualizations"),
        ("POST", "/apis/v2beta1/visualizations/ns"),
        ("GET", "/apis/v2beta1/runs/r1/nodes/n1/artifacts/a:read"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 501, (method, path, response.text)
        body = response.json()
        assert body["code"] == 12, body
        assert "not implemented" in body["message"] or "no visualization" in body["message"]
    # Paths no KFP version has stay 404.
    assert api.get("/apis/v3/whatever").status_code == 404


def test_compare_shows_each_runs_task_count(api: TestClient) -> None:
    spec = compiled("control_flow")
    ids = []
    for name in ("a", "b"):
        run = api.post("/apis/v2beta1/runs", json={"display_name": name, "pipeline_spec": spec})
        assert run.status_code == 200, run.text
        ids.append(run.json()["run_id"])
    root = {"display_name": "root", "type": "ROOT", "state": "RUNNING"}
    from kfpd.config import Settings
    from kfpd.domain.tokens import issue_run_token

    secret = Settings(data_dir=Path(api.app.state.settings.data_dir)).run_token_secret()
    token = issue_run_token(secret, ids[0])
    made = api.post(
        f"/apis/v2beta1/runs/{ids[0]}/tasks",
        json=root,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 200, made.text
    answer = api.get("/ui/api/compare", params=[("run_ids", i) for i in ids]).json()
    counts = {r["run"]["run_id"]: r["run"].get("task_count", 0) for r in answer["runs"]}
    assert counts == {ids[0]: 1, ids[1]: 0}


def test_the_readme_example_pipeline_runs(orchestrated_server: Any) -> None:
    """examples/hello_pipeline.py through `kfpd run --wait`, as the README shows it."""
    from typer.testing import CliRunner

    from kfpd.cli.main import app as cli

    url = orchestrated_server()
    example = Path(__file__).resolve().parents[1] / "examples" / "hello_pipeline.py"
    result = CliRunner().invoke(cli, ["run", str(example), "-p", "rows=5", "--wait", "--host", url])
    assert result.exit_code == 0, result.output
    runs = httpx.get(f"{url}/apis/v2beta1/runs", params={"view": "FULL"}).json()["runs"]
    [run] = runs
    assert run["state"] == "SUCCEEDED"
    root = next(t for t in run["tasks"] if t["type"] == "ROOT")
    [output] = root["outputs"]["parameters"]
    assert output["value"] == 6.0  # mean of 0, 1, 4, 9, 16


def test_run_graph_labels_loop_iterations_with_their_items(
    orchestrated_server: Any, tmp_path: Path
) -> None:
    import kfp

    url = orchestrated_server()
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(compiled("control_flow")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = kfp.Client(host=url)
    run_id = client.create_run_from_pipeline_package(str(path), arguments={"n": 2}).run_id
    assert client.wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1).state == (
        "SUCCEEDED"
    )
    graph = httpx.get(f"{url}/ui/api/runs/{run_id}/graph").json()
    items = sorted(
        (t["iteration"], t["item"]) for t in graph["tasks"] if t["type"] == "LOOP_ITERATION"
    )
    # Outer loop over [1, 2], inner over [10, 20] (twice): each iteration knows its item.
    assert items.count((0, "10")) == 2 and items.count((1, "20")) == 2
    assert (0, "1") in items and (1, "2") in items
