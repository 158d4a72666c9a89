"""Upstream KFP endpoints kfpd knows but does not serve: 501 with a message, not a bare 404.

A client written for another KFP API (v1beta1, the visualization server, ReadArtifact's
base64 bytes) learns what it hit and what to use instead. Paths no KFP version has stay 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

# Not in the OpenAPI document: these are answers to clients of other APIs, not kfpd operations.
router = APIRouter(tags=["unimplemented"], include_in_schema=False)

GRPC_UNIMPLEMENTED = 12  # google.rpc.Code.UNIMPLEMENTED
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_NOT_IMPLEMENTED: dict[int | str, dict[str, Any]] = {
    501: {"description": "A KFP endpoint kfpd does not implement."}
}


def _not_implemented(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": message, "code": GRPC_UNIMPLEMENTED, "message": message, "details": []},
        status_code=501,
    )


@router.api_route("/apis/v1beta1/{path:path}", methods=_ALL_METHODS, responses=_NOT_IMPLEMENTED)
def v1beta1(path: str) -> JSONResponse:
    """KFP's v1beta1 API (kfp SDK 1.x)."""
    return _not_implemented(
        f"kfpd serves the KFP v2beta1 API; v1beta1 (/apis/v1beta1/{path}) is not implemented. "
        "Use the kfp SDK 2.x (kfp.Client works by changing only the host)."
    )


@router.api_route(
    "/apis/v2beta1/visualizations{path:path}", methods=_ALL_METHODS, responses=_NOT_IMPLEMENTED
)
def visualizations(path: str) -> JSONResponse:
    """Upstream's Python visualization server (v1 output viewers)."""
    del path
    return _not_implemented(
        "kfpd has no visualization server: log Markdown/HTML artifacts or Metrics from the "
        "component instead; the kfpd UI renders them."
    )


@router.get(
    "/apis/v2beta1/runs/{run_id}/nodes/{node_id}/artifacts/{artifact_name}:read",
    responses=_NOT_IMPLEMENTED,
)
def read_artifact(run_id: str, node_id: str, artifact_name: str) -> JSONResponse:
    """Upstream's ReadArtifact (v1-style node artifacts, base64 tarballs)."""
    del run_id, node_id, artifact_name
    return _not_implemented(
        "ReadArtifact (Argo node artifacts) is not implemented: read the artifact through "
        "GET /apis/v2beta1/artifacts/{artifact_id} and its URI, or the UI's download link."
    )
