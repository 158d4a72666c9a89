"""Field types for KFP's protojson conventions."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)

from kfpd.domain.enums import WireEnum

E = TypeVar("E", bound=WireEnum)


class WireModel(BaseModel):
    """Base of every wire message: unknown fields are an error, None means unset."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def wire_enum(enum: type[E]) -> Any:
    """An enum field: accepted by name or number, emitted by name."""

    def parse(value: Any) -> Any:
        try:
            return enum.parse(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from exc

    return Annotated[
        enum,
        BeforeValidator(parse),
        PlainSerializer(lambda e: e.name, return_type=str),
        WithJsonSchema({"type": "string", "enum": [m.name for m in enum]}),
    ]


def _int64(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# int64: accepted as number or decimal string, emitted as a string like protojson does.
Int64 = Annotated[
    int,
    BeforeValidator(_int64),
    PlainSerializer(lambda v: str(v), return_type=str),
    WithJsonSchema({"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$"}),
]


def int64_between(low: int, high: int) -> WithJsonSchema:
    """The schema of an Int64 the server accepts only in [low, high]:
    ``Annotated[Int64, int64_between(1, 10)]``."""
    decimal = {"type": "string", "enum": [str(n) for n in range(low, high + 1)]}
    number = {"type": "integer", "minimum": low, "maximum": high}
    return WithJsonSchema({"anyOf": [number, decimal]})


# int32 values: accepted as number or string, emitted as a number.
Int32 = Annotated[int, BeforeValidator(_int64)]


# C0 controls (NUL, tab, newline...), DEL and C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def refuse_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, tab, newline, ...)")
    return value


# Names, keys, namespaces and URIs: stored in text columns, shown in one line, used in paths.
_NO_CONTROL = "[^\\x00-\\x1f\\x7f-\\x9f]"
Name = Annotated[
    str,
    AfterValidator(refuse_control),
    WithJsonSchema({"type": "string", "pattern": f"^{_NO_CONTROL}*$"}),
]
# A name the server needs (not blank once stripped).
RequiredName = Annotated[
    str,
    AfterValidator(refuse_control),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": f"^{_NO_CONTROL}*[^\\s\\x00-\\x1f\\x7f-\\x9f]{_NO_CONTROL}*$",
        }
    ),
]
