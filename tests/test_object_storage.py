"""Object storage without an S3 server: upstream's launcher configuration decided purely,
credentials resolved from the local secrets store or the environment, and the launcher's
session endpoint (which URIs a task may get credentials for) on every database dialect."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy import select

from kfpd.db.engine import Database
from kfpd.db.models import Artifact as ArtifactRow
from kfpd.db.models import Run
from kfpd.domain.errors import FailedPrecondition, InvalidArgument, NotFound, PayloadTooLarge
from kfpd.domain.tokens import issue_run_token
from kfpd.launcher.objectstore import SessionStore, StoreError
from kfpd.orchestrator.launch import output_prefix
from kfpd.services import artifact_files as files
from kfpd.services.storage import Storage
from kfpd.storage.launcher_config import (
    LauncherConfig,
    StorageConfigError,
    load_launcher_config,
    parse_launcher_config,
    pipeline_root,
    prefix_matches,
    session_info,
)
from kfpd.storage.sessions import StoreSession, endpoint_url, fs_path, store_session
from tests.launching import Server, compile_component, ok
from tests.pipelines import launch_components as comps

SECRET_REF = {"secretName": "s3-creds", "accessKeyKey": "ak", "secretKeyKey": "sk"}
CONFIG = {
    "defaultPipelineRoot": "s3://main/v2",
    "providers": yaml.safe_dump(
        {
            "s3": {
                "default": {
                    "endpoint": "s3.example.com",
                    "region": "eu-west-1",
                    "credentials": {"secretRef": SECRET_REF},
                },
                "Overrides": [  # upstream's spelling; "overrides" works too
                    {
                        "bucketName": "shared",
                        "keyPrefix": "team/a",
                        "endpoint": "10.0.0.9:9000",
                        "disableSSL": True,
                        "credentials": {"fromEnv": True},
                    },
                    {
                        "bucketName": "shared",
                        "credentials": {"secretRef": {**SECRET_REF, "secretName": "shared-creds"}},
                    },
                ],
            },
            "gs": {
                "default": {
                    "credentials": {"secretRef": {"secretName": "gcp", "tokenKey": "key.json"}}
                }
            },
        }
    ),
}


def config() -> LauncherConfig:
    return parse_launcher_config(CONFIG)


def test_pipeline_root_precedence() -> None:
    cfg = config()
    assert pipeline_root("gs://run/root", cfg, "file:///local") == "gs://run/root"
    assert pipeline_root(None, cfg, "file:///local") == "s3://main/v2"
    assert pipeline_root("", LauncherConfig(), "file:///local") == "file:///local"


def test_providers_as_a_yaml_string_or_a_mapping_and_whole_configmaps(tmp_path: Path) -> None:
    as_mapping = {**CONFIG, "providers": yaml.safe_load(CONFIG["providers"])}
    assert parse_launcher_config(as_mapping) == config()
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "data": CONFIG}
    path = tmp_path / "kfp-launcher.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert load_launcher_config(path) == config()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"providers": "s3: [unclosed"}, "not valid YAML"),
        ({"providers": {"s3": {"default": {"endpointt": "x"}}}}, "endpointt"),
        ({"defaultPipelineRoot": ["not", "a", "string"]}, "defaultPipelineRoot"),
        (["a list"], "must be a mapping"),
    ],
)
def test_a_malformed_config_is_refused_clearly(data: Any, message: str) -> None:
    with pytest.raises(StorageConfigError, match=message):
        parse_launcher_config(data)


def test_s3_default_settings_as_upstream_records_them() -> None:
    info = session_info(config(), "s3://main/v2/p/run/task/id/out")
    assert info.model_dump() == {
        "Provider": "s3",
        "Params": {
            "endpoint": "s3.example.com",
            "region": "eu-west-1",
            "disableSSL": "false",
            "forcePathStyle": "true",
            "maxRetries": "5",
            "fromEnv": "false",
            **{k: v for k, v in SECRET_REF.items()},
        },
    }


def test_the_first_matching_override_wins_by_whole_path_segments() -> None:
    cfg = config()
    team_a = session_info(cfg, "s3://shared/team/a/run/out").Params
    assert team_a["fromEnv"] == "true" and "secretName" not in team_a
    assert (team_a["endpoint"], team_a["disableSSL"], team_a["region"]) == (
        "10.0.0.9:9000",
        "true",
        "eu-west-1",  # not overridden: the default's
    )
    # "team/ab" is not under "team/a": the second override (whole bucket) applies.
    other = session_info(cfg, "s3://shared/team/ab/x").Params
    assert other["secretName"] == "shared-creds" and other["endpoint"] == "s3.example.com"
    assert session_info(cfg, "s3://elsewhere/x").Params["secretName"] == "s3-creds"
    assert prefix_matches("a/b/c", "/a/b/") and not prefix_matches("a/bc", "a/b")
    assert prefix_matches("anything", "")


def test_unconfigured_schemes_fall_back_as_upstream() -> None:
    cfg = config()
    # No minio provider: upstream's in-cluster MinIO and its secret.
    minio = session_info(cfg, "minio://mlpipeline/v2/artifacts").Params
    assert minio["secretName"] == "mlpipeline-minio-artifact"
    assert (minio["accessKeyKey"], minio["secretKeyKey"]) == ("accesskey", "secretkey")
    assert session_info(LauncherConfig(), "s3://b/k").Params == {"fromEnv": "true"}
    # A query string in the root means "the bucket URL says it all": credentials from env.
    assert session_info(cfg, "s3://main/k?region=x").Params == {"fromEnv": "true"}
    assert session_info(cfg, "gs://b/k").Params == {
        "fromEnv": "false",
        "secretName": "gcp",
        "tokenKey": "key.json",
    }
    with pytest.raises(StorageConfigError, match="no object-store provider"):
        session_info(cfg, "hdfs://x/y")
    no_creds = parse_launcher_config({"providers": {"s3": {"default": {"endpoint": "e"}}}})
    with pytest.raises(StorageConfigError, match="no default credentials"):
        session_info(no_creds, "s3://b/k")


def secrets(name: str) -> dict[str, str] | None:
    return {
        "s3-creds": {"ak": "AKID", "sk": "s3cr3t"},
        "gcp": {"key.json": json.dumps({"type": "service_account", "client_email": "x@y"})},
        "no-sk": {"ak": "AKID"},
    }.get(name)


def test_credentials_come_from_the_secrets_store_or_the_environment() -> None:
    cfg = config()
    session = store_session(session_info(cfg, "s3://main/x"), secrets, {})
    assert session.protocol == "s3"
    assert session.options == {
        "endpoint_url": "https://s3.example.com",
        "client_kwargs": {"region_name": "eu-west-1"},
        "config_kwargs": {
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 5, "mode": "standard"},
        },
        "key": "AKID",
        "secret": "s3cr3t",
    }
    assert "s3cr3t" not in repr(session)
    env = {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret"}
    from_env = store_session(session_info(cfg, "s3://shared/team/a/x"), secrets, env).options
    assert (from_env["key"], from_env["secret"], from_env["use_ssl"]) == (
        "ENVKEY",
        "envsecret",
        False,
    )
    assert from_env["endpoint_url"] == "http://10.0.0.9:9000"
    gcs = store_session(session_info(cfg, "gs://b/k"), secrets, {})
    assert gcs.protocol == "gcs" and gcs.options["token"]["client_email"] == "x@y"
    assert endpoint_url("https://already:1", True) == "https://already:1"
    assert fs_path("minio://bucket/a/b") == "bucket/a/b"


def test_missing_secrets_are_clear_errors() -> None:
    cfg = config()
    with pytest.raises(StorageConfigError, match="'shared-creds' does not exist"):
        store_session(session_info(cfg, "s3://shared/x"), secrets, {})
    broken = parse_launcher_config(
        {
            "providers": {
                "s3": {
                    "default": {"credentials": {"secretRef": {**SECRET_REF, "secretName": "no-sk"}}}
                }
            }
        }
    )
    with pytest.raises(StorageConfigError, match="'no-sk' has no key 'sk'"):
        store_session(session_info(broken, "s3://b/k"), secrets, {})


def test_an_unreachable_store_is_a_clear_task_error(tmp_path: Path) -> None:
    """A launcher's upload to an endpoint nobody listens on fails with the URI and reason."""
    pytest.importorskip("s3fs")
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    options = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "key": "k",
        "secret": "s",
        "retries": 1,
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    uri = "s3://bucket/run/out"
    store = SessionStore([("s3", options, [uri])])
    source = tmp_path / "out.txt"
    source.write_text("x")
    with pytest.raises(StoreError, match=r"could not upload .* to 's3://bucket/run/out'"):
        store.upload(source, uri)
    assert StoreSession("s3", options).filesystem() is not None


