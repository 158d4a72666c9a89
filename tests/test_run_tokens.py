"""Every write a launcher makes needs the run token of the run it writes to, in single-user
mode too; a token is confined to its run, expires, and is refused once its run has ended."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kfpd.domain.tokens import issue_run_token
from tests.helpers import compiled, ok

API = "/apis/v2beta1"


class Launcher:
    def __init__(self, api: TestClient) -> None:
        self.api = api
        self.secret: bytes = api.app.state.settings.run_token_secret()  # type: ignore[attr-defined]
        self.run_id = self.new_run()
        self.task_id = ok(
            self.post(
                f"{API}/runs/{self.run_id}/tasks",
                self.token(),
                {"name": "t", "type": "RUNTIME", "state": "RUNNING", "scope_path": "root.t"},
            )
        )["task_id"]
        self.other_run = self.new_run()

    def new_run(self) -> str:
        return str(
            ok(self.api.post(f"{API}/runs", json={"pipeline_spec": compiled("graph_demo")}))[
                "run_id"
            ]
        )

    def token(self, run_id: str | None = None, **kw: Any) -> dict[str, str]:
        return {
            "authorization": f"Bearer {issue_run_token(self.secret, run_id or self.run_id, **kw)}"
        }

    def post(
        self, url: str, headers: dict[str, str], body: Any, method: str = "POST"
    ) -> httpx.Response:
        # auth=None: this test shows (or withholds) tokens itself.
        return self.api.request(method, url, json=body, headers=headers, auth=None)  # type: ignore[arg-type]

    def writes(self) -> list[tuple[str, str, dict[str, Any]]]:
        r, t = self.run_id, self.task_id
        art = {
            "run_id": r,
            "task_id": t,
            "producer_key": "o",
            "artifact": {"name": "a", "type": "Dataset"},
        }
        link = {
            "artifact_id": "ghost",
            "task_id": t,
            "run_id": r,
            "type": "OUTPUT",
            "producer": {"task_name": "t"},
            "key": "k",
        }
        return [
            (
                "POST",
                f"{API}/runs/{r}/tasks",
                {"name": "u", "type": "RUNTIME", "scope_path": "root.u"},
            ),
            ("PATCH", f"{API}/runs/{r}/tasks/{t}", {"state": "RUNNING"}),
            ("POST", f"{API}/runs/{r}/tasks:batchUpdate", {"tasks": {t: {"state": "RUNNING"}}}),
            ("POST", f"{API}/runs/{r}/tasks/{t}:finish", {"state": "RUNNING"}),
            ("POST", f"{API}/runs/{r}/tasks/{t}/logs", {"text": "x"}),
            ("POST", f"{API}/artifacts", art),
            ("POST", f"{API}/artifacts:batchCreate", {"artifacts": [art]}),
            ("POST", f"{API}/artifact_tasks", {"artifact_task": link}),
            ("POST", f"{API}/artifact_tasks:batchCreate", {"artifact_tasks": [link]}),
            ("POST", f"{API}/tasks:findCached", {"cache_fingerprint": "f"}),
        ]


@pytest.fixture
def launcher(api: TestClient) -> Launcher:
    return Launcher(api)


def test_launcher_writes_need_a_token(launcher: Launcher) -> None:
    forged = {"authorization": f"Bearer {launcher.run_id}.9999999999.AAAA"}
    expired = launcher.token(ttl=-1)
    for method, url, body in launcher.writes():
        for headers, why in (({}, "run token"), (forged, "not valid"), (expired, "expired")):
            response = launcher.post(url, headers, body, method)
            assert response.status_code == 401, (url, headers, response.text)
            assert why in response.json()["message"]
    tasks = ok(launcher.api.get(f"{API}/runs/{launcher.run_id}/tasks"))["tasks"]
    assert [t["name"] for t in tasks] == ["t"] and tasks[0]["state"] == "RUNNING"
    assert ok(launcher.api.get(f"{API}/artifacts"))["total_size"] == 0


def test_a_token_is_confined_to_its_run(launcher: Launcher) -> None:
    other = launcher.token(launcher.other_run)
    for method, url, body in launcher.writes():
        if url.endswith(":findCached"):
            continue  # names no run: a token of any run of the namespace may look up the cache
        response = launcher.post(url, other, body, method)
        assert response.status_code == 403, (url, response.text)
        assert "another run" in response.json()["message"]
    # Bulk calls may not mix runs.
    art = {
        "task_id": launcher.task_id,
        "producer_key": "o",
        "artifact": {"name": "a", "type": "Dataset"},
    }
    mixed = {
        "artifacts": [{**art, "run_id": launcher.run_id}, {**art, "run_id": launcher.other_run}]
    }
    response = launcher.post(f"{API}/artifacts:batchCreate", launcher.token(), mixed)
    assert response.status_code == 403, response.text
    # findCached in another namespace than its run's.
    response = launcher.post(
        f"{API}/tasks:findCached",
        launcher.token(),
        {"cache_fingerprint": "f", "namespace": "team-b"},
    )
    assert response.status_code == 403, response.text


def test_the_right_token_writes_and_a_final_run_refuses(launcher: Launcher) -> None:
    token = launcher.token()
    url = f"{API}/runs/{launcher.run_id}/tasks/{launcher.task_id}"
    ok(launcher.post(url + "/logs", token, {"text": "hello\n"}))
    assert ok(launcher.post(f"{API}/tasks:findCached", token, {"cache_fingerprint": "f"})) == {}
    ok(launcher.post(url, token, {"state": "RUNNING"}, "PATCH"))
    ok(launcher.api.post(f"{API}/runs/{launcher.run_id}:terminate"))
    response = launcher.post(url, token, {"state": "SUCCEEDED"}, "PATCH")
    assert response.status_code == 409, response.text  # the terminal-run guard
    response = launcher.post(f"{API}/tasks:findCached", token, {"cache_fingerprint": "f"})
    assert response.status_code == 401 and "ended" in response.json()["message"]


def test_a_token_seen_before_is_still_refused_once_expired(launcher: Launcher) -> None:
    """The server remembers tokens it found genuine (one HMAC per token, not per call), but not
    their verdict on expiry: the same token, accepted a moment ago, is refused once expired."""
    token = launcher.token(ttl=2)
    expires = int(token["authorization"].rsplit(".", 2)[1])
    url = f"{API}/runs/{launcher.run_id}/tasks/{launcher.task_id}"
    ok(launcher.post(url, token, {"state": "RUNNING"}, "PATCH"))
    ok(launcher.post(url, token, {"state": "RUNNING"}, "PATCH"))  # the remembered token
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    response = launcher.post(url, token, {"state": "RUNNING"}, "PATCH")
    assert response.status_code == 401 and "expired" in response.json()["message"]
    # A tampered copy of a remembered token is checked afresh.
    tampered = {"authorization": token["authorization"][:-2] + "AA"}
    response = launcher.post(url, tampered, {"state": "RUNNING"}, "PATCH")
    assert response.status_code == 401 and "not valid" in response.json()["message"]
