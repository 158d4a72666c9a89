"""Multi-user mode: every route has an authorization rule (generated from the app's routes),
callers sign in, roles decide per namespace, launchers stay in their run — on every database."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from starlette.requests import Request

from kfpd.api.app import create_app
from kfpd.api.authn import TrustedHeaderProvider
from kfpd.api.authz import Access, app_routes, rule_for
from kfpd.authconfig import TrustedHeader
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.domain.access import Binding, Policy, Principal, Role
from kfpd.domain.errors import InvalidArgument
from kfpd.domain.timeutil import now_us, to_rfc3339
from kfpd.domain.tokens import issue_run_token
from kfpd.services import auth_store
from tests.helpers import compiled

API = "/apis/v2beta1"
AUTH = {
    "authentication": {"api_tokens": True},
    "authorization": {
        "bindings": [
            {"user": "vic", "role": "viewer", "namespace": "team-a"},
            {"user": "eve", "role": "editor", "namespace": "team-a"},
            {"user": "ada", "role": "admin", "namespace": "team-a"},
            {"user": "bob", "role": "editor", "namespace": "team-b"},
            {"group": "root", "role": "admin", "namespace": "*"},
        ]
    },
}


class World:
    def __init__(self, api: TestClient, db: Database) -> None:
        self.api = api
        self.secret: bytes = api.app.state.settings.run_token_secret()  # type: ignore[attr-defined]
        self.tokens: dict[str, str] = {}
        with db.write_session() as s:
            for user in ("vic", "eve", "ada", "bob", "nobody"):
                self.tokens[user] = auth_store.create_token(s, user, expires_in_s=3600).token
            expired = auth_store.create_token(s, "eve", expires_in_s=1)
            s.flush()
            from kfpd.db.models import ApiToken

            s.get(ApiToken, expired.id).expires_at = 1  # type: ignore[union-attr]
            self.tokens["expired"] = expired.token
            self.tokens["root"] = ""
        self.exp_a = self.call(
            "eve", "POST", f"{API}/experiments", json={"display_name": "x", "namespace": "team-a"}
        ).json()["experiment_id"]
        self.exp_b = self.call(
            "bob", "POST", f"{API}/experiments", json={"display_name": "x", "namespace": "team-b"}
        ).json()["experiment_id"]
        spec = compiled("graph_demo")
        self.run_a = self.call(
            "eve", "POST", f"{API}/runs", json={"pipeline_spec": spec, "experiment_id": self.exp_a}
        ).json()["run_id"]
        self.run_a2 = self.call(
            "eve", "POST", f"{API}/runs", json={"pipeline_spec": spec, "experiment_id": self.exp_a}
        ).json()["run_id"]
        self.run_b = self.call(
            "bob", "POST", f"{API}/runs", json={"pipeline_spec": spec, "experiment_id": self.exp_b}
        ).json()["run_id"]

    def headers(self, who: str) -> dict[str, str]:
        if who == "anonymous":
            return {}
        if who.startswith("launcher:"):
            return {"authorization": f"Bearer {issue_run_token(self.secret, who.split(':', 1)[1])}"}
        return {"authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str, method: str, url: str, **kw: Any) -> Any:
        return self.api.request(method, url, headers=self.headers(who), auth=None, **kw)  # type: ignore[arg-type]


@pytest.fixture
def world(db: Database, tmp_path: Path) -> Iterator[World]:
    config = tmp_path / "auth.yaml"
    config.write_text(yaml.safe_dump(AUTH))
    app = create_app(
        Settings(data_dir=tmp_path, orchestrate=False, auth_config=config), database=db
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield World(client, db)


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_has_a_rule_and_refuses_strangers(world: World) -> None:
    routes = list(app_routes(world.api.app.routes))  # type: ignore[attr-defined]
    missing = [r for r in routes if rule_for(*r) is None]
    assert not missing, f"routes without an authorization rule (api/authz.py RULES): {missing}"
    for method, path in routes:
        rule = rule_for(method, path)
        assert rule is not None
        if rule.access is Access.PUBLIC or path.startswith(
            ("/ui/static", "/ui/v/", "/docs-assets")
        ):
            continue
        for who in ("anonymous", "expired"):
            response = world.call(who, method, _fill(path), json={})
            # Uploads take multipart bodies: the content-type guard answers first.
            allowed = {401, 415} if path.endswith(("/upload", "/upload_version")) else {401}
            assert response.status_code in allowed, (who, method, path, response.text)


@pytest.mark.parametrize(
    ("who", "status"),
    [("vic", 200), ("eve", 200), ("ada", 200), ("bob", 404), ("nobody", 404)],
)
def test_reads_follow_the_namespace_of_the_stored_row(world: World, who: str, status: int) -> None:
    for url in (
        f"{API}/runs/{world.run_a}",
        f"{API}/experiments/{world.exp_a}",
        f"{API}/runs/{world.run_a}/tasks",
        f"/ui/api/runs/{world.run_a}/metrics",
    ):
        response = world.call(who, "GET", url)
        assert response.status_code == status, (who, url, response.text)


def test_roles_and_verbs(world: World) -> None:
    listing = {"namespace": "team-a"}
    assert world.call("vic", "GET", f"{API}/runs", params=listing).status_code == 200
    assert world.call("bob", "GET", f"{API}/runs", params=listing).status_code == 403
    assert world.call("vic", "GET", f"{API}/runs").status_code == 403  # every namespace: "*" only
    assert world.call("nobody", "GET", f"{API}/experiments", params=listing).status_code == 403
    # viewers read, editors act
    assert world.call("vic", "POST", f"{API}/runs/{world.run_a}:terminate").status_code == 403
    assert world.call("eve", "POST", f"{API}/runs/{world.run_a}:archive").status_code == 200
    assert world.call("bob", "POST", f"{API}/runs/{world.run_a}:archive").status_code == 404
    assert (
        world.call(
            "vic", "POST", f"{API}/experiments", json={"display_name": "y", "namespace": "team-a"}
        ).status_code
        == 403
    )
    assert (
        world.call(
            "eve", "POST", f"{API}/experiments", json={"display_name": "y", "namespace": "team-b"}
        ).status_code
        == 403
    )
    # a run's namespace is its experiment's
    spec = compiled("graph_demo")
    assert (
        world.call(
            "eve", "POST", f"{API}/runs", json={"pipeline_spec": spec, "experiment_id": world.exp_b}
        ).status_code
        == 403
    )
    # shared pipelines: everyone signed in reads, only admins write; editors write their own
    assert world.call("nobody", "GET", f"{API}/pipelines").status_code == 200
    assert (
        world.call("eve", "POST", f"{API}/pipelines", json={"display_name": "p"}).status_code == 403
    )
    assert (
        world.call(
            "eve", "POST", f"{API}/pipelines", json={"display_name": "p", "namespace": "team-a"}
        ).status_code
        == 200
    )
    shared = world.call("nobody", "GET", f"{API}/pipelines").json().get("pipelines", [])
    assert all(p.get("namespace", "") == "" for p in shared), "a team's pipeline leaked"
    # bindings: admins of every namespace only
    assert world.call("ada", "GET", f"{API}/auth/bindings").status_code == 403
    who = world.call("eve", "GET", f"{API}/auth/whoami").json()
    assert who["user"] == "eve" and who["namespaces"] == {"team-a": "editor"}


def test_launchers_stay_in_their_run(world: World) -> None:
    own, other = f"launcher:{world.run_a}", f"launcher:{world.run_b}"
    body = {"name": "t", "type": "RUNTIME", "scope_path": "root.t"}
    assert world.call(own, "POST", f"{API}/runs/{world.run_a}/tasks", json=body).status_code == 200
    assert (
        world.call(other, "POST", f"{API}/runs/{world.run_a}/tasks", json=body).status_code == 403
    )
    assert world.call(own, "GET", f"{API}/runs/{world.run_a}").status_code == 200
    assert (
        world.call(own, "GET", f"{API}/runs/{world.run_a2}").status_code == 403
    )  # same namespace, other run
    assert world.call(own, "POST", f"{API}/runs/{world.run_a}:terminate").status_code == 403
    assert world.call(own, "GET", f"{API}/experiments/{world.exp_a}").status_code == 403
    cache = {"cache_fingerprint": "f", "namespace": "team-a"}
    assert world.call(own, "POST", f"{API}/tasks:findCached", json=cache).status_code == 200
    assert world.call(other, "POST", f"{API}/tasks:findCached", json=cache).status_code == 403
    # users may not play the launcher's report
    url = f"{API}/runs/{world.run_a}/tasks/x:finish"
    assert world.call("ada", "POST", url, json={"state": "SUCCEEDED"}).status_code == 401


def test_bindings_at_run_time(world: World, db: Database) -> None:
    with db.write_session() as s:
        root = auth_store.create_token(s, "ops", expires_in_s=None).token
        auth_store.add_binding(s, auth_store.parse_binding("admin", "*", "ops", None))
    world.api.app.state.auth.policy_source.invalidate()  # type: ignore[attr-defined]  # else within 2 s
    admin = {"authorization": f"Bearer {root}"}
    # Bound on "*" only: whoami lists the namespaces there are, for the UI's picker, each with
    # the role everywhere (team-a and team-b hold experiments; "" and "*" are not pickable).
    who = world.api.get(f"{API}/auth/whoami", headers=admin, auth=None).json()  # type: ignore[arg-type]
    assert who["namespaces"] == {"*": "admin", "team-a": "admin", "team-b": "admin"}
    made = world.api.post(
        f"{API}/auth/bindings",
        json={"user": "nobody", "role": "viewer", "namespace": "team-b"},
        headers=admin,
        auth=None,
    )  # type: ignore[arg-type]
    assert made.status_code == 200, made.text
    assert world.call("nobody", "GET", f"{API}/runs/{world.run_b}").status_code == 200
    world.api.delete(f"{API}/auth/bindings/{made.json()['id']}", headers=admin, auth=None)  # type: ignore[arg-type]
    assert world.call("nobody", "GET", f"{API}/runs/{world.run_b}").status_code == 404
    assert world.call("anonymous", "GET", f"{API}/healthz").json()["multi_user"] is True


def test_a_role_everywhere_shows_on_each_namespace_there_is() -> None:
    """Policy.namespaces: a "*" binding adds the namespaces that exist and those bindings name,
    never weakening a stronger own binding; without one, nothing is added."""
    policy = Policy(
        [
            Binding(Role.VIEWER, "*", group="staff"),
            Binding(Role.ADMIN, "team-a", user="kim"),
            Binding(Role.EDITOR, "team-z", user="someone-else"),
        ]
    )
    kim = Principal(user="kim", groups=("staff",))
    assert policy.namespaces(kim, ["team-a", "team-b", ""]) == {
        "*": Role.VIEWER,
        "team-a": Role.ADMIN,
        "team-b": Role.VIEWER,
        "team-z": Role.VIEWER,
    }
    outsider = Principal(user="lee")
    assert policy.namespaces(outsider, ["team-a", "team-b"]) == {}
    assert policy.namespaces(Principal(user="kim"), ["team-b"]) == {"team-a": Role.ADMIN}


def _request(client: str, headers: list[tuple[str, str]]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": raw,
            "client": (client, 1),
            "query_string": b"",
        }
    )


def test_trusted_header() -> None:
    asyncio.run(_trusted_header())


async def _trusted_header() -> None:
    provider = TrustedHeaderProvider(
        TrustedHeader(
            name="kubeflow-userid",
            prefix="accounts:",
            groups_header="kubeflow-groups",
            trusted_proxies=["10.0.0.0/8"],
        )
    )
    who = await provider.authenticate(
        _request("10.1.2.3", [("kubeflow-userid", "accounts:alice"), ("kubeflow-groups", "a, b")]),
        None,
    )
    assert who is not None and who.user == "alice" and who.groups == ("a", "b")
    assert (
        await provider.authenticate(
            _request("192.168.1.1", [("kubeflow-userid", "accounts:alice")]), None
        )
        is None
    )
    with pytest.raises(InvalidArgument):
        await provider.authenticate(
            _request(
                "10.1.2.3", [("kubeflow-userid", "accounts:a"), ("kubeflow-userid", "accounts:b")]
            ),
            None,
        )


# ---------------------------------------------------------------------------- OIDC


@pytest.fixture(scope="module")
def issuer() -> Iterator[dict[str, Any]]:
    """A local OIDC issuer: an RSA key, its JWKS served over HTTP on a free loopback port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"key": key, "jwks_uri": f"http://127.0.0.1:{server.server_address[1]}/jwks"}
    server.shutdown()
    thread.join(timeout=5)