# -- the launcher's session endpoint


def _run_with_root(server: Server, ir: dict[str, Any], root: str) -> tuple[str, str]:
    body = {
        "display_name": "t",
        "pipeline_spec": ir,
        "runtime_config": {"parameters": {"text": "x"}, "pipeline_root": root},
    }
    run = ok(server.http.post("/apis/v2beta1/runs", json=body))
    task_name = next(iter(ir["root"]["dag"]["tasks"]))
    task = ok(
        server.http.post(
            f"/apis/v2beta1/runs/{run['run_id']}/tasks",
            json={"name": task_name, "type": "RUNTIME", "state": "RUNNING", "scope_path": "root.x"},
        )
    )
    return run["run_id"], task["task_id"]


def test_a_task_gets_sessions_only_for_its_own_uris(
    live_server: str, tmp_path: Path, db: Database
) -> None:
    server = Server(live_server, tmp_path)
    ir = compile_component(comps.shell_op)
    run_id, task_id = _run_with_root(server, ir, "s3://bkt/root")
    with db.read_session() as s:
        pipeline_name = s.scalar(select(Run.pipeline_name).where(Run.id == run_id)) or ""
    task = ok(server.http.get(f"/apis/v2beta1/runs/{run_id}/tasks/{task_id}"))
    own = output_prefix("s3://bkt/root", pipeline_name, run_id, task["name"], task_id)
    # An input: an artifact linked to the task as INPUT, stored anywhere.
    ok(
        server.http.post(
            "/apis/v2beta1/artifacts",
            json={
                "artifact": {"name": "in", "type": "Dataset", "uri": "minio://other/in/data"},
                "run_id": run_id,
                "task_id": task_id,
                "producer_key": "in",
                "type": "TASK_OUTPUT_INPUT",
            },
        )
    )
    # minio:// without a minio provider: upstream's default secret, from the local store.
    (tmp_path / "secrets").mkdir(exist_ok=True)
    minio_secret = {"accesskey": "minio", "secretkey": "minio123"}
    (tmp_path / "secrets" / "mlpipeline-minio-artifact.json").write_text(json.dumps(minio_secret))
    path = f"/apis/v2beta1/runs/{run_id}/tasks/{task_id}/storage:sessions"
    token = {"Authorization": f"Bearer {issue_run_token(server.secret, run_id)}"}
    uris = [f"{own}/out", f"{own}/executor-logs", "minio://other/in/data"]
    reply = server.http.post(path, json={"uris": uris}, headers=token)
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    sessions = reply.json()["sessions"]
    assert sorted(u for s in sessions for u in s["uris"]) == sorted(uris)
    minio = next(s for s in sessions if s["store_session_info"]["Provider"] == "minio")
    assert minio["uris"] == ["minio://other/in/data"] and minio["protocol"] == "s3"
    assert minio["options"]["endpoint_url"] == "http://minio-service.kubeflow:9000"
    assert (minio["options"]["key"], minio["options"]["secret"]) == ("minio", "minio123")
    # Someone else's objects, another run's token, no token: refused.
    foreign = server.http.post(path, json={"uris": ["s3://bkt/root/x"]}, headers=token)
    assert foreign.status_code == 400 and "neither an output nor an input" in foreign.text
    local = server.http.post(path, json={"uris": ["file:///etc/passwd"]}, headers=token)
    assert local.status_code == 400
    climb = server.http.post(path, json={"uris": [f"{own}/../../x"]}, headers=token)
    assert climb.status_code == 400 and ".. segments" in climb.text
    other = {"Authorization": f"Bearer {issue_run_token(server.secret, 'another-run')}"}
    assert server.http.post(path, json={"uris": uris}, headers=other).status_code == 403
    import httpx  # server.http signs its requests: a bare client for the token-less call

    assert httpx.post(live_server + path, json={"uris": uris}, timeout=60).status_code == 401
    # Once the task has ended its access is over.
    finish = f"/apis/v2beta1/runs/{run_id}/tasks/{task_id}:finish"
    ok(server.http.post(finish, json={"state": "SUCCEEDED"}, headers=token))
    late = server.http.post(path, json={"uris": uris}, headers=token)
    assert late.status_code == 409 and "already ended" in late.text


