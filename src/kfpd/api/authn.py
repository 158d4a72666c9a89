"""Authentication: a chain of providers, each turning a request into a principal or passing.

A provider answers a :class:`~kfpd.domain.access.Principal` when the request carries its kind of
credential and it is genuine, raises :class:`Unauthenticated` when it carries its kind but the
credential is bad (expired, forged, revoked), and None when the request is not its business.
The chain asks them in order; nobody answering means an anonymous caller.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Protocol

import anyio
import jwt
from fastapi import Request

from kfpd.api.authz import Authenticator
from kfpd.authconfig import AuthConfig, Oidc, TrustedHeader
from kfpd.db.engine import Database
from kfpd.domain.access import Principal
from kfpd.domain.errors import InvalidArgument, Unauthenticated
from kfpd.domain.tokens import API_TOKEN_PREFIX, RunTokenVerifier, looks_like_run_token
from kfpd.services import auth_store


class AuthProvider(Protocol):
    name: str

    async def authenticate(self, request: Request, bearer: str | None) -> Principal | None: ...


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class RunTokenProvider:
    """Launchers: ``<run_id>.<expires>.<signature>`` signed with the server's run-token key."""

    name = "run-token"

    def __init__(self, secret: bytes) -> None:
        self._verifier = RunTokenVerifier(secret)  # each genuine token's HMAC checked once

    async def authenticate(self, request: Request, bearer: str | None) -> Principal | None:
        del request  # the token alone decides
        if bearer is None or not looks_like_run_token(bearer):
            return None
        claims = self._verifier.claims(bearer)
        if claims is None:
            raise Unauthenticated("the run token is not valid")
        if claims.expires <= time.time():
            raise Unauthenticated("the run token has expired")
        return Principal(run_id=claims.run_id, via=self.name)


class ProviderChain(Authenticator):
    """``strict``: a bearer token no provider recognises is refused (multi-user mode); otherwise
    it is ignored, as a single-user server ignores credentials it does not need."""

    def __init__(self, providers: Sequence[AuthProvider], *, strict: bool) -> None:
        self.providers = list(providers)
        self.strict = strict

    async def authenticate(self, request: Request) -> Principal | None:
        bearer = bearer_token(request)
        for provider in self.providers:
            principal = await provider.authenticate(request, bearer)
            if principal is not None:
                return principal
        if bearer is not None and self.strict:
            raise Unauthenticated("the bearer token is not valid")
        return None


class ApiTokenProvider:
    """``kfpd tokens create`` tokens: ``kfpd_<id>_<secret>``, checked against stored digests."""

    name = "api-token"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def authenticate(self, request: Request, bearer: str | None) -> Principal | None:
        del request
        if bearer is None or not bearer.startswith(API_TOKEN_PREFIX):
            return None
        check = await anyio.to_thread.run_sync(self._check, bearer)
        if check.problem:
            raise Unauthenticated(check.problem)
        return Principal(user=check.user, via=self.name)

    def _check(self, token: str) -> auth_store.TokenCheck:
        with self._db.write_session() as s:  # records the last use
            return auth_store.check_token(s, token)


class TrustedHeaderProvider:
    """An identity header set by a proxy in front (oauth2-proxy, Istio, an ingress), believed
    only from the configured proxy addresses."""

    name = "trusted-header"

    def __init__(self, config: TrustedHeader) -> None:
        self._config = config
        self._header = config.name.lower()
        self._groups = config.groups_header.lower()
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in config.trusted_proxies]

    def _from_proxy(self, request: Request) -> bool:
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    async def authenticate(self, request: Request, bearer: str | None) -> Principal | None:
        del bearer
        values = request.headers.getlist(self._header)
        if not values or not self._from_proxy(request):
            return None  # from anywhere else the header means nothing
        if len(values) > 1:
            raise InvalidArgument(f"the {self._config.name} header appears more than once")
        value = values[0].strip()
        prefix = self._config.prefix
        if prefix and not value.startswith(prefix):
            raise Unauthenticated(f"the {self._config.name} header lacks its prefix")
        user = value[len(prefix) :].strip()
        if not user:
            raise Unauthenticated(f"the {self._config.name} header is empty")
        groups: tuple[str, ...] = ()
        if self._groups:
            group_values = request.headers.getlist(self._groups)
            if len(group_values) > 1:
                raise InvalidArgument(f"the {self._config.groups_header} header appears twice")
            if group_values:
                groups = tuple(g.strip() for g in group_values[0].split(",") if g.strip())
        return Principal(user=user, groups=groups, via=self.name)


class OidcProvider:
    """OIDC/JWT bearer tokens signed by the issuer's keys (JWKS), checked for issuer, audience,
    expiry and algorithm; the user and groups come from configurable claims."""

    name = "oidc"

    def __init__(self, config: Oidc) -> None:
        self._config = config
        self._jwks = jwt.PyJWKClient(
            config.jwks_uri, cache_keys=True, lifespan=config.jwks_cache_s, timeout=10
        )

    async def authenticate(self, request: Request, bearer: str | None) -> Principal | None:
        del request
        if bearer is None or bearer.count(".") != 2 or looks_like_run_token(bearer):
            return None
        return await anyio.to_thread.run_sync(self._verify, bearer)

    def _verify(self, token: str) -> Principal:
        config = self._config
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=config.algorithms,
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise Unauthenticated("the OIDC issuer's keys could not be fetched") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {exc}") from exc
        user = claims.get(config.username_claim)
        if not isinstance(user, str) or not user:
            raise Unauthenticated(f"the token has no {config.username_claim!r} claim")
        raw_groups = claims.get(config.groups_claim) or []
        groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else ()
        return Principal(user=user, groups=groups, via=self.name)


def providers_for(config: AuthConfig | None, secret: bytes, db: Database) -> list[AuthProvider]:
    """The chain: run tokens (launchers) first, then what the auth config turns on."""
    chain: list[AuthProvider] = [RunTokenProvider(secret)]
    if config is None:
        return chain
    authn = config.authentication
    if authn.trusted_header is not None:
        chain.append(TrustedHeaderProvider(authn.trusted_header))
    if authn.api_tokens:
        chain.append(ApiTokenProvider(db))
    if authn.oidc is not None:
        chain.append(OidcProvider(authn.oidc))
    return chain
