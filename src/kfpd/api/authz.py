"""Authorization: ONE table from route to (resource, verb, where the namespace comes from), and
ONE dependency (:func:`authorize`) that every route runs.

Single-user mode (no ``--auth-config``): every route is open, except the writes a launcher makes
(tasks, artifacts, links, logs, findCached, ``:finish``), which need the run token of the run
they touch. Multi-user mode: every non-public route needs a principal; users need a role binding
giving the route's verb on the namespace the call touches; launchers act on their own run only.

For an object named by id the namespace comes from its stored row. A caller who may not even
``get`` an object named in the path is told it does not exist (404), as if it were missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import anyio
from fastapi import Request
from starlette.routing import BaseRoute

from kfpd.db.engine import Database
from kfpd.domain.access import (
    ALL_NAMESPACES,
    LAUNCHER_VERBS,
    Binding,
    Policy,
    Principal,
    Resource,
    Verb,
)
from kfpd.domain.errors import NotFound, PermissionDenied, Unauthenticated
from kfpd.services import auth_store
from kfpd.services.access import Kind, RunStanding, namespaces_of, run_standing


class Access(Enum):
    PUBLIC = "public"  # no credentials ever: health, API docs, the UI's shell and assets
    SIGNED_IN = "signed-in"  # any principal (multi-user); open in single-user mode
    LAUNCHER = "launcher"  # a run token for the run it touches, in every mode
    RBAC = "rbac"  # a role giving the verb on the namespace; launcher writes need a run token


# ---------------------------------------------------------------------------- where namespaces are


@dataclass(frozen=True)
class Ref:
    """Objects (by kind) named by one request field: ``source`` is path, query or body; ``field``
    a dotted path into the JSON body, ``*`` stepping into every item of a list."""

    kind: Kind
    source: str
    name: str


@dataclass(frozen=True)
class NamespaceField:
    """A namespace given by the request itself (list and create calls).

    ``empty``: what an absent or empty value means, ``""`` (the default namespace) or ``"*"``
    (every namespace, as single-user lists do).
    """

    source: str
    name: str
    empty: str = ""


Locator = Ref | NamespaceField


@dataclass(frozen=True)
class Rule:
    access: Access
    resource: Resource | None = None
    verb: Verb | None = None
    where: tuple[Locator, ...] = ()
    launcher_write: bool = False  # a launcher's write: a run token even in single-user mode

    def describe(self) -> str:
        if self.resource is None or self.verb is None:
            return self.access.value
        return f"{self.resource.value}:{self.verb.value}"


PUBLIC = Rule(Access.PUBLIC)
SIGNED_IN = Rule(Access.SIGNED_IN)


def rbac(resource: Resource, verb: Verb, *where: Locator, launcher_write: bool = False) -> Rule:
    return Rule(Access.RBAC, resource, verb, where, launcher_write)


def launcher(*where: Locator) -> Rule:
    return Rule(Access.LAUNCHER, Resource.RUNS, Verb.UPDATE, where, True)


R, P, E, ART, B, J = (
    Resource.RUNS,
    Resource.PIPELINES,
    Resource.EXPERIMENTS,
    Resource.ARTIFACTS,
    Resource.BINDINGS,
    Resource.JOBS,
)
PATH_RUN = Ref(Kind.RUN, "path", "run_id")
PATH_EXPERIMENT = Ref(Kind.EXPERIMENT, "path", "experiment_id")
PATH_PIPELINE = Ref(Kind.PIPELINE, "path", "pipeline_id")
PATH_ARTIFACT = Ref(Kind.ARTIFACT, "path", "artifact_id")
PATH_TASK = Ref(Kind.TASK, "path", "task_id")
PATH_JOB = Ref(Kind.RECURRING_RUN, "path", "recurring_run_id")
LIST_NS = NamespaceField("query", "namespace", empty=ALL_NAMESPACES)
QUERY_NS = NamespaceField("query", "namespace")
EVERY_NS = NamespaceField("query", "", empty=ALL_NAMESPACES)  # server-wide: admins of "*"
V = "/apis/v2beta1"
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
UI = "/ui/api"

# method, path -> rule. Every route of the app has one (tests/test_authz_matrix.py checks it).
RULES: dict[tuple[str, str], Rule] = {
    # health, docs, the UI's shell (its data comes from the API routes below)
    ("GET", f"{V}/healthz"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # Prometheus: counts and timings, no names or ids
    ("GET", "/docs-assets"): PUBLIC,  # a mount: the API docs' scripts and styles
    ("GET", "/"): PUBLIC,
    ("GET", "/ui/static"): PUBLIC,  # a mount
    ("GET", "/ui/v/{version}"): PUBLIC,  # a mount: the UI's versioned assets
    # who am I, which namespaces (the UI's picker)
    ("GET", f"{V}/auth/whoami"): SIGNED_IN,
    # role bindings and API tokens (admins of every namespace)
    ("GET", f"{V}/auth/bindings"): rbac(B, Verb.LIST, EVERY_NS),
    ("POST", f"{V}/auth/bindings"): rbac(B, Verb.CREATE, EVERY_NS),
    ("DELETE", f"{V}/auth/bindings/{{binding_id}}"): rbac(B, Verb.DELETE, EVERY_NS),
    # the launcher's own calls
    ("POST", f"{V}/runs/{{run_id}}/tasks/{{task_id}}:finish"): launcher(PATH_RUN),
    ("POST", f"{V}/runs/{{run_id}}/tasks/{{task_id}}/logs"): launcher(PATH_RUN),
    # object-store credentials for the task's artifact URIs: its launcher only
    ("POST", f"{V}/runs/{{run_id}}/tasks/{{task_id}}/storage:sessions"): launcher(PATH_RUN),
    ("GET", f"{V}/runs/{{run_id}}/tasks/{{task_id}}/logs"): rbac(R, Verb.GET, PATH_RUN),
    # tasks (upstream: CreateTask/UpdateTask(s) need runs:update, reads runs:get)
    ("POST", f"{V}/runs/{{run_id}}/tasks"): rbac(R, Verb.UPDATE, PATH_RUN, launcher_write=True),
    ("PATCH", f"{V}/runs/{{run_id}}/tasks/{{task_id}}"): rbac(
        R, Verb.UPDATE, PATH_RUN, launcher_write=True
    ),
    ("POST", f"{V}/runs/{{run_id}}/tasks:batchUpdate"): rbac(
        R, Verb.UPDATE, PATH_RUN, launcher_write=True
    ),
    ("GET", f"{V}/runs/{{run_id}}/tasks/{{task_id}}"): rbac(R, Verb.GET, PATH_RUN),
    ("GET", f"{V}/runs/{{run_id}}/tasks"): rbac(R, Verb.GET, PATH_RUN),
    ("POST", f"{V}/tasks:findCached"): rbac(
        R, Verb.LIST, NamespaceField("body", "namespace"), launcher_write=True
    ),
    ("GET", f"{V}/tasks/{{task_id}}/lineage"): rbac(R, Verb.GET, PATH_TASK),
    # artifacts and their links to tasks
    ("POST", f"{V}/artifacts"): rbac(
        ART, Verb.CREATE, Ref(Kind.RUN, "body", "run_id"), launcher_write=True
    ),
    ("POST", f"{V}/artifacts:batchCreate"): rbac(
        ART, Verb.CREATE, Ref(Kind.RUN, "body", "artifacts.*.run_id"), launcher_write=True
    ),
    ("GET", f"{V}/artifacts/{{artifact_id}}"): rbac(ART, Verb.GET, PATH_ARTIFACT),
    ("GET", f"{V}/artifacts"): rbac(ART, Verb.LIST, LIST_NS),
    ("GET", f"{V}/artifacts/{{artifact_id}}/lineage"): rbac(ART, Verb.GET, PATH_ARTIFACT),
    ("POST", f"{V}/artifact_tasks"): rbac(
        R, Verb.UPDATE, Ref(Kind.RUN, "body", "artifact_task.run_id"), launcher_write=True
    ),
    ("POST", f"{V}/artifact_tasks:batchCreate"): rbac(
        R, Verb.UPDATE, Ref(Kind.RUN, "body", "artifact_tasks.*.run_id"), launcher_write=True
    ),
    ("GET", f"{V}/artifact_tasks"): rbac(
        R,
        Verb.GET,
        Ref(Kind.RUN, "query", "run_ids"),
        Ref(Kind.TASK, "query", "task_ids"),
        Ref(Kind.ARTIFACT, "query", "artifact_ids"),
    ),
    # runs (a run's namespace is its experiment's)
    ("POST", f"{V}/runs"): rbac(R, Verb.CREATE, Ref(Kind.EXPERIMENT, "body", "experiment_id")),
    ("GET", f"{V}/runs/{{run_id}}"): rbac(R, Verb.GET, PATH_RUN),
    ("GET", f"{V}/runs"): rbac(
        R, Verb.LIST, LIST_NS, Ref(Kind.EXPERIMENT, "query", "experiment_id")
    ),
    ("POST", f"{V}/runs/{{run_id}}:archive"): rbac(R, Verb.ARCHIVE, PATH_RUN),
    ("POST", f"{V}/runs/{{run_id}}:unarchive"): rbac(R, Verb.UNARCHIVE, PATH_RUN),
    ("DELETE", f"{V}/runs/{{run_id}}"): rbac(R, Verb.DELETE, PATH_RUN),
    ("POST", f"{V}/runs/{{run_id}}:terminate"): rbac(R, Verb.TERMINATE, PATH_RUN),
    ("POST", f"{V}/runs/{{run_id}}:retry"): rbac(R, Verb.RETRY, PATH_RUN),
    # experiments
    ("POST", f"{V}/experiments"): rbac(E, Verb.CREATE, NamespaceField("body", "namespace")),
    ("GET", f"{V}/experiments/{{experiment_id}}"): rbac(E, Verb.GET, PATH_EXPERIMENT),
    ("GET", f"{V}/experiments"): rbac(E, Verb.LIST, LIST_NS),
    ("POST", f"{V}/experiments/{{experiment_id}}:archive"): rbac(E, Verb.ARCHIVE, PATH_EXPERIMENT),
    ("POST", f"{V}/experiments/{{experiment_id}}:unarchive"): rbac(
        E, Verb.UNARCHIVE, PATH_EXPERIMENT
    ),
    ("DELETE", f"{V}/experiments/{{experiment_id}}"): rbac(E, Verb.DELETE, PATH_EXPERIMENT),
    # pipelines (shared ones in namespace "": read by all, changed by admins)
    ("POST", f"{V}/pipelines/upload"): rbac(P, Verb.CREATE, QUERY_NS),
    ("POST", f"{V}/pipelines/upload_version"): rbac(
        P, Verb.UPDATE, Ref(Kind.PIPELINE, "query", "pipelineid")
    ),
    ("POST", f"{V}/pipelines"): rbac(P, Verb.CREATE, NamespaceField("body", "namespace")),
    ("POST", f"{V}/pipelines/create"): rbac(
        P, Verb.CREATE, NamespaceField("body", "pipeline.namespace")
    ),
    ("GET", f"{V}/pipelines/names/{{name}}"): rbac(P, Verb.GET, QUERY_NS),
    ("GET", f"{V}/pipelines/{{pipeline_id}}"): rbac(P, Verb.GET, PATH_PIPELINE),
    ("GET", f"{V}/pipelines"): rbac(P, Verb.LIST, QUERY_NS),
    ("DELETE", f"{V}/pipelines/{{pipeline_id}}"): rbac(P, Verb.DELETE, PATH_PIPELINE),
    ("POST", f"{V}/pipelines/{{pipeline_id}}/versions"): rbac(P, Verb.UPDATE, PATH_PIPELINE),
    ("GET", f"{V}/pipelines/{{pipeline_id}}/versions"): rbac(P, Verb.GET, PATH_PIPELINE),
    ("GET", f"{V}/pipelines/{{pipeline_id}}/versions/{{version_id}}"): rbac(
        P, Verb.GET, PATH_PIPELINE
    ),
    ("DELETE", f"{V}/pipelines/{{pipeline_id}}/versions/{{version_id}}"): rbac(
        P, Verb.UPDATE, PATH_PIPELINE
    ),
    # recurring runs (upstream's jobs; a schedule's namespace is its experiment's)
    ("POST", f"{V}/recurringruns"): rbac(
        J, Verb.CREATE, Ref(Kind.EXPERIMENT, "body", "experiment_id")
    ),
    ("GET", f"{V}/recurringruns/{{recurring_run_id}}"): rbac(J, Verb.GET, PATH_JOB),
    ("GET", f"{V}/recurringruns"): rbac(
        J, Verb.LIST, LIST_NS, Ref(Kind.EXPERIMENT, "query", "experiment_id")
    ),
    ("PATCH", f"{V}/recurringruns/{{recurring_run_id}}"): rbac(J, Verb.UPDATE, PATH_JOB),
    ("POST", f"{V}/recurringruns/{{recurring_run_id}}:enable"): rbac(J, Verb.ENABLE, PATH_JOB),
    ("POST", f"{V}/recurringruns/{{recurring_run_id}}:disable"): rbac(J, Verb.DISABLE, PATH_JOB),
    ("DELETE", f"{V}/recurringruns/{{recurring_run_id}}"): rbac(J, Verb.DELETE, PATH_JOB),
    # the UI's own reads (artifact bytes and previews are upstream's runs:readArtifact)
    ("GET", f"{UI}/runs/{{run_id}}/graph"): rbac(R, Verb.GET, PATH_RUN),
    ("GET", f"{UI}/runs/{{run_id}}/metrics"): rbac(R, Verb.GET, PATH_RUN),
    ("GET", f"{UI}/compare"): rbac(R, Verb.GET, Ref(Kind.RUN, "query", "run_ids")),
    ("GET", f"{UI}/artifacts"): rbac(ART, Verb.LIST, QUERY_NS, Ref(Kind.RUN, "query", "run_id")),
    # the run form's default experiment, made on first use: what CreateRun does without one
    ("POST", f"{UI}/experiments:default"): rbac(R, Verb.CREATE, QUERY_NS),
    ("GET", f"{UI}/artifacts/{{artifact_id}}/preview"): rbac(R, Verb.READ_ARTIFACT, PATH_ARTIFACT),
    ("GET", f"{UI}/artifacts/{{artifact_id}}/content"): rbac(R, Verb.READ_ARTIFACT, PATH_ARTIFACT),
    ("GET", f"{UI}/artifacts/{{artifact_id}}/render"): rbac(R, Verb.READ_ARTIFACT, PATH_ARTIFACT),
    # APIs kfpd does not implement (501 for every method): nothing to protect but the answer
    **{(m, "/apis/v1beta1/{path:path}"): SIGNED_IN for m in _ALL_METHODS},
    **{(m, f"{V}/visualizations{{path:path}}"): SIGNED_IN for m in _ALL_METHODS},
    ("GET", f"{V}/runs/{{run_id}}/nodes/{{node_id}}/artifacts/{{artifact_name}}:read"): SIGNED_IN,
}


def app_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route an app serves, included routers and mounts too."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:  # FastAPI's included router
            yield from app_routes(candidates())
            continue
        path = getattr(route, "path", None)
        if path is None:
            continue
        methods = getattr(route, "methods", None) or {"GET"}  # a Mount serves GETs
        for method in sorted(set(methods) - {"HEAD"}):
            yield method, path


_VERSIONED_ASSETS = "/ui/v/"


def rule_for(method: str, path: str) -> Rule | None:
    if path.startswith(_VERSIONED_ASSETS):
        path = _VERSIONED_ASSETS + "{version}"
    return RULES.get((method, path))


# ---------------------------------------------------------------------------- the dependency


class Authenticator:
    """What turns a request into a principal (api/authn.py): None means anonymous."""

    async def authenticate(self, request: Request) -> Principal | None:
        raise NotImplementedError


class PolicySource:
    """The bindings of the auth config plus those stored in the database (admin API, CLI),
    re-read at most every ``ttl_s`` seconds and at once after a change made here."""

    def __init__(self, configured: list[Binding], db: Database, ttl_s: float = 2.0) -> None:
        self._configured = configured
        self._db = db
        self._ttl_s = ttl_s
        self._cached: Policy | None = None
        self._read_at = 0.0

    def invalidate(self) -> None:
        self._cached = None

    def policy(self) -> Policy:
        now = time.monotonic()
        if self._cached is None or now - self._read_at > self._ttl_s:
            with self._db.read_session() as s:
                stored = auth_store.stored_bindings(s)
            self._cached, self._read_at = Policy([*self._configured, *stored]), now
        return self._cached


@dataclass
class AuthState:
    """What the dependency needs, kept in ``app.state.auth``."""

    authenticator: Authenticator
    multi_user: bool = False
    policy_source: PolicySource | None = None

    async def policy(self) -> Policy:
        if self.policy_source is None:
            return Policy()
        return await anyio.to_thread.run_sync(self.policy_source.policy)


def _route_key(request: Request) -> tuple[str, str]:
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return request.method, path


async def authorize(request: Request) -> None:
    """The one authorization dependency (LeanRoute endpoints call it themselves)."""
    state: AuthState = request.app.state.auth
    method, path = _route_key(request)
    rule = rule_for(method, path)
    if rule is None:
        raise PermissionDenied(f"no authorization rule for {method} {path}: refused")
    if rule.access is Access.PUBLIC:
        return
    if not state.multi_user and rule.access is not Access.LAUNCHER and not rule.launcher_write:
        return  # single-user: open to whoever reaches the (loopback) port
    principal = await state.authenticator.authenticate(request)
    request.state.principal = principal
    if principal is not None and principal.is_launcher:
        await _check_launcher(request, rule, principal)
        return
    if rule.access is Access.LAUNCHER or (rule.launcher_write and not state.multi_user):
        raise Unauthenticated("a run token is required (Authorization: Bearer <run token>)")
    if not state.multi_user:
        return
    if principal is None:
        raise Unauthenticated("sign in: an API token, an OIDC bearer token or the proxy's header")
    if rule.access is Access.SIGNED_IN:
        return
    await _check_user(request, rule, principal, await state.policy())


async def _check_launcher(request: Request, rule: Rule, principal: Principal) -> None:
    """A launcher: its own run, upstream's pipeline-runner verbs, never another run."""
    if rule.access is Access.SIGNED_IN:
        return
    assert rule.resource is not None and rule.verb is not None
    if rule.verb not in LAUNCHER_VERBS.get(rule.resource, ()):
        raise PermissionDenied(f"a run token may not {rule.describe()}")
    target = await _Target.read(request, rule)
    runs = target.ids.get(Kind.RUN, set())
    if runs - {principal.run_id}:
        raise PermissionDenied(f"the run token is for another run, not {sorted(runs)[0]}")
    others: dict[Kind, set[str]] = {k: v for k, v in target.ids.items() if k != Kind.RUN and v}
    if runs and not others and not target.namespaces:
        return  # its own run, named: writes to a final run meet the terminal-run guard
    # A call scoped by namespace or by other objects: they must be in its run's namespace.
    db: Database = request.app.state.db
    own, found = await anyio.to_thread.run_sync(_launcher_scope, db, principal.run_id, others)
    if own is None or own.final:
        raise Unauthenticated("the run token's run has ended or is gone")
    if found is None:
        raise NotFound("not found")
    touched = found | {ns for ns in target.namespaces}
    if touched - {own.namespace}:
        raise PermissionDenied("a run token acts in its own run's namespace only")


