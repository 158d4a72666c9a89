"""Real pipelines through kfp.Client on a kfpd server with its local executor (real launcher
processes, warm worker), on SQLite, PostgreSQL and MariaDB: outputs, the run graph, a user
error with its log tail, terminate of a running run, and `kfpd run --wait`."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import yaml
from typer.testing import CliRunner

from kfpd.cli.main import app as cli
from tests.helpers import compiled


def _client(url: str) -> Any:
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=url)


def _full(url: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}", params={"view": "FULL"})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _submit(url: str, tmp_path: Path, name: str, **arguments: Any) -> str:
    path = tmp_path / f"{name.replace(':', '_')}.yaml"
    path.write_text(yaml.safe_dump(compiled(name)))
    run = _client(url).create_run_from_pipeline_package(str(path), arguments=arguments)
    return str(run.run_id)


def _outputs(task: dict[str, Any]) -> dict[str, Any]:
    return {
        p["parameter_key"]: p.get("value")
        for p in (task.get("outputs") or {}).get("parameters", [])
    }


def test_control_flow_runs_for_real(orchestrated_server: Any, tmp_path: Path) -> None:
    url = orchestrated_server()
    run_id = _submit(url, tmp_path, "control_flow", n=3)
    finished = _client(url).wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1)
    assert finished.state == "SUCCEEDED"
    run = _full(url, run_id)
    tasks = run["tasks"]
    root = next(t for t in tasks if t["type"] == "ROOT")
    assert _outputs(root) == {"Output": "big:12:None"}
    adds = sorted(_outputs(t)["Output"] for t in tasks if t["name"] == "add")
    assert adds == [11, 12, 13, 21, 22, 23]
    total = next(
        t for t in tasks if t["name"] == "total" and t["parent_task_id"] == root["task_id"]
    )
    values = next(p for p in total["inputs"]["parameters"] if p["parameter_key"] == "values")
    assert values == {**values, "value": [2, 4, 6], "type": "COLLECTED_INPUTS"}
    # Every container task kept its log as the executor-logs artifact.
    for task in tasks:
        if task["type"] == "RUNTIME":
            keys = {io["artifact_key"] for io in task["outputs"]["artifacts"]}
            assert "executor-logs" in keys


def test_user_error_shows_message_and_log_tail(orchestrated_server: Any, tmp_path: Path) -> None:
    url = orchestrated_server()
    run_id = _submit(url, tmp_path, "lifecycle:exit_after_failure", message="kaboom-42")
    finished = _client(url).wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1)
    assert finished.state == "FAILED"
    run = _full(url, run_id)
    failed = next(t for t in run["tasks"] if t["name"] == "fail-op")
    assert failed["state"] == "FAILED"
    assert "kaboom-42" in failed["status_metadata"]["message"]
    assert "kaboom-42" in run["error"]["message"]
    log = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}/tasks/{failed['task_id']}/logs").json()
    assert "RuntimeError: kaboom-42" in log["text"] and log["complete"] is True
    exit_task = next(t for t in run["tasks"] if t["name"] == "exit-op")
    assert exit_task["state"] == "SUCCEEDED"
    assert _outputs(exit_task) == {"Output": "cleanup:FAILED"}


def test_terminate_kills_the_running_process(orchestrated_server: Any, tmp_path: Path) -> None:
    url = orchestrated_server()
    run_id = _submit(url, tmp_path, "lifecycle:slow_pipeline", seconds=60)
    deadline = time.monotonic() + 60
    while True:
        tasks = _full(url, run_id).get("tasks", [])
        slow = [t for t in tasks if t["name"] == "slow"]
        if slow:
            log = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}/tasks/{slow[0]['task_id']}/logs")
            if log.status_code == 200:
                break
        assert time.monotonic() < deadline, "slow task never started"
        time.sleep(0.1)
    started = time.monotonic()
    httpx.post(f"{url}/apis/v2beta1/runs/{run_id}:terminate").raise_for_status()
    run = _full(url, run_id)
    assert run["state"] == "CANCELED"
    assert next(t for t in run["tasks"] if t["name"] == "slow")["state"] == "CANCELED"
    assert time.monotonic() - started < 30, "terminate waited for the task to finish"


def test_cli_run_wait(orchestrated_server: Any) -> None:
    url = orchestrated_server()
    source = Path(__file__).parent / "pipelines" / "control_flow.py"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(source),
            "--function",
            "control_flow",
            "-p",
            "n=2",
            "--experiment",
            "cli",
            "--wait",
            "--host",
            url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "run SUCCEEDED" in result.output
    run_id = result.output.split("run ", 1)[1].split()[0]
    listed = CliRunner().invoke(cli, ["runs", "list", "--host", url])
    assert listed.exit_code == 0 and run_id[:8] in listed.output
    shown = CliRunner().invoke(cli, ["runs", "get", run_id, "--host", url])
    assert shown.exit_code == 0 and "for-loop-1" in shown.output and "SUCCEEDED" in shown.output
    failing = Path(__file__).parent / "pipelines" / "lifecycle.py"
    result = CliRunner().invoke(
        cli,
        ["run", str(failing), "--function", "exit_after_failure", "--wait", "--host", url],
    )
    assert result.exit_code == 1, result.output
    assert "run FAILED" in result.output
    failed_id = result.output.split("run ", 1)[1].split()[0]
    logs = CliRunner().invoke(cli, ["runs", "logs", failed_id, "--task", "fail-op", "--host", url])
    assert logs.exit_code == 0 and "RuntimeError: boom" in logs.output
    bad = CliRunner().invoke(
        cli, ["run", str(source), "--function", "control_flow", "-p", "n=x", "--host", url]
    )
    assert bad.exit_code != 0 and "NUMBER_INTEGER" in bad.output


def test_retry_succeeds_on_the_second_attempt(orchestrated_server: Any, tmp_path: Path) -> None:
    url = orchestrated_server()
    marker = tmp_path / "attempted"
    run_id = _submit(url, tmp_path, "real_lifecycle:retry_once", marker=str(marker))
    finished = _client(url).wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1)
    assert finished.state == "SUCCEEDED"
    task = next(t for t in _full(url, run_id)["tasks"] if t["name"] == "fail-once")
    assert [h["state"] for h in task["state_history"]] == [
        "RUNNING",
        "FAILED",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert "first attempt fails on purpose" in task["state_history"][1]["error"]["message"]
    assert _outputs(task) == {"Output": "second attempt"}
    log = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}/tasks/{task['task_id']}/logs").json()
    assert "first attempt fails on purpose" in log["text"]  # both attempts' output is kept


def test_server_restart_mid_run_resumes(orchestrated_server: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    marker = tmp_path / "started"
    first = orchestrated_server(data_dir=data_dir, on_stop="cancel")
    run_id = _submit(first, tmp_path, "real_lifecycle:restartable", marker=str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    orchestrated_server.stop(first)  # on_stop=cancel: the task's process goes with the server

    second = orchestrated_server(data_dir=data_dir, on_stop="cancel")
    finished = _client(second).wait_for_run_completion(run_id, timeout=120, sleep_duration=0.1)
    tasks = _full(second, run_id)["tasks"]
    assert finished.state == "SUCCEEDED", [
        (t["name"], t["state_history"]) for t in tasks if t["name"] == "hang-once"
    ]
    hang = next(t for t in tasks if t["name"] == "hang-once")
    history = [h["state"] for h in hang["state_history"]]
    # The retry was decided while the first server stopped (no slot: PENDING); the second
    # server started it.
    assert history == ["RUNNING", "FAILED", "PENDING", "RUNNING", "SUCCEEDED"]
    assert "the server stopped" in hang["state_history"][1]["error"]["message"]
    assert _outputs(hang) == {"Output": "resumed"}
    step = next(t for t in tasks if t["name"] == "first-step")
    assert [h["state"] for h in step["state_history"]] == ["RUNNING", "SUCCEEDED"]
