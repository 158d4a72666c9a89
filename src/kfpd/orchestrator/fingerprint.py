"""Cache keys (reference §5.10): what a task's result depends on, hashed."""

from __future__ import annotations

import hashlib
import json

from kfpd.ir import Container, Definitions
from kfpd.orchestrator.resolve import ResolvedInputs


def cache_fingerprint(
    *,
    pipeline_name: str,
    inputs: ResolvedInputs,
    output_definitions: Definitions,
    container: Container,
) -> str:
    """Hex SHA-256 of the task's cache key, in canonical JSON (sorted keys).

    The key holds the input artifact ids, input parameter values, the output specs (names
    and types, no URIs) and the container (image, command + args, pipeline name).
    """
    outputs = output_definitions
    key = {
        "inputArtifactNames": {
            name: {"artifactNames": [a.artifact_id or a.name for a in io.artifacts]}
            for name, io in inputs.artifacts.items()
        },
        "inputParameterValues": {name: p.value for name, p in inputs.params.items()},
        "outputArtifactsSpec": {
            name: {"artifactType": d.artifact_type.to_json(), "isList": d.is_list}
            for name, d in outputs.artifacts.items()
        },
        "outputParametersSpec": {
            name: "" if d.parameter_type is None else d.parameter_type
            for name, d in outputs.parameters.items()
        },
        "containerSpec": {
            "image": container.image,
            "cmdArgs": [
                *container.command,
                *container.args,
                f"__kfp_pipeline_name={pipeline_name}",
            ],
        },
    }
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
