"""Authentication: a chain of providers, each turning a request into a principal or passing.

A provider answers a :class:`~kfpd.domain.access.Principal` when the request carries its kind of
credential and it is genuine, raises :class:`Unauthenticated` when it carries its kind but the
credential is bad (expired, forged, revoked), and None when the request is not its business.
The chain asks them in order; nobody answering means an anonymous caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from fastapi import Request

from kfpd.api.authz import Authenticator
from kfpd.domain.access import Principal
from kfpd.domain.errors import Unauthenticated
from kfpd.domain.tokens import looks_like_run_token, run_token_claims


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
        self._secret = secret

    async def authenticate(self, request: Request, bearer: str | None) -> Principal | None:
        del request  # the token alone decides
        if bearer is None or not looks_like_run_token(bearer):
            return None
        claims = run_token_claims(self._secret, bearer)
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