def _launcher_scope(
    db: Database, run_id: str, others: dict[Kind, set[str]]
) -> tuple[RunStanding | None, set[str] | None]:
    with db.read_session() as s:
        conn = s.connection()
        own = run_standing(conn, run_id)
        return own, _resolve(conn, others)


def _resolve(conn: Any, ids: dict[Kind, set[str]]) -> set[str] | None:
    """The namespaces of the named objects; None when one of them does not exist."""
    namespaces: set[str] = set()
    for kind, wanted in ids.items():
        found = namespaces_of(conn, kind, wanted)
        if len(found) != len(wanted):
            return None
        namespaces |= set(found.values())
    return namespaces


async def _check_user(request: Request, rule: Rule, principal: Principal, policy: Policy) -> None:
    assert rule.resource is not None and rule.verb is not None
    target = await _Target.read(request, rule)
    named = {k: v for k, v in target.ids.items() if v}
    found: set[str] | None = set()
    if named:
        db: Database = request.app.state.db
        found = await anyio.to_thread.run_sync(_resolve_in, db, named)
    path_named = any(loc.source == "path" for loc in rule.where if isinstance(loc, Ref))
    if found is None:
        raise NotFound("not found") if path_named else NotFound("a named object was not found")
    namespaces = found | target.namespaces
    if not namespaces:
        namespaces = {""}  # nothing named: the default namespace (e.g. a run without experiment)
    for namespace in sorted(namespaces):
        if policy.allows(principal, namespace, rule.resource, rule.verb):
            continue
        if path_named and not policy.allows(principal, namespace, rule.resource, Verb.GET):
            raise NotFound("not found")  # no probing of ids in other namespaces
        shown = "every namespace" if namespace == ALL_NAMESPACES else f"namespace {namespace!r}"
        raise PermissionDenied(f"{principal.describe()} may not {rule.describe()} in {shown}")