def _jwt(issuer: dict[str, Any], **over: Any) -> str:
    import time

    import jwt

    claims = {
        "iss": "https://issuer.test",
        "aud": "kfpd",
        "exp": int(time.time()) + 600,
        "email": "olga@example.com",
        "groups": ["team-a-viewers"],
    }
    claims.update(over)
    key = over.pop("_key", issuer["key"])
    claims.pop("_key", None)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )


def test_oidc_bearer_tokens(issuer: dict[str, Any]) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kfpd.api.authn import OidcProvider
    from kfpd.authconfig import Oidc
    from kfpd.domain.errors import Unauthenticated

    provider = OidcProvider(
        Oidc(
            issuer="https://issuer.test",
            audience="kfpd",
            jwks_uri=issuer["jwks_uri"],
            algorithms=["RS256"],
        )
    )
    who = asyncio.run(provider.authenticate(_request("1.2.3.4", []), _jwt(issuer)))
    assert who is not None and who.user == "olga@example.com" and who.groups == ("team-a-viewers",)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad, why in [
        (_jwt(issuer, exp=1), "expired"),
        (_jwt(issuer, aud="other"), "audience"),
        (_jwt(issuer, iss="https://evil.test"), "issuer"),
        (_jwt(issuer, exp=None), "exp"),
        (_jwt(issuer, _key=stranger), "signature"),
        (_jwt(issuer, email=None), "email"),
    ]:
        with pytest.raises(Unauthenticated) as err:
            asyncio.run(provider.authenticate(_request("1.2.3.4", []), bad))
        assert why in err.value.message.lower(), (why, err.value.message)
    # A shared-secret algorithm is refused by the config itself (the JWKS is public).
    with pytest.raises(ValueError):
        Oidc(issuer="i", audience="a", jwks_uri="u", algorithms=["HS256"])


