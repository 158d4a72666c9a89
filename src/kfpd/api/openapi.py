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

from kfpd.db.listing import Field
from kfpd.domain.enums import ArtifactType, IOType
from kfpd.services.artifacts import ARTIFACT_FIELDS, LINK_FIELDS
from kfpd.services.experiments import EXPERIMENT_FIELDS
from kfpd.services.lineage import MAX_HOPS_LIMIT
from kfpd.services.pipelines import PIPELINE_FIELDS, VERSION_FIELDS
from kfpd.services.recurring_runs import RECURRING_RUN_FIELDS
from kfpd.services.runs import RUN_FIELDS
from kfpd.services.tasks import TASK_FIELDS

_INTEGER = {"type": "integer", "format": "int32"}
_BOOLEAN = {"type": "boolean"}
# Query parameters the server parses into a type (by name: each name means the same everywhere).
QUERY_TYPES: dict[str, dict[str, Any]] = {
    "page_size": {**_INTEGER, "minimum": 1, "maximum": 1000},
    "offset": {**_INTEGER, "minimum": 0},
    "limit_bytes": {**_INTEGER, "minimum": 1, "maximum": 8 * 1024 * 1024},
    "max_hops": {**_INTEGER, "minimum": 1, "maximum": MAX_HOPS_LIMIT},
    "cascade": _BOOLEAN,
    "skip_count": _BOOLEAN,
    "delete_artifacts": _BOOLEAN,
    "dry_run": _BOOLEAN,
    "view": {"type": "string", "enum": ["DEFAULT", "FULL"]},
    "direction": {"type": "string", "enum": ["UPSTREAM", "DOWNSTREAM", "BOTH"]},
    "node_kind": {"type": "string", "enum": ["ARTIFACT", "TASK"]},
    "type": {"type": "string", "enum": [t.name for t in IOType]},
    # Opaque strings only the server makes valid: named formats (a client that knows them,
    # like tests/test_openapi.py, generates real ones; anything else may get a 400).
    "page_token": {"type": "string", "format": "kfp-page-token"},
    "filter": {"type": "string", "format": "kfp-filter"},
    "artifact_type": {
        "type": "string",
        "enum": [t.name for t in ArtifactType if t != ArtifactType.TYPE_UNSPECIFIED],
    },
}
# The fields each list sorts by (sort_by / order_by: "field", "field asc", "field desc").
SORT_FIELDS: dict[str, dict[str, Field]] = {
    "/apis/v2beta1/runs": RUN_FIELDS,
    "/apis/v2beta1/experiments": EXPERIMENT_FIELDS,
    "/apis/v2beta1/pipelines": PIPELINE_FIELDS,
    "/apis/v2beta1/pipelines/{pipeline_id}/versions": VERSION_FIELDS,
    "/apis/v2beta1/recurringruns": RECURRING_RUN_FIELDS,
    "/apis/v2beta1/artifacts": ARTIFACT_FIELDS,
    "/apis/v2beta1/artifact_tasks": LINK_FIELDS,
    "/apis/v2beta1/runs/{run_id}/tasks": TASK_FIELDS,
}
# Query parameters whose values are ids: repeated ids must not be empty.
_ID_LISTS = {"task_ids", "run_ids", "artifact_ids"}
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


def _sort_schema(fields: dict[str, Field]) -> dict[str, Any]:
    names = "|".join(re.escape(name) for name, field in sorted(fields.items()) if field.sortable)
    return {"type": "string", "pattern": f"^(({names})( (asc|desc|ASC|DESC))?)?$"}


def _type_parameters(path: str, operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        title = parameter["schema"].get("title", "")
        name = parameter["name"]
        if parameter.get("in") == "path":
            parameter["schema"] = {"type": "string", "pattern": _NO_CONTROL, "title": title}
        elif parameter.get("in") != "query":
            continue
        elif name in ("sort_by", "order_by") and path in SORT_FIELDS:
            parameter["schema"] = {**_sort_schema(SORT_FIELDS[path]), "title": title}
        elif name in _ID_LISTS:
            item = {"type": "string", "minLength": 1, "pattern": _NO_NUL}
            parameter["schema"] = {"type": "array", "items": item, "title": title}
        elif name in QUERY_TYPES:
            parameter["schema"] = {**QUERY_TYPES[name], "title": title}
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


# Any JSON value without NUL characters: what free-form fields (parameter values, specs,
# plugin data) accept, since api/guard.py refuses a body with a NUL anywhere (PostgreSQL
# stores none).
_JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number"},
        {"type": "string", "pattern": _NO_NUL},
        {"type": "array", "items": _JSON_VALUE_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": _NO_NUL},
            "additionalProperties": _JSON_VALUE_REF,
        },
    ]
}


# Keywords that say nothing about a value (pydantic writes an ``Any`` field as {"title": ...}).
_ANNOTATIONS = {"title", "description", "default", "examples"}


def _free_form(schema: Any) -> bool:
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    return set(schema) <= _ANNOTATIONS or (
        set(schema) <= _ANNOTATIONS | {"additionalProperties"}
        and schema.get("additionalProperties") is True
    )


def _forbid_nul_in_body(schema: dict[str, Any]) -> None:
    """Say in a body schema what api/guard.py refuses: a NUL in any string or key."""
    plain = schema.keys().isdisjoint({"pattern", "enum", "const"})
    if schema.get("type") == "string" and plain and schema.get("format") != "binary":
        schema["pattern"] = _NO_NUL
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        schema["propertyNames"] = {"pattern": _NO_NUL}
        # Unlisted fields (a model that ignores extra ones) may hold any JSON without NUL.
        schema.setdefault("additionalProperties", dict(_JSON_VALUE_REF))
    # Free-form values (Any, dict[str, Any]) become JsonValue; the rest is walked.
    children: list[tuple[Any, Any]] = []
    for key in ("properties", "$defs"):
        children += [(schema[key], name) for name in schema.get(key, {})]
    for key in ("anyOf", "oneOf", "allOf"):
        children += [(schema[key], index) for index in range(len(schema.get(key, [])))]
    children += [(schema, key) for key in ("items", "additionalProperties") if key in schema]
    for parent, key in children:
        if _free_form(parent[key]):
            found = parent[key] if isinstance(parent[key], dict) else {}
            annotations = {k: v for k, v in found.items() if k in _ANNOTATIONS}
            parent[key] = {**_JSON_VALUE_REF, **annotations}
        elif isinstance(parent[key], dict):
            _forbid_nul_in_body(parent[key])


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's generated document in place (and return it)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for component in components.values():
        _forbid_nul_in_body(component)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _forbid_nul_in_body(media.get("schema", {}))
    components["JsonValue"] = JSON_VALUE_SCHEMA
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
            _type_parameters(path, operation)
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
