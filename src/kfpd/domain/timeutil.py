"""Time values. The database keeps microseconds since the Unix epoch (portable, sortable)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from kfpd.domain.errors import InvalidArgument


def now_us() -> int:
    return time.time_ns() // 1000


def to_rfc3339(us: int | None) -> str | None:
    if not us:
        return None
    dt = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> int:
    """Parse an RFC 3339 timestamp (any fraction length, Z or offset) to microseconds."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid RFC 3339 timestamp {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)
