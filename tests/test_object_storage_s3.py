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
from sqlalchemy import select

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.db.models import Artifact, ArtifactTask
from kfpd.executors.local import LocalExecutor
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

    def start(root: str, executor: Any = None) -> str:
        data_dir = tmp_path / f"kfpd-{len(started)}"
        data_dir.mkdir()
        _write_secrets(data_dir, s3_server)
        config = data_dir / "kfp-launcher.yaml"
        config.write_text(yaml.safe_dump(launcher_config(s3_server, root)))
        port = _free_port()
        settings = Settings(data_dir=data_dir, port=port, launcher_config=config)
        if callable(executor):
            executor = executor(data_dir)
        app = create_app(settings, database=sqlite_db, executor=executor)
        started.append(_serve(app, port))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=20)


TIMEOUT = 60.0  # the machine may be busy: a slow answer is not a failure


def _get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT, **kwargs)


def _delete(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.delete(url, timeout=TIMEOUT, **kwargs)


def submit(url: str, name: str, pipeline_root: str | None = None, **params: Any) -> str:
    runtime: dict[str, Any] = {"parameters": params}
    if pipeline_root:
        runtime["pipeline_root"] = pipeline_root
    body = {"display_name": name, "pipeline_spec": compiled(name), "runtime_config": runtime}
    response = httpx.post(f"{url}/apis/v2beta1/runs", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


def wait(url: str, run_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _get(f"{url}/apis/v2beta1/runs/{run_id}", params={"view": "FULL"}).json()
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
    sqlite_db: Database,
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
    check_previews(url, run)
    check_recorded_sessions(sqlite_db, run_id)


def check_recorded_sessions(database: Database, run_id: str) -> None:
    """Every object-store artifact records upstream's store_session_info: references only."""
    with database.read_session() as s:
        rows = s.execute(
            select(Artifact.uri, Artifact.store_session_info)
            .join(ArtifactTask, ArtifactTask.artifact_id == Artifact.id)
            .where(ArtifactTask.run_id == run_id, Artifact.uri.is_not(None))
        ).all()
    assert rows
    for uri, info in rows:
        assert info["Provider"] == "s3", (uri, info)
        assert info["Params"]["secretName"] == ADMIN_SECRET
        assert info["Params"]["endpoint"].startswith("127.0.0.1:")
        assert set(info["Params"]) >= {"accessKeyKey", "secretKeyKey", "fromEnv", "region"}


def check_previews(url: str, run: dict[str, Any]) -> None:
    """The UI's API reads S3 artifacts: capped previews, streamed downloads, no escapes."""
    by_name = {a["name"]: a for a in artifacts_of(run)}
    api = f"{url}/ui/api/artifacts"
    data = _get(f"{api}/{by_name['data']['artifact_id']}/preview").json()
    assert data["kind"] == "csv" and data["text"].startswith("x,y\n0,0\n"), data
    assert data["store_session_info"]["Params"]["secretName"] == ADMIN_SECRET
    model = _get(f"{api}/{by_name['model']['artifact_id']}/preview").json()
    # A directory holding one file previews that file.
    assert (model["kind"], model["path"], model["text"]) == ("text", "weights.txt", "slope=2.0\n")
    content = _get(
        f"{api}/{by_name['model']['artifact_id']}/content",
        params={"path": "weights.txt", "download": "true"},
    )
    assert content.status_code == 200 and content.content == b"slope=2.0\n"
    assert "attachment" in content.headers["content-disposition"]
    assert "sandbox" in content.headers["content-security-policy"]
    escape = _get(f"{api}/{by_name['model']['artifact_id']}/preview", params={"path": "../data"})
    assert escape.status_code == 400, escape.text
    logs = _get(f"{api}/{by_name['executor-logs']['artifact_id']}/preview").json()
    assert logs["kind"] == "text" and logs["text"], logs


def test_run_pipeline_root_wins_and_bucket_overrides_pick_their_credentials(
    s3_kfpd: Callable[..., str],
    s3_server: S3Server,  # noqa: F811
) -> None:
    url = s3_kfpd(f"s3://{s3_server.bucket}/v2/artifacts")
    # team-b's override uses the team_b identity, which may only touch that bucket.
    root = f"s3://{s3_server.team_bucket}/per-run"
    run_id = submit(url, "storage_demo", pipeline_root=root, rows=2)
    run = wait(url, run_id)
    assert run["state"] == "SUCCEEDED", failure(run)
    uris = {a["uri"] for a in artifacts_of(run) if a.get("uri")}
    assert uris and all(u.startswith(f"{root}/storage-demo/{run_id}/") for u in uris), uris
    team = s3_server.filesystem(s3_server.team_b)
    assert team.ls(f"{s3_server.team_bucket}/per-run/storage-demo/{run_id}")


def test_a_prefix_override_with_a_wrong_key_is_refused_with_a_clear_task_error(
    s3_kfpd: Callable[..., str],
    s3_server: S3Server,  # noqa: F811
) -> None:
    url = s3_kfpd(f"s3://{s3_server.bucket}/v2/artifacts")
    # keyPrefix "locked" of the default bucket maps to a secret holding a wrong secret key.
    run_id = submit(url, "storage_demo", pipeline_root=f"s3://{s3_server.bucket}/locked/x", rows=1)
    run = wait(url, run_id)
    assert run["state"] == "FAILED"
    message = failure(run)
    assert "make-data" in message and "s3://kfpd-test/locked/x/" in message, message
    assert "could not upload" in message and "signature" in message, message
    assert not s3_server.filesystem().exists(f"{s3_server.bucket}/locked/x")


def test_minio_root_is_s3_at_the_configured_endpoint(
    s3_kfpd: Callable[..., str],
    s3_server: S3Server,  # noqa: F811
) -> None:
    url = s3_kfpd(f"minio://{s3_server.bucket}/minio-root")
    run_id = submit(url, "storage_demo", rows=3)
    run = wait(url, run_id)
    assert run["state"] == "SUCCEEDED", failure(run)
    uris = {a["uri"] for a in artifacts_of(run) if a.get("uri")}
    assert all(u.startswith(f"minio://{s3_server.bucket}/minio-root/") for u in uris), uris
    data = next(u for u in uris if u.endswith("/data"))
    fs = s3_server.filesystem()
    assert fs.cat(data.removeprefix("minio://")).startswith(b"x,y\n0,0\n")
    # Deleting the run with its objects: a dry run first lists them and deletes nothing.
    params = {"delete_artifacts": "true", "dry_run": "true"}
    dry = _delete(f"{url}/apis/v2beta1/runs/{run_id}", params=params)
    assert dry.status_code == 200, dry.text
    assert sorted(dry.json()["artifact_objects"]) == sorted(uris)
    assert fs.exists(data.removeprefix("minio://"))
    params["dry_run"] = "false"
    done = _delete(f"{url}/apis/v2beta1/runs/{run_id}", params=params).json()
    assert done["errors"] == [] and sorted(done["artifact_objects"]) == sorted(uris)
    fs.invalidate_cache()
    # (SeaweedFS may keep empty directory entries: what counts is that no object is left.)
    prefix = f"{s3_server.bucket}/minio-root/storage-demo/{run_id}"
    assert [key for key in fs.find(prefix) if key.rstrip("/") != prefix] == []
    assert _get(f"{url}/apis/v2beta1/runs/{run_id}").status_code == 404


def test_no_secret_value_is_written_or_answered(
    s3_kfpd: Callable[..., str],
    s3_server: S3Server,  # noqa: F811
    sqlite_db: Database,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def keeping(data_dir: Path) -> LocalExecutor:
        return LocalExecutor(max_parallel=2, work_root=data_dir / "work", keep_work_dirs=True)

    url = s3_kfpd(f"s3://{s3_server.bucket}/v2/artifacts", keeping)
    good = submit(url, "storage_demo", rows=2)
    bad = submit(url, "storage_demo", pipeline_root=f"s3://{s3_server.bucket}/locked/y", rows=1)
    runs = [wait(url, good), wait(url, bad)]
    assert [r["state"] for r in runs] == ["SUCCEEDED", "FAILED"]
    secrets = [s3_server.admin.secret_key, s3_server.team_b.secret_key, "not-the-secret-key"]
    haystacks: dict[str, str] = {}
    # API answers: runs, tasks, artifacts, the UI's views.
    for path in (
        f"/apis/v2beta1/runs/{good}?view=FULL",
        f"/apis/v2beta1/runs/{bad}?view=FULL",
        "/apis/v2beta1/runs",
        "/apis/v2beta1/artifacts?page_size=200",
        f"/apis/v2beta1/runs/{good}/tasks",
        f"/ui/api/runs/{good}/graph",
    ):
        haystacks[path] = _get(url + path).text
    # The database, every file kfpd wrote (task dirs with their launch specs and launcher
    # logs, task logs), except the secrets store itself, and what the process printed.
    with sqlite_db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        haystacks["database dump"] = "\n".join(raw.iterdump())
    files = [p for p in tmp_path.rglob("*") if p.is_file() and "secrets" not in p.parts]
    # (Launch specs are removed when a task ends; they never held credentials either.)
    assert any(p.name == "launcher.log" for p in files), "task dirs were not kept"
    assert any(p.suffix == ".log" for p in files)
    for path in files:
        haystacks[str(path)] = path.read_bytes().decode("utf-8", "replace")
    captured = capfd.readouterr()
    haystacks["process output"] = captured.out + captured.err
    leaks = [(where, s) for where, text in haystacks.items() for s in secrets if s in text]
    assert leaks == []


def test_retention_deletes_objects_with_the_configured_store(
    s3_server: S3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`kfpd gc` / the retention job reach minio:// and s3:// objects as the server does."""
    from kfpd.services import retention
    from kfpd.services.storage import Storage

    _write_secrets(tmp_path, s3_server)
    config = tmp_path / "kfp-launcher.yaml"
    config.write_text(yaml.safe_dump(launcher_config(s3_server, "s3://x")))
    storage = Storage.for_server(config, tmp_path / "artifacts", tmp_path / "secrets")
    fs = s3_server.filesystem()
    fs.pipe(f"{s3_server.bucket}/gc/one/data", b"1")
    fs.pipe(f"{s3_server.team_bucket}/gc/two/data", b"2")
    delete = retention.object_deleter(tmp_path / "artifacts", storage.locate)
    delete(f"minio://{s3_server.bucket}/gc/one")
    delete(f"s3://{s3_server.team_bucket}/gc/two/data")
    fs.invalidate_cache()
    assert not fs.exists(f"{s3_server.bucket}/gc/one/data")
    assert not fs.exists(f"{s3_server.team_bucket}/gc/two/data")
