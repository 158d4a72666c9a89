"""Cache keys (reference §5.10): what a task's result depends on, hashed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kfpd.orchestrator.resolve import ResolvedInputs


def cache_fingerprint(
    *,
    pipeline_name: str,
    inputs: ResolvedInputs,
    output_definitions: Mapping[str, Any],
    container: Mapping[str, Any],
) -> str:
    """Hex SHA-256 of the task's cache key, in canonical JSON (sorted keys).

    The key holds the input artifact ids, input parameter values, the output specs (names
    and types, no URIs) and the container (image, command + args, pipeline name).
    """
    outputs = output_definitions or {}
    key = {
        "inputArtifactNames": {
            name: {"artifactNames": [a.artifact_id or a.name for a in io.artifacts]}
            for name, io in inputs.artifacts.items()
        },
        "inputParameterValues": {name: p.value for name, p in inputs.params.items()},
        "outputArtifactsSpec": {
            name: {
                "artifactType": (d.get("artifactType") or {}),
                "isList": bool(d.get("isArtifactList")),
            }
            for name, d in (outputs.get("artifacts") or {}).items()
        },
        "outputParametersSpec": {
            name: d.get("parameterType", "")
            for name, d in (outputs.get("parameters") or {}).items()
        },
        "containerSpec": {
            "image": container.get("image", ""),
            "cmdArgs": [
                *(container.get("command") or []),
                *(container.get("args") or []),
                f"__kfp_pipeline_name={pipeline_name}",
            ],
        },
    }
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
