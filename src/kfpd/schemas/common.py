"""Messages shared by several resources."""

from __future__ import annotations

from typing import Any

from kfpd.schemas.base import Int32, WireModel


class Status(WireModel):
    """google.rpc.Status."""

    code: Int32 | None = None
    message: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorBody(WireModel):
    """What every error response carries (KFP's grpc-gateway shape)."""

    error: str
    code: int
    message: str
    details: list[dict[str, Any]] = []