def test_deleting_a_run_can_delete_its_artifact_files_after_a_dry_run(
    orchestrated_server: Any, tmp_path: Path
) -> None:
    import httpx

    from tests.helpers import compiled

    url = orchestrated_server()
    http = httpx.Client(timeout=60)  # a busy machine answers slowly
    body = {
        "display_name": "d",
        "pipeline_spec": compiled("storage_demo"),
        "runtime_config": {"parameters": {"rows": 2}},
    }
    run_id = ok(http.post(f"{url}/apis/v2beta1/runs", json=body))["run_id"]
    path = f"{url}/apis/v2beta1/runs/{run_id}"
    early = http.delete(path, params={"delete_artifacts": "true", "dry_run": "true"})
    if early.status_code == 200:  # the run may already have ended on a fast machine
        assert early.json()["dry_run"] is True
    else:
        assert early.status_code == 400 and "terminate it" in early.text
    deadline = time.monotonic() + 240
    while http.get(path).json()["state"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.2)
    assert http.get(path).json()["state"] == "SUCCEEDED"
    dry = ok(http.delete(path, params={"delete_artifacts": "true", "dry_run": "true"}))
    files = [Path(urlsplit(u).path) for u in dry["artifact_objects"]]
    assert files and all(f.exists() for f in files)
    assert all(f.is_relative_to(tmp_path / "artifacts") for f in files)
    assert http.delete(path, params={"dry_run": "true"}).status_code == 400
    # The CLI: a dry run lists the objects; then the run goes with them.
    from typer.testing import CliRunner

    from kfpd.cli.main import app as cli

    runner = CliRunner()
    listed = runner.invoke(
        cli, ["runs", "delete", run_id, "--artifacts", "--dry-run", "--host", url]
    )
    assert listed.exit_code == 0, listed.output
    assert all(f"delete {u}" in listed.output for u in dry["artifact_objects"])
    assert all(f.exists() for f in files)
    gone = runner.invoke(cli, ["runs", "delete", run_id, "--artifacts", "--yes", "--host", url])
    assert gone.exit_code == 0 and f"deleted run {run_id}" in gone.output, gone.output
    assert not any(f.exists() for f in files)
    assert http.get(path).status_code == 404


