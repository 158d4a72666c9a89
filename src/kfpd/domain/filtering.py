"""KFP list filters: ``Filter{predicates}`` as URL-encoded JSON, parsed and validated.

Accepts what protojson accepts: ``operation`` as a number or a name, value keys in
camelCase or snake_case. Compilation to SQL lives in db/listing.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from kfpd.domain.errors import InvalidArgument
from kfpd.domain.timeutil import parse_rfc3339


class Op(IntEnum):
    UNKNOWN = 0
    EQUALS = 1
    NOT_EQUALS = 2
    GREATER_THAN = 3
    GREATER_THAN_EQUALS = 5
    LESS_THAN = 6
    LESS_THAN_EQUALS = 7
    IN = 8
    IS_SUBSTRING = 9


_VALUE_KEYS = {
    "int_value": "int",
    "intValue": "int",
    "long_value": "int",
    "longValue": "int",
    "string_value": "str",
    "stringValue": "str",
    "timestamp_value": "timestamp",
    "timestampValue": "timestamp",
    "bool_value": "bool",
    "boolValue": "bool",
    "int_values": "ints",
    "intValues": "ints",
    "long_values": "ints",
    "longValues": "ints",
    "string_values": "strs",
    "stringValues": "strs",
}


@dataclass(frozen=True)
class Predicate:
    op: Op
    key: str
    value: Any  # int, str, bool, or a tuple of them for IN
    is_timestamp: bool = False


@dataclass(frozen=True)
class Filter:
    predicates: tuple[Predicate, ...] = ()
    canonical: str = ""  # normalized JSON, used to bind page tokens to their filter


def _int(raw: Any, key: str) -> int:
    if isinstance(raw, bool):
        raise InvalidArgument(f"filter on {key!r}: expected an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    raise InvalidArgument(f"filter on {key!r}: expected an integer, got {raw!r}")


def _op(raw: Any) -> Op:
    try:
        if isinstance(raw, int) and not isinstance(raw, bool):
            op = Op(raw)
        elif isinstance(raw, str):
            op = Op(int(raw)) if raw.isdigit() else Op[raw.upper()]
        else:
            raise ValueError(raw)
    except (KeyError, ValueError) as exc:
        raise InvalidArgument(f"invalid filter operation {raw!r}") from exc
    if op == Op.UNKNOWN:
        raise InvalidArgument("filter operation must be set")
    return op


def _value(key: str, vkey: str, vraw: Any) -> tuple[Any, bool]:
    """A predicate's value, checked for its value field; and whether it is a timestamp."""
    kind = _VALUE_KEYS[vkey]
    if kind == "int":
        return _int(vraw, key), False
    if kind == "str":
        if not isinstance(vraw, str):
            raise InvalidArgument(f"filter on {key!r}: string_value must be a string")
        return vraw, False
    if kind == "bool":
        if not isinstance(vraw, bool):
            raise InvalidArgument(f"filter on {key!r}: bool_value must be true or false")
        return vraw, False
    if kind == "timestamp":
        if not isinstance(vraw, str):
            raise InvalidArgument(f"filter on {key!r}: timestamp_value must be RFC 3339")
        return parse_rfc3339(vraw), True
    items = vraw.get("values") if isinstance(vraw, dict) else None
    if not isinstance(items, list):
        raise InvalidArgument(f"filter on {key!r}: {vkey} needs {{'values': [...]}}")
    if kind == "ints":
        return tuple(_int(v, key) for v in items), False
    if not all(isinstance(v, str) for v in items):
        raise InvalidArgument(f"filter on {key!r}: string_values must be strings")
    return tuple(items), False


def _predicate(raw: Any) -> Predicate:
    if not isinstance(raw, dict):
        raise InvalidArgument("each filter predicate must be a JSON object")
    unknown = set(raw) - {"operation", "op", "key"} - set(_VALUE_KEYS)
    if unknown:
        raise InvalidArgument(f"unknown field(s) in filter predicate: {sorted(unknown)}")
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        raise InvalidArgument("filter predicate needs a non-empty 'key'")
    op = _op(raw.get("operation", raw.get("op")))
    values = [(k, v) for k, v in raw.items() if k in _VALUE_KEYS]
    if len(values) != 1:
        raise InvalidArgument(f"filter predicate on {key!r} needs exactly one value")
    vkey, vraw = values[0]
    value, is_ts = _value(key, vkey, vraw)
    if op == Op.IN and not isinstance(value, tuple):
        raise InvalidArgument(
            f"filter on {key!r}: IN needs int_values, long_values or string_values"
        )
    if op != Op.IN and isinstance(value, tuple):
        raise InvalidArgument(f"filter on {key!r}: list values need the IN operation")
    if op == Op.IS_SUBSTRING and not isinstance(value, str):
        raise InvalidArgument(f"filter on {key!r}: IS_SUBSTRING needs a string_value")
    return Predicate(op=op, key=key, value=value, is_timestamp=is_ts)


def parse_filter(text: str | None) -> Filter:
    """Parse the ``filter`` query parameter; empty means no filter."""
    if text is None or not text.strip():
        return Filter()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"filter is not valid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise InvalidArgument("filter must be a JSON object with 'predicates'")
    unknown = set(raw) - {"predicates"}
    if unknown:
        raise InvalidArgument(f"unknown field(s) in filter: {sorted(unknown)}")
    preds = raw.get("predicates") or []
    if not isinstance(preds, list):
        raise InvalidArgument("filter 'predicates' must be a list")
    parsed = tuple(_predicate(p) for p in preds)
    canonical = json.dumps(
        [
            [p.op.value, p.key, list(p.value) if isinstance(p.value, tuple) else p.value]
            for p in parsed
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    return Filter(predicates=parsed, canonical=canonical)
