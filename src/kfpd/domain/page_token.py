"""The one page-token codec: opaque URL-safe base64 of compact JSON (lists and lineage).

What a token holds and what it must match is the list's business; this module only turns a
payload into text and back, refusing text that is not such a token."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection
from typing import Any

from kfpd.domain.errors import InvalidArgument


def encode_page_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, keys: Collection[str], what: str = "token") -> dict[str, Any]:
    """The payload of ``token``; it must be a JSON object with exactly ``keys``."""
    invalid = InvalidArgument(f"invalid page_token: not a {what} this server issued")
    try:
        payload = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if not isinstance(payload, dict) or set(payload) != set(keys):
        raise invalid
    return payload
