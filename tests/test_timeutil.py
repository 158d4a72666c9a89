"""RFC 3339 timestamps <-> microseconds since the epoch: exact both ways."""

from __future__ import annotations

import random

import pytest

from kfpd.domain.errors import InvalidArgument
from kfpd.domain.timeutil import parse_rfc3339, to_rfc3339


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
        ("2026-11-22T10:00:00.5+01:00", "2026-11-22T09:00:00.500000Z"),
        ("2026-11-22T10:00:00.5-02:30", "2026-11-22T12:30:00.500000Z"),
        ("2026-11-22T10:00:00.123456789Z", "2026-11-22T10:00:00.123456Z"),
        ("2026-11-22T10:00:00.000001z", "2026-11-22T10:00:00.000001Z"),
        ("2026-11-22T10:00:00", "2026-11-22T10:00:00Z"),  # no offset: UTC
        ("1970-01-01T00:00:00.000001Z", "1970-01-01T00:00:00.000001Z"),
    ],
)
def test_parse_then_format(text: str, expected: str) -> None:
    assert to_rfc3339(parse_rfc3339(text)) == expected


def test_round_trip_is_exact_to_the_microsecond() -> None:
    rng = random.Random(7)
    for us in [1, 999_999, 1_000_000, 1_763_812_345_123_457, 253_402_300_799_999_999]:
        assert parse_rfc3339(to_rfc3339(us) or "") == us
    for _ in range(20_000):
        us = rng.randrange(1, 4_000_000_000_000_000)
        assert parse_rfc3339(to_rfc3339(us) or "") == us


def test_zero_and_none_are_unset() -> None:
    assert to_rfc3339(0) is None and to_rfc3339(None) is None


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-22T10:00:00.Zx"]
)
def test_invalid_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_rfc3339(text)
