"""Restarts lose nothing: real ``kfpd server`` processes on one port, data dir and database,
stopped with kill -9, with SIGTERM and with SIGTERM under ``--on-stop drain`` while a task
runs; the task runs once and the run completes by itself (the launcher outlives the server,
the next server adopts it; a task queued at the drain is launched by the next server). A task
waiting for an executor slot is PENDING until it gets one, across a restart too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kfpd.executors import pidfile
from tests.conftest import DB_PREFIX, fresh_database_url
from tests.helpers import compiled

pytestmark = [pytest.mark.slow, pytest.mark.needs_orchestrator]

KFPD = Path(sys.executable).with_name("kfpd")
API = "/apis/v2beta1"


class ServerProcess:
    """``kfpd server`` on a fixed port, started again and again on the same data."""

    def __init__(self, data_dir: Path, db_url: str, port: int) -> None:
        self.data_dir, self.db_url, self.port = data_dir, db_url, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *extra: str) -> None:
        self.starts += 1
        log = self.data_dir / f"server-{self.starts}.log"
        cmd = [str(KFPD), "server", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        cmd += ["--db-url", self.db_url, "--log-level", "info", *(extra or ("--on-stop", "leave"))]
        with log.open("wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180  # a machine busy with other suites is slow
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kfpd server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self, sig: signal.Signals, timeout: float = 20) -> float:
        """Send ``sig``; return how long the server took to exit."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout)
        return time.monotonic() - began

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + API + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, worker_id: str
) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    db_url = fresh_database_url(request.param, tmp_path, f"{DB_PREFIX}_restart_{worker_id}")
    proc = ServerProcess(data_dir, db_url, _free_port())
    proc.start()
    yield proc
    if proc.process is not None and proc.process.poll() is None:
        proc.process.kill()
        proc.process.wait()
    _kill_leftover_launchers(data_dir / "work")


def _kill_leftover_launchers(work: Path) -> None:
    for pid_file in work.glob(f"*/*/{pidfile.PID_FILE}"):
        identity = pidfile.read(pid_file.parent)
        if identity is not None and pidfile.is_running(identity):
            os.killpg(identity.pid, signal.SIGKILL)


def _submit(
    server: ServerProcess, pipeline: str = "restarts:survives_restarts", **arguments: Any
) -> str:
    spec = yaml.safe_dump(compiled(pipeline))
    upload = httpx.post(
        f"{server.url}{API}/pipelines/upload",
        files={"uploadfile": ("restarts.yaml", spec)},
        timeout=30,
    )
    upload.raise_for_status()
    pipeline_id = upload.json()["pipeline_id"]
    versions = server.get(f"/pipelines/{pipeline_id}/versions")["pipeline_versions"]
    body = {
        "display_name": "survives restarts",
        "pipeline_version_reference": {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": versions[0]["pipeline_version_id"],
        },
        "runtime_config": {"parameters": arguments},
    }
    run = httpx.post(f"{server.url}{API}/runs", json=body, timeout=30)
    run.raise_for_status()
    return str(run.json()["run_id"])


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _task(server: ServerProcess, run_id: str, name: str) -> dict[str, Any]:
    tasks = server.get(f"/runs/{run_id}", view="FULL")["tasks"]
    return next(t for t in tasks if t["name"] == name)


