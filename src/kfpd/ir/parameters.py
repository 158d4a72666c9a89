"""Run parameters against the root DAG's declared inputs: one rule for submission (the raw
spec, before a run exists) and for the run's start (its typed IR)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfpd.domain.errors import InvalidArgument
from kfpd.ir.load import root_parameter_definitions
from kfpd.ir.model import Json, ParameterDefinition

_PARAM_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


def runtime_parameters(
    definitions: Mapping[str, ParameterDefinition], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Check run parameters against the root inputs; return them with defaults filled in."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(definitions))
    if unknown:
        raise InvalidArgument(
            f"unknown pipeline parameter(s) {unknown}; the pipeline takes {sorted(definitions)}"
        )
    resolved: dict[str, Any] = {}
    missing: list[str] = []
    for name, definition in definitions.items():
        ptype = definition.parameter_type or ""
        if name in given and given[name] is not None:
            resolved[name] = _coerce(name, ptype, given[name])
        elif definition.has_default:
            resolved[name] = _coerce(name, ptype, definition.default)
        elif definition.optional or ptype == "TASK_FINAL_STATUS":
            resolved[name] = None
        else:
            missing.append(name)
    if missing:
        raise InvalidArgument(f"missing required pipeline parameter(s): {missing}")
    return resolved


def resolve_runtime_parameters(spec: Json, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`runtime_parameters` for a submitted PipelineSpec (no typed view yet)."""
    return runtime_parameters(root_parameter_definitions(spec), given)


def _coerce(name: str, ptype: str, value: Any) -> Any:
    """Normalise JSON numbers: integer parameters stay integers (the SDK sends 3.0 for 3)."""
    if ptype == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    if ptype == "NUMBER_INTEGER" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    expected = _PARAM_TYPES.get(ptype)
    if expected is None:
        return value
    ok = isinstance(value, expected) and not (
        ptype in {"NUMBER_INTEGER", "NUMBER_DOUBLE"} and isinstance(value, bool)
    )
    if not ok:
        raise InvalidArgument(
            f"pipeline parameter {name!r} must be {ptype}, got {type(value).__name__} {value!r}"
        )
    return value
