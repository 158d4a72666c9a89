"""The OpenAPI document as the server really behaves.

Routes take their query parameters as optional strings (an empty value means unset, as
grpc-gateway treats it) and parse them in ``api/deps.py``; this module documents their real
types, and the statuses every operation can answer: errors are KFP's ``{error, code, message,
details}`` body, and request validation fails with 400, not FastAPI's 422.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kfpd.domain.enums import ArtifactType

_INTEGER = {"type": "integer", "format": "int32"}
_BOOLEAN = {"type": "boolean"}
# Query parameters the server parses into a type (by name: each name means the same everywhere).
QUERY_TYPES: dict[str, dict[str, Any]] = {
    "page_size": {**_INTEGER, "minimum": 1, "maximum": 1000},
    "offset": {**_INTEGER, "minimum": 0},
    "limit_bytes": {**_INTEGER, "minimum": 1, "maximum": 8 * 1024 * 1024},
    "max_hops": {**_INTEGER, "minimum": 1},
    "cascade": _BOOLEAN,
    "skip_count": _BOOLEAN,
    "delete_artifacts": _BOOLEAN,
    "dry_run": _BOOLEAN,
    "view": {"type": "string", "enum": ["DEFAULT", "FULL"]},
    "direction": {"type": "string", "enum": ["UPSTREAM", "DOWNSTREAM", "BOTH"]},
    "node_kind": {"type": "string", "enum": ["ARTIFACT", "TASK"]},
    "artifact_type": {
        "type": "string",
        "enum": [t.name for t in ArtifactType if t != ArtifactType.TYPE_UNSPECIFIED],
    },
}
# What api/guard.py refuses in URLs: control characters in the path, NUL in the query.
_NO_CONTROL = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
_NO_NUL = "^[^\\x00]*$"

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {}},
    },
}
_WHY = {
    "400": "Invalid request (bad value, unknown field, unknown Host).",
    "401": "A token is required (run tokens on launcher writes; multi-user mode).",
    "403": "Not allowed (a token for another run, a cross-origin write).",
    "404": "Not found.",
    "409": "Conflicts with the stored state (exists already, task or run final).",
    "413": "The request body is over the size limit.",
    "415": "The body is not application/json (multipart/form-data on uploads).",
}
_WRITES = {"post", "put", "patch", "delete"}


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["400", "401", "403"]
    if "{" in path or method in _WRITES:
        statuses.append("404")
    if method in _WRITES:
        statuses.append("409")
    if "requestBody" in operation:
        statuses += ["413", "415"]
    return statuses


def _type_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        title = parameter["schema"].get("title", "")
        if parameter.get("in") == "path":
            parameter["schema"] = {"type": "string", "pattern": _NO_CONTROL, "title": title}
        elif parameter.get("in") == "query":
            typed = QUERY_TYPES.get(parameter["name"])
            if typed is not None:
                parameter["schema"] = {**typed, "title": title}
            else:
                _forbid_nul(parameter["schema"])


def _forbid_nul(schema: dict[str, Any]) -> None:
    """Add the NUL-free pattern to every string in a parameter's schema."""
    if schema.get("type") == "string":
        schema["pattern"] = _NO_NUL
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            _forbid_nul(branch)
    if isinstance(schema.get("items"), dict):
        _forbid_nul(schema["items"])


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's generated document in place (and return it)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _error_statuses(path, method, operation):
                responses.setdefault(status, {"description": _WHY[status], "content": error})
            _type_parameters(operation)
    return schema


def install(app: FastAPI) -> None:
    """Serve the rewritten document at /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented override)


_PARAMETER = re.compile(r"\\\{[^/]*?\\\}")  # "{run_id}" once re.escape()d


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document lists for ``path`` (for a 405's ``Allow``: Starlette names
    only the first route that matched the path, and kfpd has one route per method)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = _PARAMETER.sub("[^/:]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(method.upper() for method in operations)
    return sorted(methods)
