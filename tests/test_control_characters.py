"""NUL and other control characters in names, keys and URIs: the same clear 400 on every
database (PostgreSQL cannot store NUL in text; SQLite and MySQL could), nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kfpd.config import Settings
from kfpd.domain.tokens import issue_run_token
from tests.helpers import JSON, compiled, ok

API = "/apis/v2beta1"
BAD = ["nul\x00name", "new\nline", "bell\x07", "del\x7f", "c1\x85"]


def _refused(answer: Any, fragment: str | None = None) -> None:
    """400, saying why: "NUL characters" (any body field) or "control characters"."""
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    if fragment is None:
        assert "NUL characters" in message or "control characters" in message, message
    else:
        assert fragment in message, message


@pytest.mark.parametrize("bad", BAD)
def test_names_with_control_characters(api: TestClient, bad: str) -> None:
    spec = compiled("cross_site:touch_pipeline")
    _refused(api.post(f"{API}/experiments", json={"display_name": bad}))
    _refused(api.post(f"{API}/pipelines", json={"display_name": bad}))
    _refused(api.post(f"{API}/runs", json={"display_name": bad, "pipeline_spec": spec}))
    files = {"uploadfile": ("p.json", json.dumps(spec).encode())}
    _refused(api.post(f"{API}/pipelines/upload", files=files, params={"name": bad}))
    renamed = {**spec, "pipelineInfo": {"name": bad}}
    _refused(api.post(f"{API}/runs", json={"display_name": "r", "pipeline_spec": renamed}))
    version = {"display_name": "v", "package_url": {"pipeline_url": f"file:///tmp/{bad}.yaml"}}
    pipeline = ok(api.post(f"{API}/pipelines", json={"display_name": "p"}))
    _refused(api.post(f"{API}/pipelines/{pipeline['pipeline_id']}/versions", json=version))
    assert ok(api.get(f"{API}/runs")).get("runs") in (None, [])
    assert [p["display_name"] for p in ok(api.get(f"{API}/pipelines"))["pipelines"]] == ["p"]


def test_task_and_artifact_fields(api: TestClient, tmp_path: Path) -> None:
    spec = compiled("cross_site:touch_pipeline")
    params = {"path": "x"}
    run = ok(
        api.post(
            f"{API}/runs",
            json={
                "display_name": "r",
                "pipeline_spec": spec,
                "runtime_config": {"parameters": params},
            },
        )
    )
    run_id = run["run_id"]
    token = issue_run_token(Settings(data_dir=tmp_path).run_token_secret(), run_id)
    auth = {"Authorization": f"Bearer {token}"}
    tasks = f"{API}/runs/{run_id}/tasks"
    for bad in BAD:
        _refused(api.post(tasks, json={"name": bad, "state": "RUNNING"}, headers=auth))
    task = ok(api.post(tasks, json={"name": "t", "state": "RUNNING", "type": "ROOT"}, headers=auth))
    for bad in BAD:
        artifact = {
            "artifact": {"name": "a", "uri": f"file:///tmp/{bad}", "type": "Dataset"},
            "run_id": run_id,
            "task_id": task["task_id"],
            "producer_key": "out",
        }
        _refused(api.post(f"{API}/artifacts", json=artifact, headers=auth))
    assert ok(api.get(f"{API}/artifacts")).get("artifacts") in (None, [])


def test_nul_anywhere_in_a_body_path_or_query(api: TestClient) -> None:
    # A free-text field takes newlines, not NUL (whatever the field, as raw JSON).
    ok(api.post(f"{API}/experiments", json={"display_name": "e", "description": "two\nlines"}))
    body = json.dumps({"display_name": "f", "description": "nul\x00"}).encode()
    _refused(api.post(f"{API}/experiments", content=body, headers=JSON), "NUL")
    # An escaped backslash before "u0000" is not a NUL.
    literal = json.dumps({"display_name": "g", "description": "\\u0000"}).encode()
    assert (
        ok(api.post(f"{API}/experiments", content=literal, headers=JSON))["description"]
        == "\\u0000"
    )
    _refused(api.get(f"{API}/runs/abc%00def"), "URLs")
    _refused(api.get(f"{API}/runs", params={"filter": "x\x00"}), "URLs")
    names = sorted(e["display_name"] for e in ok(api.get(f"{API}/experiments"))["experiments"])
    assert names == ["Default", "e", "g"]