def test_a_task_whose_store_credentials_are_missing_fails_clearly(
    live_server: str, tmp_path: Path, db: Database
) -> None:
    """No secret for the provider: the launcher's session request is refused and the task
    fails saying which secret is missing (nothing runs, nothing is uploaded)."""
    from kfpd.launcher.main import EXIT_REPORTED, Launcher
    from kfpd.schemas.launch import OutputArtifactSpec

    server = Server(live_server, tmp_path)
    ir = compile_component(comps.shell_op)
    run_id, task_id = _run_with_root(server, ir, "minio://bkt/r")
    with db.read_session() as s:
        pipeline_name = s.scalar(select(Run.pipeline_name).where(Run.id == run_id)) or ""
    task = server.task(run_id, task_id)
    own = output_prefix("minio://bkt/r", pipeline_name, run_id, task["name"], task_id)
    spec = server.spec(ir, run_id, task_id, tmp_path, params={"text": "x"})
    spec = spec.model_copy(
        update={
            "input_artifacts": {},
            "output_artifacts": {"out": OutputArtifactSpec(name="out", uri=f"{own}/out")},
            "log_uri": f"{own}/executor-logs",
            "work_dir": str(tmp_path / "work"),
        }
    )
    assert Launcher(spec).run() == EXIT_REPORTED
    task = server.task(run_id, task_id)
    assert task["state"] == "FAILED"
    message = task["status_metadata"]["message"]
    assert message.startswith("no object-store access for this task's artifacts"), message
    assert "'mlpipeline-minio-artifact' does not exist" in message


# -- artifact bytes from a store, on an in-memory filesystem


