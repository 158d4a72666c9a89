"""Who may do what: principals, roles, role bindings and the verb table (pure, no I/O).

Roles follow upstream KFP's defaults (view / edit, plus admin): per namespace, a binding gives a
user or a group one role; namespace ``"*"`` binds every namespace. Shared pipelines live in
namespace ``""``: every authenticated user may read them, only admins may change them. A launcher
holds a run token: it acts for its own run only, with upstream's pipeline-runner rights.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

ALL_NAMESPACES = "*"
SHARED_NAMESPACE = ""


class Resource(StrEnum):
    PIPELINES = "pipelines"
    EXPERIMENTS = "experiments"
    RUNS = "runs"
    JOBS = "jobs"  # recurring runs
    ARTIFACTS = "artifacts"
    BINDINGS = "bindings"  # kfpd: role bindings and API tokens of others (admins)


class Verb(StrEnum):
    GET = "get"
    LIST = "list"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    TERMINATE = "terminate"
    RETRY = "retry"
    READ_ARTIFACT = "readArtifact"
    ENABLE = "enable"
    DISABLE = "disable"


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


def _verbs(*names: Verb) -> frozenset[Verb]:
    return frozenset(names)


_READ = _verbs(Verb.GET, Verb.LIST)
_VIEWER: dict[Resource, frozenset[Verb]] = {
    Resource.PIPELINES: _READ,
    Resource.EXPERIMENTS: _READ,
    Resource.JOBS: _READ,
    Resource.ARTIFACTS: _READ,
    Resource.RUNS: _READ | {Verb.READ_ARTIFACT},
}
_EDITOR: dict[Resource, frozenset[Verb]] = {
    Resource.PIPELINES: _READ | {Verb.CREATE, Verb.UPDATE, Verb.DELETE},
    Resource.EXPERIMENTS: _READ | {Verb.CREATE, Verb.DELETE, Verb.ARCHIVE, Verb.UNARCHIVE},
    Resource.JOBS: _READ | {Verb.CREATE, Verb.UPDATE, Verb.DELETE, Verb.ENABLE, Verb.DISABLE},
    Resource.ARTIFACTS: _READ | {Verb.CREATE},
    Resource.RUNS: _VIEWER[Resource.RUNS]
    | {
        Verb.CREATE,
        Verb.UPDATE,
        Verb.DELETE,
        Verb.ARCHIVE,
        Verb.UNARCHIVE,
        Verb.TERMINATE,
        Verb.RETRY,
    },
}
_ADMIN: dict[Resource, frozenset[Verb]] = {
    **_EDITOR,
    Resource.BINDINGS: _READ | {Verb.CREATE, Verb.DELETE},
}
ROLE_VERBS: dict[Role, dict[Resource, frozenset[Verb]]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.ADMIN: _ADMIN,
}
# Upstream's pipeline-runner: what a task may do, in its own run only.
LAUNCHER_VERBS: dict[Resource, frozenset[Verb]] = {
    Resource.RUNS: _verbs(Verb.GET, Verb.LIST, Verb.UPDATE),
    Resource.ARTIFACTS: _verbs(Verb.GET, Verb.LIST, Verb.CREATE),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``run_id`` set: a launcher acting for that run (no user)."""

    user: str = ""
    groups: tuple[str, ...] = ()
    run_id: str = ""
    via: str = ""  # the provider that recognised the caller (api-token, header, oidc, run-token)

    @property
    def is_launcher(self) -> bool:
        return bool(self.run_id)

    def describe(self) -> str:
        return f"run {self.run_id}" if self.run_id else f"user {self.user!r}"


@dataclass(frozen=True)
class Binding:
    role: Role
    namespace: str
    user: str = ""
    group: str = ""

    def applies_to(self, principal: Principal) -> bool:
        if principal.is_launcher:
            return False
        if self.user:
            return self.user == principal.user
        return bool(self.group) and self.group in principal.groups

    def covers(self, namespace: str) -> bool:
        return self.namespace in (ALL_NAMESPACES, namespace)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass
class Policy:
    bindings: list[Binding] = field(default_factory=list)

    def roles(self, principal: Principal, namespace: str) -> set[Role]:
        return {b.role for b in self.bindings if b.applies_to(principal) and b.covers(namespace)}

    def allows(self, principal: Principal, namespace: str, resource: Resource, verb: Verb) -> bool:
        if resource is Resource.PIPELINES and namespace == SHARED_NAMESPACE:
            # Shared pipelines: readable by everyone signed in, changed by admins only.
            if verb in _READ and not principal.is_launcher:
                return True
            return Role.ADMIN in self.roles(principal, namespace)
        roles = self.roles(principal, namespace)
        return any(verb in ROLE_VERBS[role].get(resource, ()) for role in roles)

    def namespaces(self, principal: Principal, existing: Iterable[str] = ()) -> dict[str, Role]:
        """The namespaces a principal has a role in, with its strongest role there.

        A role on every namespace (``"*"``) names no namespace to pick: it also shows on each
        of ``existing`` (those that hold something) and on each namespace a binding names, so
        an admin of every namespace gets them in the UI's picker rather than an empty one."""
        best: dict[str, Role] = {}
        for b in self.bindings:
            if b.applies_to(principal):
                best[b.namespace] = _stronger(best.get(b.namespace), b.role)
        everywhere = best.get(ALL_NAMESPACES)
        if everywhere is not None:
            for namespace in {*existing, *(b.namespace for b in self.bindings)}:
                if namespace not in (ALL_NAMESPACES, SHARED_NAMESPACE):
                    best[namespace] = _stronger(best.get(namespace), everywhere)
        return best


def _stronger(current: Role | None, other: Role) -> Role:
    order = list(Role)
    return other if current is None or order.index(other) > order.index(current) else current


def launcher_allows(
    principal: Principal, run_ids: Iterable[str], resource: Resource, verb: Verb
) -> bool:
    """A launcher acts on its own run only, with pipeline-runner verbs."""
    runs = set(run_ids)
    return (
        principal.is_launcher
        and runs == {principal.run_id}
        and verb in LAUNCHER_VERBS.get(resource, ())
    )


def role_verbs_table() -> list[tuple[str, str, list[str]]]:
    """(role, resource, verbs) rows, for docs and the admin API."""
    return [
        (role.value, resource.value, sorted(v.value for v in verbs))
        for role, table in ROLE_VERBS.items()
        for resource, verbs in table.items()
    ]