def test_oidc_groups_bind_roles(issuer: dict[str, Any], db: Database, tmp_path: Path) -> None:
    config = tmp_path / "auth.yaml"
    oidc = {
        "issuer": "https://issuer.test",
        "audience": "kfpd",
        "jwks_uri": issuer["jwks_uri"],
        "algorithms": ["RS256"],
    }
    bindings = [{"group": "team-a-viewers", "role": "viewer", "namespace": "team-a"}]
    config.write_text(
        yaml.safe_dump(
            {
                "authentication": {"api_tokens": False, "oidc": oidc},
                "authorization": {"bindings": bindings},
            }
        )
    )
    app = create_app(
        Settings(data_dir=tmp_path, orchestrate=False, auth_config=config), database=db
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        token = {"authorization": f"Bearer {_jwt(issuer)}"}
        assert (
            client.get(
                f"{API}/experiments", params={"namespace": "team-a"}, headers=token
            ).status_code
            == 200
        )
        assert (
            client.get(
                f"{API}/experiments", params={"namespace": "team-b"}, headers=token
            ).status_code
            == 403
        )
        assert (
            client.get(
                f"{API}/experiments",
                params={"namespace": "team-a"},
                headers={"authorization": "Bearer kfpd_x_y"},
            ).status_code
            == 401
        )


def test_artifacts_take_their_run_namespace(world: World) -> None:
    b = f"launcher:{world.run_b}"
    body = {"name": "t", "type": "RUNTIME", "scope_path": "root.t"}
    task_b = world.call(b, "POST", f"{API}/runs/{world.run_b}/tasks", json=body).json()["task_id"]
    made = world.call(
        b,
        "POST",
        f"{API}/artifacts",
        json={
            "run_id": world.run_b,
            "task_id": task_b,
            "producer_key": "o",
            "artifact": {"name": "d", "type": "Dataset", "namespace": "team-a"},
        },
    )
    assert made.status_code == 400, made.text  # the namespace comes from the run, not the body
    made = world.call(
        b,
        "POST",
        f"{API}/artifacts",
        json={
            "run_id": world.run_b,
            "task_id": task_b,
            "producer_key": "o",
            "artifact": {"name": "d", "type": "Dataset"},
        },
    )
    assert made.json()["namespace"] == "team-b"


def _ids_in_a(world: World) -> dict[str, str]:
    """Path parameters naming objects of namespace team-a (what other callers must not reach)."""
    launcher = f"launcher:{world.run_a}"
    body = {"name": "m", "type": "RUNTIME", "scope_path": "root.m"}
    task = world.call(launcher, "POST", f"{API}/runs/{world.run_a}/tasks", json=body).json()[
        "task_id"
    ]
    art = {
        "run_id": world.run_a,
        "task_id": task,
        "producer_key": "o",
        "artifact": {"name": "d", "type": "Dataset"},
    }
    artifact = world.call(launcher, "POST", f"{API}/artifacts", json=art).json()["artifact_id"]
    pipeline = world.call(
        "eve", "POST", f"{API}/pipelines", json={"display_name": "pa", "namespace": "team-a"}
    ).json()["pipeline_id"]
    return {
        "run_id": world.run_a,
        "task_id": task,
        "experiment_id": world.exp_a,
        "artifact_id": artifact,
        "pipeline_id": pipeline,
        "recurring_run_id": _schedule_in_a(world, start_us=now_us()),
    }


def _schedule_in_a(world: World, *, start_us: int) -> str:
    """A recurring run of team-a, made through the API by its editor: every minute from
    ``start_us``."""
    body = {
        "display_name": "nightly-a",
        "pipeline_spec": compiled("scheduled"),
        "runtime_config": {"parameters": {"when": "[[ScheduledTime]]"}},
        "trigger": {
            "periodic_schedule": {"interval_second": "60", "start_time": to_rfc3339(start_us)}
        },
        "mode": "ENABLE",
        "experiment_id": world.exp_a,
    }
    made = world.call("eve", "POST", f"{API}/recurringruns", json=body)
    assert made.status_code == 200, made.text
    assert made.json()["namespace"] == "team-a"
    return str(made.json()["recurring_run_id"])


def test_matrix_other_callers_never_reach_namespace_a(world: World) -> None:
    """Generated from the app's routes: every route naming an object of team-a, called by an
    editor of team-b, a user without bindings and the launcher of a team-b run, never succeeds
    (a hidden object answers 404); a viewer of team-a gets 403 for each verb it lacks."""
    from kfpd.domain.access import ROLE_VERBS, Role

    ids = _ids_in_a(world)
    checked = 0
    for method, path in app_routes(world.api.app.routes):  # type: ignore[attr-defined]
        rule = rule_for(method, path)
        assert rule is not None, (method, path)
        names = re.findall(r"\{([^}:]+)", path)
        if rule.access is not Access.RBAC or not names or not all(n in ids for n in names):
            continue
        url = re.sub(r"\{([^}:]+)\}", lambda m: ids[m.group(1)], path)
        for who in ("bob", "nobody", f"launcher:{world.run_b}"):
            status = world.call(who, method, url, json={}).status_code
            assert status in (403, 404), (who, method, path, status)
            if method == "GET" and not who.startswith("launcher"):
                assert status == 404, (who, method, path, status)  # no probing of ids
        assert rule.resource is not None and rule.verb is not None
        if rule.verb not in ROLE_VERBS[Role.VIEWER].get(rule.resource, frozenset()):
            status = world.call("vic", method, url, json={}).status_code
            assert status == 403, ("vic", method, path, status)
        checked += 1
    assert checked >= 25, checked  # not vacuous: most routes name an object


def test_a_launcher_cannot_link_another_teams_artifact(world: World) -> None:
    """Links stay in one namespace in multi-user mode: a task of team-b naming team-a's
    artifact as its input would get that artifact's store session (its bytes)."""
    ids = _ids_in_a(world)
    b = f"launcher:{world.run_b}"
    body = {"name": "t", "type": "RUNTIME", "scope_path": "root.t"}
    task_b = world.call(b, "POST", f"{API}/runs/{world.run_b}/tasks", json=body).json()["task_id"]
    link = {
        "task_id": task_b,
        "run_id": world.run_b,
        "artifact_id": ids["artifact_id"],
        "type": "TASK_OUTPUT_INPUT",
        "producer": {"task_name": "m"},
        "key": "data",
    }
    one = world.call(b, "POST", f"{API}/artifact_tasks", json={"artifact_task": link})
    assert one.status_code == 400 and "another namespace" in one.text, one.text
    bulk = world.call(
        b, "POST", f"{API}/artifact_tasks:batchCreate", json={"artifact_tasks": [link]}
    )
    assert bulk.status_code == 400, bulk.text
    inputs = {
        "artifacts": [
            {
                "artifacts": [{"artifact_id": ids["artifact_id"]}],
                "type": "TASK_OUTPUT_INPUT",
                "artifact_key": "data",
                "producer": {"task_name": "m"},
            }
        ]
    }
    created = world.call(
        b,
        "POST",
        f"{API}/runs/{world.run_b}/tasks",
        json={"name": "u", "type": "RUNTIME", "scope_path": "root.u", "inputs": inputs},
    )
    assert created.status_code == 400 and "another namespace" in created.text, created.text
    # The same link inside team-a is fine.
    a = f"launcher:{world.run_a2}"
    task_a = world.call(a, "POST", f"{API}/runs/{world.run_a2}/tasks", json=body).json()["task_id"]
    ok_link = {**link, "task_id": task_a, "run_id": world.run_a2}
    assert (
        world.call(a, "POST", f"{API}/artifact_tasks", json={"artifact_task": ok_link}).status_code
        == 200
    )


JOBS = f"{API}/recurringruns"
CALLERS = ("vic", "eve", "ada", "bob", "nobody", "expired", "anonymous")


def _statuses(
    world: World, method: str, url: str, callers: tuple[str, ...], **kw: Any
) -> dict[str, int]:
    return {who: world.call(who, method, url, **kw).status_code for who in callers}


def test_a_recurring_run_of_a_team_stays_in_its_namespace(world: World, db: Database) -> None:
    """A real schedule of team-a (made by its editor through the API): who may read, list,
    enable, disable and delete it, and the run the scheduler fires is team-a's only."""
    from sqlalchemy import select

    from kfpd.db.models import Run
    from kfpd.engine.scheduler import Scheduler

    launchers = (f"launcher:{world.run_a}", f"launcher:{world.run_b}")
    start = now_us() - 90 * 1_000_000  # one slot (start + 60 s) is due now
    job = _schedule_in_a(world, start_us=start)
    one = f"{JOBS}/{job}"
    refused_create = {
        "display_name": "x",
        "pipeline_spec": compiled("scheduled"),
        "runtime_config": {"parameters": {"when": "w"}},
        "trigger": {"periodic_schedule": {"interval_second": "60"}},
        "experiment_id": world.exp_a,
    }
    got = _statuses(world, "POST", JOBS, ("vic", "bob", "nobody", *launchers), json=refused_create)
    assert got == {
        "vic": 403, "bob": 403, "nobody": 403, launchers[0]: 403, launchers[1]: 403,
    }  # fmt: skip
    assert _statuses(world, "GET", one, (*CALLERS, *launchers)) == {
        "vic": 200, "eve": 200, "ada": 200, "bob": 404, "nobody": 404, "expired": 401,
        "anonymous": 401, launchers[0]: 403, launchers[1]: 403,
    }  # fmt: skip
    team_a = {"namespace": "team-a"}
    assert _statuses(world, "GET", JOBS, (*CALLERS, *launchers), params=team_a) == {
        "vic": 200, "eve": 200, "ada": 200, "bob": 403, "nobody": 403, "expired": 401,
        "anonymous": 401, launchers[0]: 403, launchers[1]: 403,
    }  # fmt: skip
    listed = world.call("vic", "GET", JOBS, params=team_a).json()["recurringRuns"]
    assert [r["recurring_run_id"] for r in listed] == [job]
    by_experiment = world.call("bob", "GET", JOBS, params={"experiment_id": world.exp_a})
    assert by_experiment.status_code == 403, by_experiment.text
    theirs = world.call("bob", "GET", JOBS, params={"namespace": "team-b"}).json()
    assert theirs.get("recurringRuns", []) == []

    # The scheduler fires it once: the run is team-a's, in the schedule's experiment.
    fired: list[str] = []
    scheduler = Scheduler(db, fired.append)
    scheduler.tick()
    assert len(fired) == 1 == scheduler.runs_fired, fired
    with db.read_session() as s:
        run = s.scalars(select(Run).where(Run.id == fired[0])).one()
        assert (run.namespace, run.experiment_id, run.recurring_run_id) == (
            "team-a",
            world.exp_a,
            job,
        )
    assert _statuses(world, "GET", f"{API}/runs/{fired[0]}", ("vic", "eve", "bob", "nobody")) == {
        "vic": 200, "eve": 200, "bob": 404, "nobody": 404,
    }  # fmt: skip
    in_a = world.call("vic", "GET", f"{API}/runs", params=team_a).json()["runs"]
    assert fired[0] in {r["run_id"] for r in in_a}
    in_b = world.call("bob", "GET", f"{API}/runs", params={"namespace": "team-b"}).json()["runs"]
    assert fired[0] not in {r["run_id"] for r in in_b}
    assert world.call("bob", "GET", f"{API}/runs", params=team_a).status_code == 403

    # enable / disable: editors and admins of team-a; viewers 403; others as if it did not exist.
    for verb in ("disable", "enable"):
        url = f"{one}:{verb}"
        assert _statuses(world, "POST", url, ("vic", "bob", "nobody", "expired", *launchers)) == {
            "vic": 403, "bob": 404, "nobody": 404, "expired": 401,
            launchers[0]: 403, launchers[1]: 403,
        }, verb  # fmt: skip
        assert world.call("eve", "POST", url).status_code == 200
        assert world.call("ada", "POST", url).status_code == 200
        want = "DISABLED" if verb == "disable" else "ENABLED"
        assert world.call("vic", "GET", one).json()["status"] == want

    # delete: the same, and then it is gone for everyone; its fired run stays team-a's.
    assert _statuses(world, "DELETE", one, ("vic", "bob", "nobody", "expired", *launchers)) == {
        "vic": 403, "bob": 404, "nobody": 404, "expired": 401, launchers[0]: 403, launchers[1]: 403,
    }  # fmt: skip
    assert world.call("vic", "GET", one).status_code == 200, "a refused delete deleted it"
    assert world.call("eve", "DELETE", one).status_code == 200
    assert _statuses(world, "GET", one, ("vic", "eve", "ada")) == {
        "vic": 404,
        "eve": 404,
        "ada": 404,
    }
    assert world.call("vic", "GET", f"{API}/runs/{fired[0]}").status_code == 200
    assert world.call("bob", "GET", f"{API}/runs/{fired[0]}").status_code == 404


def test_the_run_forms_default_experiment_is_the_namespaces(world: World) -> None:
    """The UI's run form puts a run in the picked namespace's Default experiment, made on
    first use; only who may create runs there may make it (the shared one: admins)."""
    url = "/ui/api/experiments:default"
    team_a = {"namespace": "team-a"}
    got = _statuses(
        world, "POST", url, ("vic", "bob", "nobody", "expired", "anonymous"), params=team_a
    )
    assert got == {
        "vic": 403, "bob": 403, "nobody": 403, "expired": 401, "anonymous": 401,
    }  # fmt: skip
    assert world.call(f"launcher:{world.run_a}", "POST", url, params=team_a).status_code == 403
    assert world.call("eve", "POST", url).status_code == 403  # the shared namespace's: admins
    first = world.call("eve", "POST", url, params=team_a)
    assert first.status_code == 200, first.text
    made = first.json()
    assert (made["display_name"], made["namespace"]) == ("Default", "team-a")
    assert (
        world.call("ada", "POST", url, params=team_a).json()["experiment_id"]
        == made["experiment_id"]
    )
    run = world.call(
        "eve",
        "POST",
        f"{API}/runs",
        json={"pipeline_spec": compiled("graph_demo"), "experiment_id": made["experiment_id"]},
    )
    assert run.status_code == 200, run.text
    assert world.call("bob", "GET", f"{API}/runs/{run.json()['run_id']}").status_code == 404
    names = world.call("vic", "GET", f"{API}/experiments", params=team_a).json()["experiments"]
    assert sorted(e["display_name"] for e in names) == ["Default", "x"]


def test_a_teams_pipelines_are_listed_with_its_namespace(world: World) -> None:
    """What the UI's pipelines page asks: the picked namespace's pipelines, then the shared
    ones; a team's pipeline is never in another team's list nor in the shared one."""
    mine = world.call(
        "eve", "POST", f"{API}/pipelines", json={"display_name": "pa", "namespace": "team-a"}
    ).json()["pipeline_id"]
    theirs = world.call(
        "bob", "POST", f"{API}/pipelines", json={"display_name": "pb", "namespace": "team-b"}
    ).json()["pipeline_id"]
    shared = world.call("ada", "POST", f"{API}/pipelines", json={"display_name": "ps"})
    assert shared.status_code == 403, "an admin of team-a only is no admin of shared pipelines"

    def ids(who: str, **params: str) -> set[str]:
        response = world.call(who, "GET", f"{API}/pipelines", params=params)
        assert response.status_code == 200, response.text
        return {p["pipeline_id"] for p in response.json().get("pipelines", [])}

    assert ids("vic", namespace="team-a") == {mine}
    assert ids("bob", namespace="team-b") == {theirs}
    assert ids("vic") == ids("bob") == set()  # the shared namespace: neither team's
    assert (
        world.call("bob", "GET", f"{API}/pipelines", params={"namespace": "team-a"}).status_code
        == 403
    )
    upload = world.call(
        "vic",
        "POST",
        f"{API}/pipelines",
        json={"display_name": "pv", "namespace": "team-a"},
    )
    assert upload.status_code == 403  # viewers list, editors create
    # The UI's upload: into the picked namespace for its editors, shared for admins only.
    package = ("p.json", json.dumps(compiled("graph_demo")).encode())
    for who, namespace, status in [
        ("eve", "team-a", 200),
        ("vic", "team-a", 403),
        ("bob", "team-a", 403),
        ("eve", "", 403),
    ]:
        made = world.call(
            who,
            "POST",
            f"{API}/pipelines/upload",
            params={"name": f"up-{who}", "namespace": namespace},
            files={"uploadfile": package},
        )
        assert made.status_code == status, (who, namespace, made.text)
    assert len(ids("eve", namespace="team-a")) == 2
