"""A task killed by Ray's memory monitor becomes a FAILED task whose message says OOM, on a
real two-node cluster of its own (tests/ray_cluster.py) whose worker node runs with
``RAY_memory_usage_threshold`` set 1 GB above the machine's memory use once the head runs
(the worker node's own processes take a part of that): a component taking 100 MB every
0.1 s crosses it after some hundred MB (at most 3 GB: the machine is shared), Ray kills the
worker, and the guard kills the component; the task's retry policy runs it once more (killed
again).

Marked ``ray`` (``make test-ray``); ~30 s, most of it starting the cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from tests.conftest import _free_port, _serve
from tests.ray_cluster import RayCluster, memory_threshold_just_above_now
from tests.test_executor_ray import _alive, _submit, _wait_state

pytestmark = pytest.mark.ray

if os.environ.get("CI") != "true" and os.environ.get("KFPD_TEST_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="the Ray tests need `pip install 'kfpd[ray]'`")

MARGIN = 1024 * 2**20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import ray

    if ray.is_initialized():  # connected to another module's cluster: not this one
        ray.shutdown()
    cluster = RayCluster()
    data = tmp_path_factory.mktemp("ray-oom")
    url = f"sqlite:///{data / 'kfpd.sqlite'}"
    upgrade(url)
    database = Database(url)
    try:
        cluster.start_head()
        # Measured with the head running; the worker node's own processes take part of it.
        threshold = memory_threshold_just_above_now(MARGIN)
        cluster.start_worker(
            env={
                "RAY_memory_usage_threshold": f"{threshold:.4f}",
                "RAY_memory_monitor_refresh_ms": "100",
            }
        )
        port = _free_port()
        settings = Settings(data_dir=data, port=port, executor="ray", ray_address=cluster.address)
        uvicorn_server, thread = _serve(create_app(settings, database=database), port)
        yield f"http://127.0.0.1:{port}"
        uvicorn_server.should_exit = True
        thread.join(timeout=60)
    finally:
        database.dispose()
        cluster.stop()


def test_a_task_killed_by_rays_memory_monitor_fails_saying_oom(server: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "hog.pid"
    run_id = _submit(server, tmp_path, "hog", pid_file=str(pid_file))
    # Others share this machine: their memory may cross the threshold before the component
    # has even written its pid (Ray then kills the worker earlier). Either way: OOM.
    run = _wait_state(server, run_id, 120)
    assert run["state"] == "FAILED", run
    (task,) = [t for t in run["tasks"] if t["type"] == "RUNTIME"]
    # Retried once by its retry policy (Ray itself never retries), killed again.
    history = task["state_history"]
    assert [h["state"] for h in history] == ["RUNNING", "FAILED", "RUNNING", "FAILED"], history
    for message in (history[1]["error"]["message"], task["status_metadata"]["message"]):
        assert message.startswith("OOM: Ray's memory monitor killed the task's worker"), message
        assert "exceeded threshold" in message and "not killed after" not in message, message
        assert len(message) < 600, "Ray's object-store and process report is left out"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the component outlived its OOM-killed Ray worker"
