"""Cross-site safety (api/guard.py): what a web page in the user's browser can send to kfpd
(simple requests: text/plain, form and multipart bodies, any Origin, a rebinding Host) never
reaches a route; kfpd's own clients are unaffected."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kfpd.api.guard import HostPolicy, check_bind, same_origin, split_host
from kfpd.cli.main import app as cli
from tests.helpers import JSON, compiled, ok

API = "/apis/v2beta1"


def _run_body(marker: Path) -> bytes:
    return json.dumps(
        {
            "display_name": "cross-site",
            "pipeline_spec": compiled("cross_site:touch_pipeline"),
            "runtime_config": {"parameters": {"path": str(marker)}},
        }
    ).encode()


def _wait_final(url: str, run_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = str(httpx.get(f"{url}{API}/runs/{run_id}").json()["state"])
        if state in {"SUCCEEDED", "FAILED", "CANCELED"}:
            return state
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def test_cross_site_simple_post_executes_nothing(orchestrated_server: Any, tmp_path: Path) -> None:
    url = orchestrated_server()  # the real local executor
    marker = tmp_path / "pwned"
    for content_type in ("text/plain", "text/plain;charset=UTF-8", None):
        headers = {"origin": "http://evil.example"}
        if content_type:
            headers["content-type"] = content_type
        # Without Origin (as a non-browser sends it) only the body type stops it.
        for sent in (headers, {k: v for k, v in headers.items() if k != "origin"}):
            refused = httpx.post(f"{url}{API}/runs", content=_run_body(marker), headers=sent)
            assert refused.status_code in (403, 415), refused.text
    time.sleep(1)  # what was accepted would have started by now
    assert not ok(httpx.get(f"{url}{API}/runs")).get("runs")
    assert not marker.exists()
    # The same body as JSON from kfpd's own origin runs: the check above could see a launch.
    same = {**JSON, "origin": url}
    run = ok(httpx.post(f"{url}{API}/runs", content=_run_body(marker), headers=same))
    assert _wait_final(url, run["run_id"]) == "SUCCEEDED"
    assert marker.exists()


def test_bodies_must_be_json_or_multipart_uploads(api: TestClient, tmp_path: Path) -> None:
    body = b'{"display_name": "e"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        refused = api.post(
            f"{API}/experiments", content=body, headers={"content-type": content_type}
        )
        assert refused.status_code == 415, refused.text
        assert "application/json" in refused.json()["message"]
    assert api.post(f"{API}/experiments", content=body).status_code == 415  # no Content-Type
    ok(
        api.post(
            f"{API}/experiments",
            content=body,
            headers={"content-type": "application/json; charset=utf-8"},
        )
    )
    # Uploads take multipart only; a bodiless POST needs no Content-Type.
    refused = api.post(
        f"{API}/pipelines/upload", content=b"x", headers={"content-type": "text/plain"}
    )
    assert refused.status_code == 415
    files = {"uploadfile": ("p.yaml", json.dumps(compiled("cross_site:touch_pipeline")).encode())}
    ok(api.post(f"{API}/pipelines/upload", files=files))
    run = ok(api.post(f"{API}/runs", content=_run_body(tmp_path / "x"), headers=JSON))
    assert api.post(f"{API}/runs/{run['run_id']}:archive").status_code == 200


def test_foreign_origin_is_refused_on_writes(api: TestClient) -> None:
    body = {"display_name": "e"}
    for origin in (
        "http://evil.example",
        "http://127.0.0.1:1",
        "null",
        "https://127.0.0.1.evil.example",
    ):
        refused = api.post(f"{API}/experiments", json=body, headers={"origin": origin})
        assert refused.status_code == 403, (origin, refused.text)
        assert api.delete(f"{API}/experiments/x", headers={"origin": origin}).status_code == 403
    names = [e["display_name"] for e in ok(api.get(f"{API}/experiments"))["experiments"]]
    assert names == ["Default"]  # nothing written
    # Reads pass (the browser keeps a cross-origin answer from the page: no CORS headers).
    assert (
        api.get(f"{API}/experiments", headers={"origin": "http://evil.example"}).status_code == 200
    )
    ok(api.post(f"{API}/experiments", json=body, headers={"origin": "http://127.0.0.1"}))


def test_rebinding_host_is_refused(api: TestClient, live_server: str) -> None:
    refused = api.get(f"{API}/runs", headers={"host": "evil.example"})
    assert refused.status_code == 400 and "--allowed-host" in refused.json()["message"]
    assert api.get("/", headers={"host": "evil.example:8888"}).status_code == 400
    for host in ("localhost:8888", "127.0.0.1", "[::1]:80", "10.1.2.3:8888", "kfp.localhost"):
        assert api.get(f"{API}/runs", headers={"host": host}).status_code == 200, host
    # Over a real socket too, as a rebinding browser would arrive.
    port = live_server.rsplit(":", 1)[1]
    rebound = httpx.get(f"{live_server}{API}/runs", headers={"host": f"attacker.example:{port}"})
    assert rebound.status_code == 400
    # Many names in turn (more than the guard remembers): each keeps its own verdict.
    for i in range(150):
        evil = api.get(f"{API}/healthz", headers={"host": f"evil-{i % 80}.example"})
        assert evil.status_code == 400, i
        assert api.get(f"{API}/healthz", headers={"host": f"127.0.0.{i % 80}"}).status_code == 200


def test_host_policy_and_origin_rules() -> None:
    policy = HostPolicy.build(["kfp.example.com", ".corp.example"], "0.0.0.0", "build-box")
    assert [policy.allows(h) for h in ("kfp.example.com", "a.corp.example", "corp.example")] == [
        True
    ] * 3
    assert policy.allows("build-box") and policy.allows("::1") and policy.allows("192.168.1.4")
    assert not policy.allows("example.com") and not policy.allows("evilcorp.example")
    assert HostPolicy.build(["*"]).allows("anything.example")
    assert split_host("[::1]:8888") == ("::1", 8888)
    assert split_host("Example.COM.") == ("example.com", None)
    assert same_origin("http://localhost:8888", "localhost:8888")
    assert same_origin("https://kfp.example.com", "kfp.example.com")  # behind a TLS proxy
    assert same_origin("http://kfp.example.com", "kfp.example.com:80")
    assert not same_origin("http://localhost:3000", "localhost:8888")
    assert not same_origin("null", "localhost:8888")


@pytest.mark.parametrize(
    ("host", "confirmed", "allowed", "warns"),
    [
        ("127.0.0.1", False, True, False),
        ("localhost", False, True, False),
        ("::1", False, True, False),
        ("0.0.0.0", False, False, True),
        ("192.168.1.4", False, False, True),
        ("0.0.0.0", True, True, True),
    ],
)
def test_single_user_mode_binds_loopback_unless_confirmed(
    host: str, confirmed: bool, allowed: bool, warns: bool
) -> None:
    check = check_bind(host, authenticated=False, allow_remote_unauthenticated=confirmed)
    assert check.allowed is allowed and (check.message is not None) is warns
    assert check_bind(host, authenticated=True, allow_remote_unauthenticated=False).allowed


def test_server_command_refuses_a_public_bind(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["server", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        "NO authentication" in result.output and "--allow-remote-unauthenticated" in result.output
    )
    assert not (tmp_path / "kfpd.sqlite").exists()  # refused before anything started


def test_allowed_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from kfpd.config import Settings

    monkeypatch.setenv("KFPD_ALLOWED_HOSTS", "kfp.example.com, .corp.example")
    monkeypatch.setenv("KFPD_ALLOW_REMOTE_UNAUTHENTICATED", "true")
    settings = Settings()
    assert settings.allowed_hosts == ["kfp.example.com", ".corp.example"]
    assert settings.allow_remote_unauthenticated
    assert Settings(allowed_hosts=["a.example"]).allowed_hosts == ["a.example"]
