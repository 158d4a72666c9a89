"""KFP filter JSON parsing: both enum forms, both key spellings, clear errors."""

from __future__ import annotations

import json

import pytest

from kfpd.domain.errors import InvalidArgument
from kfpd.domain.filtering import Op, parse_filter


def _f(*preds: dict[str, object]) -> str:
    return json.dumps({"predicates": list(preds)})


def test_integer_and_named_operations_are_the_same() -> None:
    a = parse_filter(_f({"operation": 1, "key": "name", "stringValue": "x"}))
    b = parse_filter(_f({"operation": "EQUALS", "key": "name", "string_value": "x"}))
    assert a.canonical == b.canonical
    assert a.predicates[0].op == Op.EQUALS and a.predicates[0].value == "x"


def test_values_of_every_kind() -> None:
    flt = parse_filter(
        _f(
            {
                "operation": "GREATER_THAN",
                "key": "created_at",
                "timestamp_value": "2024-01-01T00:00:00Z",
            },
            {"operation": "IN", "key": "state", "stringValues": {"values": ["A", "B"]}},
            {"operation": "LESS_THAN", "key": "n", "longValue": "7"},
            {"operation": "IS_SUBSTRING", "key": "name", "stringValue": "ab"},
        )
    )
    ts, in_, lt, sub = flt.predicates
    assert ts.is_timestamp and ts.value == 1704067200 * 1_000_000
    assert in_.value == ("A", "B") and lt.value == 7 and sub.op == Op.IS_SUBSTRING


@pytest.mark.parametrize("text", ["", "  ", None, '{"predicates": []}'])
def test_empty_filters(text: str | None) -> None:
    assert parse_filter(text).predicates == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"predicates": [], "x": 1}', "unknown field"),
        (_f({"operation": 42, "key": "a", "stringValue": "x"}), "invalid filter operation"),
        (_f({"operation": "NOPE", "key": "a", "stringValue": "x"}), "invalid filter operation"),
        (_f({"operation": 1, "stringValue": "x"}), "non-empty 'key'"),
        (_f({"operation": 1, "key": "a"}), "exactly one value"),
        (_f({"operation": 1, "key": "a", "intValue": "x1"}), "expected an integer"),
        (_f({"operation": 1, "key": "a", "timestampValue": "yesterday"}), "RFC 3339"),
        (_f({"operation": "IN", "key": "a", "stringValue": "x"}), "IN needs"),
        (_f({"operation": 1, "key": "a", "intValues": {"values": [1]}}), "need the IN operation"),
        (_f({"operation": 1, "key": "a", "stringValue": "x", "bogus": 1}), "unknown field"),
    ],
)
def test_bad_filters(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_filter(text)