def _resolve_in(db: Database, named: dict[Kind, set[str]]) -> set[str] | None:
    with db.read_session() as s:
        return _resolve(s.connection(), named)


@dataclass
class _Target:
    ids: dict[Kind, set[str]]
    namespaces: set[str]

    @classmethod
    async def read(cls, request: Request, rule: Rule) -> _Target:
        ids: dict[Kind, set[str]] = {}
        namespaces: set[str] = set()
        body: Any = None
        if any(loc.source == "body" for loc in rule.where):
            body = await _json_body(request)
        for loc in rule.where:
            values = [v for v in _values(request, body, loc.source, loc.name) if v]
            if isinstance(loc, Ref):
                ids.setdefault(loc.kind, set()).update(values)
            else:
                namespaces.update(values)
        if not namespaces and not any(ids.values()):
            # Nothing named: what an absent namespace means for this call.
            namespaces.update(loc.empty for loc in rule.where if isinstance(loc, NamespaceField))
        return cls(ids, namespaces)


async def _json_body(request: Request) -> Any:
    # FastAPI parsed the body into this same Request before solving dependencies: reuse it
    # (read only) rather than decode the bytes a second time.
    try:
        return await request.json()
    except ValueError:
        return None  # the route answers 400 for it (an empty body too); no names seen here


def _values(request: Request, body: Any, source: str, name: str) -> list[str]:
    if source == "path":
        value = request.path_params.get(name)
        return [str(value)] if value is not None else []
    if source == "query":
        return request.query_params.getlist(name)
    return [str(v) for v in _dig(body, name.split(".")) if isinstance(v, str | int)]


def _dig(value: Any, steps: list[str]) -> Iterator[Any]:
    if not steps:
        if value is not None:
            yield value
        return
    step, rest = steps[0], steps[1:]
    if step == "*":
        for item in value if isinstance(value, list) else []:
            yield from _dig(item, rest)
    elif isinstance(value, dict):
        yield from _dig(value.get(step), rest)