def test_a_run_completes_across_kill_9_and_sigterm_restarts(
    server: ServerProcess, tmp_path: Path
) -> None:
    counter = tmp_path / "starts"
    run_id = _submit(server, counter=str(counter), seconds=20.0)
    _wait("the task to start", counter.exists, 120)

    server.stop(signal.SIGKILL)
    server.start()
    time.sleep(1.0)  # the new server adopted the task: nothing fails meanwhile
    assert server.get(f"/runs/{run_id}")["state"] == "RUNNING"
    assert _task(server, run_id, "slow-counted")["state"] == "RUNNING"

    assert server.stop(signal.SIGTERM, timeout=60) < 30
    server.start("--on-stop", "drain")
    assert _task(server, run_id, "slow-counted")["state"] == "RUNNING"

    # --on-stop drain: SIGTERM keeps the server answering until the running task ended
    # (its report lands here); the follow-up it unblocks waits for the next server.
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.process.poll() is None, "still draining"
    assert server.get(f"/runs/{run_id}")["state"] == "RUNNING"
    Path(f"{counter}.release").touch()  # the task may end once its 20 s are up
    server.process.wait(60)
    server.start()

    def finished() -> bool:
        state: str = server.get(f"/runs/{run_id}")["state"]
        return state in ("SUCCEEDED", "FAILED", "CANCELED")

    _wait("the run to finish", finished, 180)
    slow = _task(server, run_id, "slow-counted")
    assert server.get(f"/runs/{run_id}")["state"] == "SUCCEEDED", slow["state_history"]
    assert [h["state"] for h in slow["state_history"]] == ["RUNNING", "SUCCEEDED"]
    assert counter.read_text().count("started") == 1, "the task ran once"
    follow = _task(server, run_id, "follow-up")
    assert follow["state"] == "SUCCEEDED"
    outputs = {p["parameter_key"]: p.get("value") for p in follow["outputs"]["parameters"]}
    assert outputs == {"Output": "slept and continued"}


def test_a_task_waiting_for_a_slot_is_pending_until_it_starts_even_across_a_restart(
    server: ServerProcess, tmp_path: Path
) -> None:
    server.stop(signal.SIGKILL)
    one_slot = ("--on-stop", "leave", "--max-parallel", "1")
    server.start(*one_slot)
    counters = [tmp_path / "first", tmp_path / "second"]
    run_id = _submit(
        server, "restarts:two_counted", first=str(counters[0]), second=str(counters[1])
    )

    def states() -> dict[str, str]:
        tasks = server.get(f"/runs/{run_id}", view="FULL")["tasks"]
        return {t["task_id"]: t["state"] for t in tasks if t["name"].startswith("slow-counted")}

    _wait("a task to start", lambda: any(c.exists() for c in counters), 120)
    started, queued = counters if counters[0].exists() else counters[::-1]
    _wait("two tasks", lambda: len(states()) == 2, 30)
    assert sorted(states().values()) == ["PENDING", "RUNNING"]
    assert server.get(f"/runs/{run_id}")["state"] == "RUNNING"

    # A restart while one runs and the other waits: the first is adopted, the second is
    # still waiting for the one slot, and starts once the first ends.
    assert server.stop(signal.SIGTERM, timeout=60) < 30
    server.start(*one_slot)
    time.sleep(1.0)
    assert sorted(states().values()) == ["PENDING", "RUNNING"]
    assert not queued.exists(), "the queued task has not started"

    Path(f"{started}.release").touch()
    _wait("the queued task to start", queued.exists, 120)
    _wait("the queued task to be RUNNING", lambda: "PENDING" not in states().values(), 30)
    assert "RUNNING" in states().values()
    Path(f"{queued}.release").touch()

    def finished() -> bool:
        state: str = server.get(f"/runs/{run_id}")["state"]
        return state in ("SUCCEEDED", "FAILED", "CANCELED")

    _wait("the run to finish", finished, 180)
    assert server.get(f"/runs/{run_id}")["state"] == "SUCCEEDED"
    tasks = server.get(f"/runs/{run_id}", view="FULL")["tasks"]
    histories = sorted(
        [h["state"] for h in t["state_history"]]
        for t in tasks
        if t["name"].startswith("slow-counted")
    )
    assert histories == [["PENDING", "RUNNING", "SUCCEEDED"], ["RUNNING", "SUCCEEDED"]]
    for counter in counters:
        assert counter.read_text().count("started") == 1, "each task ran once"
