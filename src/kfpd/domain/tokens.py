"""Run tokens: what a launcher shows the server to report on tasks of one run.

A token is ``<run_id>.<signature>``, the signature being HMAC-SHA256 of the run id under the
server's secret (urlsafe base64, unpadded). Carrying the run id lets the server tell a token
for another run (403) from a forged or damaged one (401). Tokens do not expire: a run's
launchers may outlive a server restart, and the secret persists in the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_CONTEXT = b"kfpd-run-token-v1\x00"


def _signature(secret: bytes, run_id: str) -> str:
    digest = hmac.new(secret, _CONTEXT + run_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_run_token(secret: bytes, run_id: str) -> str:
    if not run_id:
        raise ValueError("run_id must not be empty")
    return f"{run_id}.{_signature(secret, run_id)}"


def token_run_id(secret: bytes, token: str) -> str | None:
    """The run a genuine token was issued for, or None when the token is not genuine."""
    run_id, dot, signature = token.rpartition(".")
    if not dot or not run_id or not signature:
        return None
    if not hmac.compare_digest(signature.encode(), _signature(secret, run_id).encode()):
        return None
    return run_id


def verify_run_token(secret: bytes, token: str, run_id: str) -> bool:
    return bool(run_id) and token_run_id(secret, token) == run_id
