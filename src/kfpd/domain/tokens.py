"""Run tokens (what a launcher shows the server) and API tokens (what people and scripts show).

A run token is ``<run_id>.<expires>.<signature>``: ``expires`` a Unix time in seconds, the
signature HMAC-SHA256 of both under the server's secret (urlsafe base64, unpadded). Carrying the
run id lets the server tell a token for another run (403) from a forged or damaged one (401).
The secret persists in the data directory, so launchers outlive a server restart; the expiry
bounds what a leaked token is worth, and the server refuses writes to a run once it is final.

An API token is ``kfpd_<id>_<secret>``; the server keeps only the id and a SHA-256 of the whole
token, and compares digests in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

_CONTEXT = b"kfpd-run-token-v2\x00"
DEFAULT_RUN_TOKEN_TTL = 7 * 24 * 3600  # seconds; a launch gets a fresh token, retries too


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signature(secret: bytes, run_id: str, expires: int) -> str:
    message = _CONTEXT + run_id.encode() + b"\x00" + str(expires).encode()
    return _b64(hmac.new(secret, message, hashlib.sha256).digest())


def issue_run_token(
    secret: bytes, run_id: str, *, ttl: int = DEFAULT_RUN_TOKEN_TTL, now: float | None = None
) -> str:
    if not run_id:
        raise ValueError("run_id must not be empty")
    expires = int(time.time() if now is None else now) + ttl
    return f"{run_id}.{expires}.{_signature(secret, run_id, expires)}"


@dataclass(frozen=True)
class RunTokenClaims:
    run_id: str
    expires: int  # Unix seconds


def run_token_claims(secret: bytes, token: str) -> RunTokenClaims | None:
    """What a genuine token says (expired or not), or None when the token is not genuine."""
    parts = token.rsplit(".", 2)
    if len(parts) != 3 or not all(parts) or not parts[1].isdigit():
        return None
    run_id, expires_text, signature = parts
    expires = int(expires_text)
    if not hmac.compare_digest(signature.encode(), _signature(secret, run_id, expires).encode()):
        return None
    return RunTokenClaims(run_id, expires)


class RunTokenVerifier:
    """:func:`run_token_claims` under one secret, remembering the tokens found genuine.

    A launcher shows the same token on every call of its task; checking its HMAC once is
    enough, since what a token says cannot change. Only genuine tokens are remembered (a forged
    one is checked every time, as before), at most ``size`` of them, least recently used out.
    Expiry is not remembered: callers compare ``expires`` with the clock on every request."""

    def __init__(self, secret: bytes, size: int = 1024) -> None:
        self._secret = secret
        self._size = size
        self._genuine: OrderedDict[str, RunTokenClaims] = OrderedDict()

    def claims(self, token: str) -> RunTokenClaims | None:
        found = self._genuine.get(token)
        if found is not None:
            self._genuine.move_to_end(token)
            return found
        claims = run_token_claims(self._secret, token)
        if claims is not None:
            self._genuine[token] = claims
            if len(self._genuine) > self._size:
                self._genuine.popitem(last=False)
        return claims


def token_run_id(secret: bytes, token: str, *, now: float | None = None) -> str | None:
    """The run a genuine, unexpired token was issued for; None otherwise."""
    claims = run_token_claims(secret, token)
    if claims is None or claims.expires <= (time.time() if now is None else now):
        return None
    return claims.run_id


def verify_run_token(secret: bytes, token: str, run_id: str, *, now: float | None = None) -> bool:
    return bool(run_id) and token_run_id(secret, token, now=now) == run_id


def looks_like_run_token(token: str) -> bool:
    parts = token.rsplit(".", 2)
    return len(parts) == 3 and parts[1].isdigit()


# ---------------------------------------------------------------------------- API tokens

API_TOKEN_PREFIX = "kfpd_"


def new_api_token() -> tuple[str, str]:
    """A fresh (token id, token): the id is public (listing, revoking), the token is shown once."""
    token_id = secrets.token_hex(6)
    return token_id, f"{API_TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def api_token_id(token: str) -> str | None:
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    token_id, sep, rest = token[len(API_TOKEN_PREFIX) :].partition("_")
    return token_id if sep and token_id and rest else None


def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_matches(token: str, digest: str) -> bool:
    return hmac.compare_digest(api_token_digest(token).encode(), digest.encode())
