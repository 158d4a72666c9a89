"""``python -m kfpd.launcher``: the spec from stdin or a file, and its exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kfpd.domain.tokens import issue_run_token
from tests.launching import Server, compile_component
from tests.pipelines import launch_components as comps


def _launch(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfpd.launcher", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unreadable_spec_exits_2(tmp_path: Path) -> None:
    result = _launch("{not json")
    assert result.returncode == 2
    assert "cannot read the launch spec" in result.stderr
    result = _launch("", "--spec", str(tmp_path / "absent.json"))
    assert result.returncode == 2


def test_spec_on_stdin_and_a_refused_report(live_server: str, tmp_path: Path) -> None:
    server = Server(live_server, tmp_path)
    ir = compile_component(comps.add_one)
    run_id, task_id = server.new_task(ir)
    spec = server.spec(ir, run_id, task_id, tmp_path, params={"x": 1})
    wrong = spec.model_copy(update={"token": issue_run_token(server.secret, "other-run")})
    result = _launch(wrong.model_dump_json())
    assert result.returncode == 3
    assert "refused the report" in result.stderr and "another run" in result.stderr
    assert server.task(run_id, task_id)["state"] == "RUNNING"

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    result = _launch("", "--spec", str(spec_file), "--tee")
    assert result.returncode == 0, result.stderr
    assert "Wrote executor output file" in result.stdout  # --tee copies the task's log
    task = server.task(run_id, task_id)
    assert task["state"] == "SUCCEEDED"
    assert task["outputs"]["parameters"][0]["value"] == 2
