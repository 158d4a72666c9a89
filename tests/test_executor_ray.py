"""The Ray executor on a real two-node Ray cluster started here (tests/ray_cluster.py): the head
has no CPUs, so every task runs on the worker node. A pipeline with artifacts succeeds and
records where its tasks ran; terminate cancels the Ray task and kills the component; losing the
worker node mid-task fails the task with Ray's reason within 60 s.

Artifacts live under an s3:// pipeline root on a real S3 server (SeaweedFS, tests/s3server.py),
as they would on a multi-machine cluster. Run with ``make test-ray`` (``.ci/run``
does); marked ``ray`` and left out of the parallel ``make test``."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from tests.conftest import _free_port, _serve
from tests.helpers import compiled
from tests.ray_cluster import RayCluster
from tests.s3server import S3Server, s3_server  # noqa: F401  (the session fixture)
from tests.test_object_storage_s3 import _write_secrets, launcher_config

pytestmark = pytest.mark.ray

if os.environ.get("CI") != "true" and os.environ.get("KFPD_TEST_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="the Ray tests need `pip install 'kfpd[ray]'`")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    ray_cluster = RayCluster()
    try:
        ray_cluster.start()
        yield ray_cluster
    finally:
        ray_cluster.stop()


@pytest.fixture(scope="module")
def server(
    cluster: RayCluster,
    s3_server: S3Server,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    data = tmp_path_factory.mktemp("ray-server")
    url = f"sqlite:///{data / 'kfpd.sqlite'}"
    upgrade(url)
    database = Database(url)
    port = _free_port()
    _write_secrets(data, s3_server)
    config = data / "kfp-launcher.yaml"
    root = f"s3://{s3_server.bucket}/ray"
    config.write_text(yaml.safe_dump(launcher_config(s3_server, root)))
    settings = Settings(
        data_dir=data,
        port=port,
        executor="ray",
        ray_address=cluster.address,
        launcher_config=config,
    )
    app = create_app(settings, database=database)
    uvicorn_server, thread = _serve(app, port)
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=60)
    database.dispose()


def _client(url: str) -> Any:
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=url)


def _submit(url: str, tmp_path: Path, name: str, **arguments: Any) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(compiled(f"ray_pipelines:{name}")))
    run = _client(url).create_run_from_pipeline_package(str(path), arguments=arguments)
    return str(run.run_id)


def _run(url: str, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}", params={"view": "FULL"})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _wait_state(url: str, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _run(url, run_id)
        if run["state"] in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {_run(url, run_id)['state']} after {timeout} s")


def _wait_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear in {timeout} s")


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _worker_node_id() -> str:
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    assert len(nodes) == 1, nodes
    return str(nodes[0]["NodeID"])


def test_pipeline_with_artifacts_runs_on_the_worker_node(
    server: str,
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    run_id = _submit(server, tmp_path, "artifacts", text="hello ray")
    run = _wait_state(server, run_id, 120)
    assert run["state"] == "SUCCEEDED", run
    writer = next(t for t in run["tasks"] if t["name"] == "write-text")
    (data,) = [a for a in writer["outputs"]["artifacts"] if a["artifact_key"] == "data"]
    artifact = httpx.get(f"{server}/apis/v2beta1/artifacts/{data['artifacts'][0]['artifact_id']}")
    uri = artifact.json()["uri"]
    assert uri.startswith(f"s3://{s3_server.bucket}/ray/"), uri
    assert s3_server.filesystem().cat(uri.removeprefix("s3://")) == b"hello ray"
    root = next(t for t in run["tasks"] if t["type"] == "ROOT")
    outputs = {p["parameter_key"]: p["value"] for p in root["outputs"]["parameters"]}
    assert outputs == {"Output": "HELLO RAY"}
    worker = _worker_node_id()
    runtime = [t for t in run["tasks"] if t["type"] == "RUNTIME"]
    assert len(runtime) == 2
    for task in runtime:
        placement = task["status_metadata"]["custom_properties"]["placement"]
        assert placement["executor"] == "ray"
        assert placement["ray_node_id"] == worker
        assert task["pods"][0]["uid"] == placement["ray_task_id"] != ""


def test_terminate_cancels_the_ray_task(server: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    run_id = _submit(server, tmp_path, "sleep", pid_file=str(pid_file), seconds=600)
    pid = int(_wait_file(pid_file, 90))
    assert _alive(pid)
    _client(server).terminate_run(run_id)
    run = _wait_state(server, run_id, 30)
    assert run["state"] == "CANCELED", run
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the component outlived the canceled Ray task"


def test_losing_the_worker_node_fails_the_task(
    server: str, cluster: RayCluster, tmp_path: Path
) -> None:
    pid_file = tmp_path / "sleeper.pid"
    run_id = _submit(server, tmp_path, "sleep", pid_file=str(pid_file), seconds=600)
    _wait_file(pid_file, 90)
    cluster.kill_worker_node()
    lost_at = time.monotonic()
    run = _wait_state(server, run_id, 60)
    assert time.monotonic() - lost_at < 60
    assert run["state"] == "FAILED", run
    task = next(t for t in run["tasks"] if t["type"] == "RUNTIME")
    assert task["state"] == "FAILED"
    message = task["status_metadata"]["message"]
    assert "Ray task failed" in message, message