class MemoryStorage(Storage):
    """The server's storage with every object-store URI on fsspec's in-memory filesystem."""

    def __init__(self) -> None:
        super().__init__(LauncherConfig(), local_root="file:///nowhere", secrets=lambda _: None)
        import fsspec

        self.fs = fsspec.filesystem("memory")

    def locate(self, uri: str, recorded: Any = None) -> tuple[Any, str]:
        del recorded
        return self.fs, "/" + fs_path(uri)


@pytest.fixture
def memory_storage() -> Any:
    storage = MemoryStorage()
    yield storage
    if storage.fs.exists("/bkt"):
        storage.fs.rm("/bkt", recursive=True)


def _artifact(uri: str, atype: int = 2) -> ArtifactRow:
    return ArtifactRow(id="a", uri=uri, type=atype, name="x")


def test_remote_previews_keep_the_local_caps_and_refuse_escapes(
    memory_storage: MemoryStorage, tmp_path: Path
) -> None:
    fs = memory_storage.fs
    big = b"line\n" * (files.PREVIEW_TEXT_BYTES // 5 + 10)
    fs.pipe("/bkt/run/big.txt", big)
    fs.pipe("/bkt/run/dir/a.csv", b"a,b\n1,2\n3,4\n")
    fs.pipe("/bkt/run/dir/sub/b.md", b"# title\n")
    fs.pipe("/bkt/run/page.html", b"<p>" + b"x" * files.RENDER_MAX_BYTES + b"</p>")
    shown = files.preview(_artifact("s3://bkt/run/big.txt"), tmp_path, "", memory_storage)
    assert (shown.kind, shown.size, shown.truncated) == ("text", len(big), True)
    assert shown.text is not None and len(shown.text) == files.PREVIEW_TEXT_BYTES
    listing = files.preview(_artifact("gs://bkt/run/dir"), tmp_path, "", memory_storage)
    assert listing.kind == "directory"
    assert [(e.path, e.size) for e in listing.entries] == [("a.csv", 12), ("sub/b.md", 8)]
    csv = files.preview(_artifact("gs://bkt/run/dir"), tmp_path, "a.csv", memory_storage)
    assert csv.kind == "csv"
    for escape in ("../big.txt", "/etc/passwd", "sub/../../big.txt", "a//b"):
        with pytest.raises(InvalidArgument):
            files.preview(_artifact("s3://bkt/run/dir"), tmp_path, escape, memory_storage)
    with pytest.raises(PayloadTooLarge):
        files.read_for_render(_artifact("minio://bkt/run/page.html"), tmp_path, "", memory_storage)
    with pytest.raises(NotFound):
        files.preview(_artifact("s3://bkt/run/gone"), tmp_path, "", memory_storage)
    target = files.file_for_download(
        _artifact("s3://bkt/run/big.txt"), tmp_path, "", memory_storage
    )
    assert b"".join(target.stream()) == big and target.local_path is None
    with pytest.raises(FailedPrecondition, match="directory"):
        files.file_for_download(_artifact("s3://bkt/run/dir"), tmp_path, "", memory_storage)
    # Without a storage (or for schemes it does not serve) nothing is read.
    with pytest.raises(FailedPrecondition):
        files.preview(_artifact("s3://bkt/run/big.txt"), tmp_path)
    with pytest.raises(FailedPrecondition, match="not hdfs URIs"):
        files.preview(_artifact("hdfs://bkt/run/big.txt"), tmp_path, "", memory_storage)


def test_an_unreadable_store_is_a_clear_error(tmp_path: Path) -> None:
    class Refusing:
        def exists(self, path: str) -> bool:
            raise PermissionError(f"Forbidden: {path}")

    class RefusingStorage(MemoryStorage):
        def locate(self, uri: str, recorded: Any = None) -> tuple[Any, str]:
            del recorded
            return Refusing(), fs_path(uri)

    with pytest.raises(files.StoreUnavailable, match=r"could not be read \(PermissionError"):
        files.preview(_artifact("s3://bkt/k"), tmp_path, "", RefusingStorage())


def test_the_server_refuses_a_bad_launcher_config_at_start_up(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kfpd.cli.main import app as cli

    bad = tmp_path / "kfp-launcher.yaml"
    bad.write_text("providers: |\n  s3:\n    default: {endpoint: [not, a, string]}\n")
    result = CliRunner().invoke(
        cli, ["server", "--launcher-config", str(bad), "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert "is not valid" in result.output and "endpoint" in result.output
