"""Time values. The database keeps microseconds since the Unix epoch (portable, sortable)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from kfpd.domain.errors import InvalidArgument


def now_us() -> int:
    return time.time_ns() // 1000


_EPOCH = datetime(1970, 1, 1)  # naive UTC: isoformat() then carries no offset
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_rfc3339(us: int | None) -> str | None:
    """``2026-11-22T09:00:00.123456Z`` (no fraction when it is zero). Integer arithmetic, so
    no microsecond is lost to float rounding; isoformat is several times faster than strftime."""
    if not us:
        return None
    return (_EPOCH + timedelta(microseconds=us)).isoformat() + "Z"


def parse_rfc3339(value: str) -> int:
    """Parse an RFC 3339 timestamp (any fraction length, Z or offset) to microseconds."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]  # the fraction only
        tz = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid RFC 3339 timestamp {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH_UTC) // _MICROSECOND  # exact: no float in between
