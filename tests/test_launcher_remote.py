"""Artifacts on a non-file store go through fsspec: downloaded before the command runs,
uploaded after (here fsspec's in-memory filesystem, with the launcher run in-process)."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from kfpd.launcher.main import EXIT_REPORTED, Launcher
from kfpd.schemas.launch import OutputArtifactSpec, RuntimeArtifactSpec
from tests.launching import Server, compile_component
from tests.pipelines import launch_components as comps


@pytest.fixture
def memory() -> fsspec.AbstractFileSystem:
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/kfpd-remote"):
        fs.rm("/kfpd-remote", recursive=True)


def test_remote_inputs_outputs_and_log(
    live_server: str, tmp_path: Path, memory: fsspec.AbstractFileSystem
) -> None:
    server = Server(live_server, tmp_path)
    ir = compile_component(comps.shell_op)
    run_id, task_id = server.new_task(ir)
    memory.pipe("/kfpd-remote/in/data", b"remote text")
    spec = server.spec(
        ir,
        run_id,
        task_id,
        tmp_path,
        params={"text": "got"},
        inputs={"data": [RuntimeArtifactSpec(name="data", uri="memory://kfpd-remote/in/data")]},
    )
    spec = spec.model_copy(
        update={
            "output_artifacts": {
                "out": OutputArtifactSpec(
                    name="out", uri="memory://kfpd-remote/out/out", schema_title="system.Dataset"
                )
            },
            "log_uri": "memory://kfpd-remote/out/executor-logs",
            "work_dir": str(tmp_path / "work"),
        }
    )
    assert Launcher(spec).run() == EXIT_REPORTED
    assert memory.cat("/kfpd-remote/out/out") == b"got remote text\n"
    assert b"args: --no-opt" in memory.cat("/kfpd-remote/out/executor-logs")
    task = server.task(run_id, task_id)
    assert task["state"] == "SUCCEEDED", task.get("status_metadata")
    groups = {g["artifact_key"]: g["artifacts"] for g in task["outputs"]["artifacts"]}
    assert groups["out"][0]["uri"] == "memory://kfpd-remote/out/out"
    assert groups["executor-logs"][0]["uri"] == "memory://kfpd-remote/out/executor-logs"


def test_a_missing_remote_input_fails_the_task(live_server: str, tmp_path: Path) -> None:
    server = Server(live_server, tmp_path)
    ir = compile_component(comps.shell_op)
    run_id, task_id = server.new_task(ir)
    spec = server.spec(
        ir,
        run_id,
        task_id,
        tmp_path,
        params={"text": "x"},
        inputs={"data": [RuntimeArtifactSpec(name="data", uri="memory://kfpd-remote/none")]},
    ).model_copy(update={"work_dir": str(tmp_path / "work")})
    assert Launcher(spec).run() == EXIT_REPORTED
    task = server.task(run_id, task_id)
    assert task["state"] == "FAILED"
    assert task["status_metadata"]["message"] == (
        "input artifact 'memory://kfpd-remote/none' does not exist"
    )
