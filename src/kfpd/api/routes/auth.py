"""Who am I (the UI's namespace picker) and role bindings at run time (admins of every
namespace). Authorization for these routes is in api/authz.py like every other route."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from kfpd.api.authz import AuthState
from kfpd.api.deps import Db, database_of
from kfpd.db.engine import Database
from kfpd.domain.access import ALL_NAMESPACES, Principal, Role
from kfpd.services import auth_store
from kfpd.services.access import existing_namespaces

router = APIRouter(prefix="/apis/v2beta1/auth", tags=["auth"])


_SET = {"type": "string", "minLength": 1}
_UNSET = {"anyOf": [{"type": "null"}, {"const": ""}]}


def _binding_rules(schema: dict[str, Any]) -> None:
    """What auth_store.parse_binding checks: a known role, a namespace, exactly one of
    user or group."""
    schema["required"] = ["role", "namespace"]
    schema["properties"]["role"] = {"type": "string", "enum": [role.value for role in Role]}
    schema["properties"]["namespace"] = {"type": "string"}
    schema["anyOf"] = [
        {"required": ["user"], "properties": {"user": _SET, "group": _UNSET}},
        {"required": ["group"], "properties": {"group": _SET, "user": _UNSET}},
    ]


class BindingBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=_binding_rules)

    role: str
    namespace: str | None = None
    user: str | None = None
    group: str | None = None


def _binding_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user,
        "group": row.group,
        "role": row.role,
        "namespace": row.namespace,
    }


@router.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    """The caller and, per namespace, its strongest role (multi-user mode)."""
    state: AuthState = request.app.state.auth
    principal: Principal | None = getattr(request.state, "principal", None)
    if not state.multi_user or principal is None:
        return {"multi_user": state.multi_user, "user": "", "groups": [], "namespaces": {}}
    policy = await state.policy()
    roles = policy.namespaces(principal)
    if ALL_NAMESPACES in roles:  # a role everywhere: list the namespaces there are
        existing = await anyio.to_thread.run_sync(_existing_namespaces, database_of(request))
        roles = policy.namespaces(principal, existing)
    return {
        "multi_user": True,
        "user": principal.user,
        "groups": list(principal.groups),
        "run_id": principal.run_id,
        "namespaces": {ns: role.value for ns, role in sorted(roles.items())},
    }


def _existing_namespaces(db: Database) -> list[str]:
    with db.read_session() as s:
        return existing_namespaces(s.connection())


@router.get("/bindings")
def list_bindings(db: Db) -> dict[str, Any]:
    with db.read_session() as s:
        return {"bindings": [_binding_out(r) for r in auth_store.list_bindings(s)]}


@router.post("/bindings")
def add_binding(body: BindingBody, db: Db, request: Request) -> dict[str, Any]:
    binding = auth_store.parse_binding(body.role, body.namespace, body.user, body.group)
    with db.write_session() as s:
        row = auth_store.add_binding(s, binding)
        out = _binding_out(row)
    _changed(request)
    return out


@router.delete("/bindings/{binding_id}")
def delete_binding(binding_id: str, db: Db, request: Request) -> dict[str, Any]:
    with db.write_session() as s:
        auth_store.delete_binding(s, binding_id)
    _changed(request)
    return {}


def _changed(request: Request) -> None:
    state: AuthState = request.app.state.auth
    if state.policy_source is not None:
        state.policy_source.invalidate()
