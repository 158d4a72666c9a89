"""End to end: components compiled with the kfp SDK, run by the LocalExecutor (warm and cold)
through the real launcher, reporting to a live kfpd server on each database."""

from __future__ import annotations

import functools
import os
import signal
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kfpd.executors.local import WORKER_DEATHS_TO_GIVE_UP, LocalExecutor
from kfpd.schemas.launch import RuntimeArtifactSpec
from tests.launching import Exits, Server, compile_component
from tests.pipelines import launch_components as comps


@functools.cache
def ir_of(name: str) -> dict[str, Any]:
    return compile_component(getattr(comps, name))


@pytest.fixture
def server(live_server: str, tmp_path: Path) -> Server:
    return Server(live_server, tmp_path)  # live_server keeps its data in tmp_path


@pytest.fixture(params=["warm", "cold"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(
        max_parallel=4,
        work_root=tmp_path / "work",
        warm=request.param == "warm",
        on_stop="cancel",  # a test ending mid-task leaves nothing running
    )
    yield ex
    ex.shutdown()


def _outputs(task: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    outputs = task.get("outputs") or {}
    params = {p["parameter_key"]: p["value"] for p in outputs.get("parameters", [])}
    arts = {g["artifact_key"]: g["artifacts"] for g in outputs.get("artifacts", [])}
    return params, arts


def _path(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri[len("file://") :])


def test_tasks_run_and_report(server: Server, executor: LocalExecutor, tmp_path: Path) -> None:
    root = tmp_path / "pipeline-root"
    exits = Exits()
    first = {
        "add_one": {"x": 41},
        "produce": {"text": "ab"},
        "fail": {"msg": "boom"},
        "missing_command": {},
    }
    tasks: dict[str, tuple[str, str]] = {}
    for name, params in first.items():
        run_id, task_id = server.new_task(ir_of(name))
        tasks[name] = run_id, task_id
        executor.submit(server.spec(ir_of(name), run_id, task_id, root, params=params), exits)
    for _, task_id in tasks.values():
        assert exits.wait(task_id).reported, exits.exits[task_id]

    task = server.task(*tasks["add_one"])
    params, arts = _outputs(task)
    assert task["state"] == "SUCCEEDED"
    assert params == {"Output": 42}
    [log_artifact] = arts["executor-logs"]
    assert "Wrote executor output file" in _path(log_artifact["uri"]).read_text()
    log = server.log(*tasks["add_one"])
    assert log["complete"] and "Wrote executor output file" in log["text"]

    task = server.task(*tasks["produce"])
    params, arts = _outputs(task)
    assert task["state"] == "SUCCEEDED", task.get("status_metadata")
    assert params == {"Output": "AB", "count": 7}
    [data] = arts["data"]
    assert data["type"] == "Dataset" and data["metadata"] == {"rows": 2}
    assert _path(data["uri"]).read_text() == "abab"
    metrics = sorted((m["name"], m["type"], m["number_value"]) for m in arts["metrics"])
    assert metrics == [("accuracy", "Metric", 0.9), ("loss", "Metric", 0.25)]
    [roc] = arts["roc"]
    assert roc["type"] == "ClassificationMetric"
    assert roc["metadata"]["confusionMatrix"]["rows"] == [{"row": [1, 2]}, {"row": [3, 4]}]
    [sliced] = arts["sliced"]
    assert sliced["type"] == "SlicedClassificationMetric" and "uri" not in sliced
    assert sliced["metadata"] == {"evaluationSlices": [{"slice": "all", "confidenceMetrics": []}]}
    assert "producing ab" in server.log(*tasks["produce"])["text"]

    task = server.task(*tasks["fail"])
    assert task["state"] == "FAILED"
    message = task["status_metadata"]["message"]
    # The user's exception leads; the process outcome and the log tail follow.
    assert message.startswith("ValueError: boom\n(the command exited with code 1); last lines")
    assert "ValueError: boom" in server.log(*tasks["fail"])["text"]

    task = server.task(*tasks["missing_command"])
    assert task["state"] == "FAILED"
    assert task["status_metadata"]["message"] == (
        "command 'kfpd-no-such-command' not found on this host "
        "(the local executor ignores image 'example.com/tool:1')"
    )

    # Second wave: consumers of produce's dataset (a lightweight and a container component).
    dataset = RuntimeArtifactSpec(
        artifact_id=data["artifact_id"],
        name="data",
        uri=data["uri"],
        schema_title="system.Dataset",
        metadata=data["metadata"],
    )
    second = {
        "consume": ("consume", {}),
        "shell_with_opt": ("shell_op", {"text": "hi", "opt": "X"}),
        "shell_without_opt": ("shell_op", {"text": "hi"}),
    }
    for key, (name, params) in second.items():
        run_id, task_id = server.new_task(ir_of(name))
        tasks[key] = run_id, task_id
        spec = server.spec(
            ir_of(name), run_id, task_id, root, params=params, inputs={"data": [dataset]}
        )
        executor.submit(spec, exits)
    for key in second:
        assert exits.wait(tasks[key][1]).reported

    params, _ = _outputs(server.task(*tasks["consume"]))
    assert params == {"Output": "abab|2"}
    for key, opt, arg in (
        ("shell_with_opt", "X", "--opt X"),
        ("shell_without_opt", "none", "--no-opt"),
    ):
        task = server.task(*tasks[key])
        assert task["state"] == "SUCCEEDED", task.get("status_metadata")
        params, arts = _outputs(task)
        assert params == {"out_param": opt}
        assert _path(arts["out"][0]["uri"]).read_text() == "hi abab\n"
        assert f"args: {arg}" in server.log(*tasks[key])["text"]


def _wait_for_log(server: Server, run_id: str, task_id: str, text: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = server.log(run_id, task_id)
        if text in log["text"]:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the log of {task_id}")


def _gone(pgid: int) -> bool:
    """No process of the group is left (killed processes take a moment to be reaped)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_cancel_kills_and_deaths_are_reported(
    server: Server, executor: LocalExecutor, tmp_path: Path
) -> None:
    root = tmp_path / "pipeline-root"
    exits = Exits()
    ir = ir_of("sleepy")

    # The log is readable while the task runs; cancel kills the launcher's whole group.
    run_id, canceled = server.new_task(ir)
    executor.submit(server.spec(ir, run_id, canceled, root, params={"seconds": 60.0}), exits)
    log = _wait_for_log(server, run_id, canceled, "started")
    assert log["complete"] is False
    pgid = executor.launcher_pid(canceled)
    assert pgid is not None
    executor.cancel(canceled)
    exit_ = exits.wait(canceled, timeout=10)
    assert exit_.returncode is not None and exit_.returncode < 0
    assert exit_.reason == "canceled"
    assert _gone(pgid)
    assert server.task(run_id, canceled)["state"] == "RUNNING", "the orchestrator decides"

    # The launcher dies on its own: the executor notices, and nothing is left running.
    run_id, killed = server.new_task(ir)
    executor.submit(server.spec(ir, run_id, killed, root, params={"seconds": 60.0}), exits)
    _wait_for_log(server, run_id, killed, "started")
    pgid = executor.launcher_pid(killed)
    assert pgid is not None
    os.kill(pgid, signal.SIGKILL)
    exit_ = exits.wait(killed, timeout=10)
    assert exit_.returncode == -signal.SIGKILL
    assert exit_.reason is not None and exit_.reason.startswith("the launcher killed by SIGKILL")
    assert _gone(pgid)

    # The component's process dies: the launcher reports the task FAILED with the reason.
    run_id, suicide = server.new_task(ir_of("self_kill"))
    executor.submit(server.spec(ir_of("self_kill"), run_id, suicide, root), exits)
    assert exits.wait(suicide).reported
    task = server.task(run_id, suicide)
    assert task["state"] == "FAILED"
    assert task["status_metadata"]["message"].startswith("the command killed by SIGKILL")
    assert "about to die" in task["status_metadata"]["message"]

    # Shutting down with on_stop=cancel stops what still runs, and reports it.
    run_id, last = server.new_task(ir)
    executor.submit(server.spec(ir, run_id, last, root, params={"seconds": 60.0}), exits)
    _wait_for_log(server, run_id, last, "started")
    executor.on_stop = "cancel"
    executor.shutdown()
    assert exits.wait(last, timeout=10).reason == "canceled: the server stopped (on_stop=cancel)"
    assert sorted(exits.calls) == sorted([canceled, killed, suicide, last]), "each exit once"


def test_parallel_limit_and_queue(server: Server, tmp_path: Path) -> None:
    executor = LocalExecutor(max_parallel=1, work_root=tmp_path / "work")
    exits = Exits()
    ir = ir_of("sleepy")
    try:
        ids = []
        for _ in range(3):
            run_id, task_id = server.new_task(ir)
            ids.append(task_id)
            executor.submit(
                server.spec(ir, run_id, task_id, tmp_path, params={"seconds": 0.5}), exits
            )
        executor.cancel(ids[2])  # still queued behind the first two
        queued = exits.wait(ids[2], timeout=5)
        assert (queued.returncode, queued.reason) == (None, "canceled before it started")
        assert executor.launcher_pid(ids[1]) is None, "waits for a free slot"
        assert exits.wait(ids[0]).reported and exits.wait(ids[1]).reported
        assert exits.calls == [ids[2], ids[0], ids[1]]
    finally:
        executor.shutdown()


def _kill_worker_during_a_task(
    executor: LocalExecutor, server: Server, tmp_path: Path, exits: Exits
) -> None:
    ir = ir_of("sleepy")
    run_id, task_id = server.new_task(ir)
    executor.submit(server.spec(ir, run_id, task_id, tmp_path, params={"seconds": 60.0}), exits)
    _wait_for_log(server, run_id, task_id, "started")
    pgid = executor.launcher_pid(task_id)
    worker = executor.worker_pid
    assert worker is not None and pgid is not None
    os.kill(worker, signal.SIGKILL)
    exit_ = exits.wait(task_id, timeout=10)
    assert (exit_.returncode, exit_.reason) == (None, "the local executor's warm worker died")
    assert _gone(pgid), "its launcher is not left behind"
    assert executor.worker_pid != worker


def _run_add_one(executor: LocalExecutor, server: Server, tmp_path: Path, exits: Exits) -> None:
    ir = ir_of("add_one")
    run_id, task_id = server.new_task(ir)
    executor.submit(server.spec(ir, run_id, task_id, tmp_path, params={"x": 1}), exits)
    assert exits.wait(task_id).reported
    assert _outputs(server.task(run_id, task_id))[0] == {"Output": 2}


def test_a_warm_worker_that_dies_is_replaced(server: Server, tmp_path: Path) -> None:
    executor = LocalExecutor(max_parallel=2, work_root=tmp_path / "work")
    exits = Exits()
    try:
        _kill_worker_during_a_task(executor, server, tmp_path, exits)
        assert executor.warm and executor.worker_pid is not None, "a new worker took over"
        _run_add_one(executor, server, tmp_path, exits)
    finally:
        executor.shutdown()
    assert not executor.warm, "shutdown stops the new worker too"


def test_tasks_start_cold_once_the_warm_worker_keeps_dying(server: Server, tmp_path: Path) -> None:
    executor = LocalExecutor(max_parallel=2, work_root=tmp_path / "work")
    exits = Exits()
    try:
        for _ in range(WORKER_DEATHS_TO_GIVE_UP):
            _kill_worker_during_a_task(executor, server, tmp_path, exits)
        assert not executor.warm and executor.worker_pid is None
        _run_add_one(executor, server, tmp_path, exits)
    finally:
        executor.shutdown()


def _probe_wheel(directory: Path) -> Path:
    """A tiny wheel made on the spot, so installing it needs no network."""
    wheel = directory / "kfpd_probe-1.0-py3-none-any.whl"
    files = {
        "kfpd_probe/__init__.py": 'GREETING = "hello"\n',
        "kfpd_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: kfpd-probe\nVersion: 1.0\n",
        "kfpd_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: kfpd-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "kfpd_probe-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("kfpd_probe-1.0.dist-info/RECORD", record)
    return wheel


@pytest.fixture(scope="session")
def venv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("venvs")


@pytest.fixture(scope="session")
def probe_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _probe_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow
def test_packages_to_install_run_in_a_shared_virtualenv(
    server: Server, tmp_path: Path, venv_root: Path, probe_wheel: Path
) -> None:
    ir = compile_component(comps.with_packages([str(probe_wheel)]))
    executor = LocalExecutor(max_parallel=2, work_root=tmp_path / "work", venv_root=venv_root)
    exits = Exits()
    try:
        ids = []
        for x in (1, 2):  # at once: one builds the virtualenv, the other waits for it
            run_id, task_id = server.new_task(ir)
            ids.append((run_id, task_id))
            executor.submit(server.spec(ir, run_id, task_id, tmp_path, params={"x": x}), exits)
        for (run_id, task_id), x in zip(ids, (1, 2), strict=True):
            assert exits.wait(task_id, timeout=300).reported
            task = server.task(run_id, task_id)
            assert task["state"] == "SUCCEEDED", task.get("status_metadata")
            assert _outputs(task)[0] == {"Output": f"hello {x}"}
        venvs = [p for p in venv_root.iterdir() if p.is_dir()]
        assert len(venvs) == 1, "one virtualenv per requirement set, shared by tasks and runs"
        logs = [server.log(*ids[0])["text"], server.log(*ids[1])["text"]]
        assert sum("creating virtualenv" in text for text in logs) <= 1
    finally:
        executor.shutdown()
