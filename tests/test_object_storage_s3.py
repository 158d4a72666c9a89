"""Pipelines on a real S3 server (SeaweedFS, tests/s3server.py) through kfpd's launcher config.

A kfpd server with the local executor (real launcher processes) and a kfp-launcher style
configuration: artifacts go to the bucket, per-run pipeline_root wins, minio:// works,
per-prefix overrides pick their credentials, the UI previews S3 bytes, and the secret values
never show up in the database, task logs, task directories or API answers. SQLite only: the
database matrix is covered elsewhere, and storage does not depend on the dialect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
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
from tests.s3server import S3Server, s3_server  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.s3

ADMIN_SECRET = "kfpd-s3-admin"
TEAM_SECRET = "kfpd-s3-team"
BAD_SECRET = "kfpd-s3-wrong"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'kfpd.sqlite'}"
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def _write_secrets(data_dir: Path, server: S3Server) -> None:
    secrets = data_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    entries = {
        ADMIN_SECRET: (server.admin.access_key, server.admin.secret_key),
        TEAM_SECRET: (server.team_b.access_key, server.team_b.secret_key),
        BAD_SECRET: (server.admin.access_key, "not-the-secret-key"),
    }
    for name, (access, secret) in entries.items():
        path = secrets / f"{name}.json"
        path.write_text(json.dumps({"accesskey": access, "secretkey": secret}))
        path.chmod(0o600)


def _creds(secret: str) -> dict[str, Any]:
    return {
        "secretRef": {
            "secretName": secret,
            "accessKeyKey": "accesskey",
            "secretKeyKey": "secretkey",
        }
    }


def launcher_config(server: S3Server, root: str) -> dict[str, Any]:
    """The kfp-launcher ConfigMap data: providers as a YAML string, as in Kubernetes."""
    s3 = {
        "default": {
            "endpoint": server.host_port,
            "region": "us-east-1",
            "disableSSL": True,
            "forcePathStyle": True,
            "credentials": _creds(ADMIN_SECRET),
        },
        "overrides": [
            {"bucketName": server.team_bucket, "credentials": _creds(TEAM_SECRET)},
            {"bucketName": server.bucket, "keyPrefix": "locked", "credentials": _creds(BAD_SECRET)},
        ],
    }
    minio = {"default": {**s3["default"], "region": "minio"}}
    return {"defaultPipelineRoot": root, "providers": yaml.safe_dump({"s3": s3, "minio": minio})}


@pytest.fixture
def s3_kfpd(
    s3_server: S3Server,  # noqa: F811
    sqlite_db: Database,
    tmp_path: Path,
) -> Iterator[Callable[..., str]]:
    """``url = s3_kfpd(root)``: a kfpd whose defaultPipelineRoot is ``root``."""
    started: list[Any] = []

    def start(root: str) -> str:
        data_dir = tmp_path / f"kfpd-{len(started)}"
        data_dir.mkdir()
        _write_secrets(data_dir, s3_server)
        config = data_dir / "kfp-launcher.yaml"
        config.write_text(yaml.safe_dump(launcher_config(s3_server, root)))
        port = _free_port()
        settings = Settings(data_dir=data_dir, port=port, launcher_config=config)
        app = create_app(settings, database=sqlite_db)
        started.append(_serve(app, port))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=20)


def submit(url: str, name: str, pipeline_root: str | None = None, **params: Any) -> str:
    runtime: dict[str, Any] = {"parameters": params}
    if pipeline_root:
        runtime["pipeline_root"] = pipeline_root
    body = {"display_name": name, "pipeline_spec": compiled(name), "runtime_config": runtime}
    response = httpx.post(f"{url}/apis/v2beta1/runs", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def wait(url: str, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}", params={"view": "FULL"}).json()
        if run["state"] in ("SUCCEEDED", "FAILED", "CANCELED"):
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def artifacts_of(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every output artifact of a FULL run view."""
    return [
        art
        for task in run["tasks"]
        for io in (task.get("outputs") or {}).get("artifacts") or []
        for art in io.get("artifacts") or []
    ]


def failure(run: dict[str, Any]) -> str:
    return "; ".join(
        f"{t['name']}: {(t.get('status_metadata') or {}).get('message', '')}"
        for t in run["tasks"]
        if t["state"] == "FAILED"
    )


def test_pipeline_with_s3_root_writes_its_artifacts_to_the_bucket(
    s3_kfpd: Callable[..., str],
    s3_server: S3Server,  # noqa: F811
) -> None:
    root = f"s3://{s3_server.bucket}/v2/artifacts"
    url = s3_kfpd(root)
    run_id = submit(url, "storage_demo", rows=5)
    run = wait(url, run_id)
    assert run["state"] == "SUCCEEDED", failure(run)
    uris = {a["uri"] for a in artifacts_of(run) if a.get("uri")}
    assert uris, "no artifact URIs recorded"
    assert all(u.startswith(f"{root}/storage-demo/{run_id}/") for u in uris), uris
    fs = s3_server.filesystem()
    data = next(u for u in uris if u.endswith("/data"))
    assert fs.cat(data.removeprefix("s3://")).decode().splitlines()[:2] == ["x,y", "0,0"]
    model = next(u for u in uris if u.endswith("/model"))
    assert fs.cat(model.removeprefix("s3://") + "/weights.txt") == b"slope=2.0\n"
    assert any(u.endswith("/executor-logs") for u in uris)
    root_task = next(t for t in run["tasks"] if t["type"] == "ROOT")
    outputs = {p["parameter_key"]: p["value"] for p in root_task["outputs"]["parameters"]}
    assert outputs == {"Output": "5:slope=2.0"}
