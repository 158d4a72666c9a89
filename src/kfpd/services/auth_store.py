"""API tokens and role bindings kept in the database.

A token is stored as its id (public) and a SHA-256 digest; the token itself is shown once, when
it is created. Bindings stored here add to those of the auth config file (docs/multi-user.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from kfpd.db.models import ApiToken, RoleBinding
from kfpd.domain.access import ALL_NAMESPACES, Binding, Role
from kfpd.domain.errors import InvalidArgument, NotFound
from kfpd.domain.timeutil import now_us
from kfpd.domain.tokens import api_token_digest, api_token_id, api_token_matches, new_api_token
from kfpd.services.common import flush_unique, new_id

# A token's last use is written at most this often (microseconds): not one write per request.
LAST_USE_RESOLUTION_US = 60 * 1_000_000


@dataclass(frozen=True)
class NewToken:
    id: str
    user: str
    token: str  # shown once
    expires_at: int  # microseconds, 0 = never


def create_token(
    session: Session, user: str, *, expires_in_s: int | None, description: str = ""
) -> NewToken:
    user = user.strip()
    if not user:
        raise InvalidArgument("a token needs a user")
    token_id, token = new_api_token()
    now = now_us()
    expires = now + expires_in_s * 1_000_000 if expires_in_s else 0
    session.add(
        ApiToken(
            id=token_id,
            user=user,
            digest=api_token_digest(token),
            description=description,
            created_at=now,
            expires_at=expires,
            last_used_at=0,
            revoked_at=0,
        )
    )
    session.flush()
    return NewToken(token_id, user, token, expires)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, token_id: str) -> None:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    if not row.revoked_at:
        row.revoked_at = now_us()


@dataclass(frozen=True)
class TokenCheck:
    user: str = ""
    problem: str = ""  # why the token is refused ("" = accepted)


def check_token(session: Session, token: str) -> TokenCheck:
    """Who a presented API token belongs to, or why it is refused; records its last use."""
    token_id = api_token_id(token)
    row = session.get(ApiToken, token_id) if token_id else None
    # Compare even when the id is unknown, so timing tells nothing about which ids exist.
    digest = row.digest if row is not None else api_token_digest("")
    if not api_token_matches(token, digest) or row is None:
        return TokenCheck(problem="the API token is not valid")
    now = now_us()
    if row.revoked_at:
        return TokenCheck(problem="the API token has been revoked")
    if row.expires_at and row.expires_at <= now:
        return TokenCheck(problem="the API token has expired")
    if now - row.last_used_at > LAST_USE_RESOLUTION_US:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return TokenCheck(user=row.user)


# ---------------------------------------------------------------------------- bindings


def parse_binding(role: str, namespace: str | None, user: str | None, group: str | None) -> Binding:
    try:
        parsed = Role(role)
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise InvalidArgument(f"role must be one of {roles}, got {role!r}") from exc
    if bool(user) == bool(group):
        raise InvalidArgument("a binding names exactly one of user or group")
    if namespace is None:
        raise InvalidArgument(f"a binding needs a namespace ({ALL_NAMESPACES!r}: every one)")
    return Binding(parsed, namespace, user or "", group or "")


def add_binding(session: Session, binding: Binding) -> RoleBinding:
    row = RoleBinding(
        id=new_id(),
        user=binding.user,
        group=binding.group,
        role=binding.role.value,
        namespace=binding.namespace,
        created_at=now_us(),
    )
    session.add(row)
    flush_unique(session, lambda: "this binding exists already")
    return row


def list_bindings(session: Session) -> list[RoleBinding]:
    stmt = select(RoleBinding).order_by(RoleBinding.created_at, RoleBinding.id)
    return list(session.scalars(stmt))


def stored_bindings(session: Session) -> list[Binding]:
    return [
        Binding(Role(r.role), r.namespace, r.user, r.group)
        for r in list_bindings(session)
        if r.role in Role.__members__.values()
    ]


def delete_binding(session: Session, binding_id: str) -> None:
    if session.execute(delete(RoleBinding).where(RoleBinding.id == binding_id)).rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"binding {binding_id!r} not found")
