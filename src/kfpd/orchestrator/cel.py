"""CEL, as KFP uses it: trigger conditions and parameter expression selectors (cel-python)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

_env = celpy.Environment()


class CelError(Exception):
    """A condition or selector could not be evaluated."""


def _parse_json(text: celtypes.Value) -> celtypes.Value:
    try:
        return json_to_cel(json.loads(str(text)))
    except ValueError as exc:
        raise CelError(f"parseJson: not JSON: {text!r}") from exc


@lru_cache(maxsize=1024)
def _program(expression: str) -> Any:
    try:
        return _env.program(_env.compile(expression), functions={"parseJson": _parse_json})
    except Exception as exc:  # celpy raises parse errors of several kinds
        raise CelError(f"invalid CEL expression {expression!r}: {exc}") from exc


def to_native(value: Any) -> Any:
    """A CEL value as plain JSON-able Python (integers stay integers)."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.MapType):
        return {str(k): to_native(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [to_native(v) for v in value]
    if value is None or isinstance(value, celtypes.NullType):
        return None
    return value


def _evaluate(expression: str, activation: dict[str, Any], what: str) -> Any:
    """Run an expression; any failure (parse, evaluation, CEL error value) is a CelError."""
    try:
        result = _program(expression).evaluate(activation)
    except CelError:
        raise
    except Exception as exc:
        raise CelError(f"{what} failed: {exc}") from exc
    if isinstance(result, CELEvalError):
        raise CelError(f"{what} failed: {result}")
    return result


def evaluate_condition(expression: str, parameter_values: dict[str, Any]) -> bool:
    """Evaluate a trigger condition against a task's resolved input parameters."""
    activation = {"inputs": json_to_cel({"parameter_values": parameter_values})}
    result = _evaluate(expression, activation, f"condition {expression!r}")
    if not isinstance(result, celtypes.BoolType | bool):
        raise CelError(f"condition {expression!r} gave {result!r}, not a boolean")
    return bool(result)


def apply_selector(expression: str, value: Any) -> Any:
    """Apply a parameterExpressionSelector (e.g. ``parseJson(string_value)["b"]``) to a value."""
    string_value = value if isinstance(value, str) else json.dumps(value)
    activation: dict[str, Any] = {"string_value": celtypes.StringType(string_value)}
    if isinstance(value, dict):
        activation["struct_value"] = json_to_cel(value)
    if isinstance(value, list):
        activation["list_value"] = json_to_cel(value)
    if isinstance(value, bool):
        activation["bool_value"] = celtypes.BoolType(value)
    elif isinstance(value, int | float):
        activation["number_value"] = celtypes.DoubleType(value)
    result = _evaluate(expression, activation, f"selector {expression!r} on {value!r}")
    return to_native(result)
