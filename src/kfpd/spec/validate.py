"""Validation of PipelineSpec IR at submission: everything that can be checked before running.

Uses the kfp-pipeline-spec protobufs for the schema (unknown fields, wrong types), then checks
what the schema cannot: supported IR version, component and executor references, task
references inside each DAG, dependency cycles and CEL conditions. (Runtime parameters:
``kfpd.ir.parameters``.)

This module reads the raw dicts on purpose: it runs on what a client submitted, before the
typed view (``kfpd.ir``, built by ``ir/load.py``) exists and to decide whether one may be built.
"""

from __future__ import annotations

from typing import Any

import celpy
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kfpd.domain.errors import InvalidArgument
from kfpd.spec import limits
from kfpd.spec.loader import LoadedSpec
from kfpd.spec.scope import topological_order

SUPPORTED_SCHEMA_VERSIONS = {"2.0.0", "2.1.0"}

_cel_env = celpy.Environment()


def _parse_proto(value: dict[str, Any], message: Any, what: str) -> None:
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"invalid {what}: {exc}") from exc


def _check_dag(comp_name: str, dag: dict[str, Any], components: dict[str, Any]) -> None:
    tasks: dict[str, Any] = dag.get("tasks") or {}
    for task_name, task in tasks.items():
        where = f"task {task_name!r} in {comp_name!r}"
        ref = (task.get("componentRef") or {}).get("name")
        if not ref or ref not in components:
            raise InvalidArgument(f"{where} refers to unknown component {ref!r}")
        for dep in task.get("dependentTasks") or []:
            if dep not in tasks:
                raise InvalidArgument(f"{where} depends on unknown task {dep!r}")
        inputs = task.get("inputs") or {}
        for kind in ("parameters", "artifacts"):
            for in_name, spec in (inputs.get(kind) or {}).items():
                for src in ("taskOutputParameter", "taskOutputArtifact", "taskFinalStatus"):
                    producer = (spec.get(src) or {}).get("producerTask")
                    if producer is not None and producer not in tasks:
                        raise InvalidArgument(
                            f"{where}: input {in_name!r} comes from unknown task {producer!r}"
                        )
        condition = (task.get("triggerPolicy") or {}).get("condition")
        if condition:
            try:
                _cel_env.compile(condition)
            except Exception as exc:  # celpy raises CELParseError and lark errors
                raise InvalidArgument(
                    f"{where}: invalid CEL condition {condition!r}: {exc}"
                ) from exc
    _check_acyclic(comp_name, tasks)


def _check_acyclic(comp_name: str, tasks: dict[str, Any]) -> None:
    _order, stuck = topological_order(tasks)
    if stuck:
        raise InvalidArgument(f"dependency cycle in {comp_name!r} among tasks {sorted(stuck)}")


def validate_spec(loaded: LoadedSpec) -> None:
    """Raise InvalidArgument with a precise message if the IR cannot run."""
    spec = loaded.pipeline_spec
    limits.check_nesting(spec, "the pipeline spec")  # before the recursive protobuf parser
    _parse_proto(spec, pipeline_spec_pb2.PipelineSpec(), "pipeline spec")
    if loaded.platform_spec is not None:
        limits.check_nesting(loaded.platform_spec, "the platform spec")
        _parse_proto(loaded.platform_spec, pipeline_spec_pb2.PlatformSpec(), "platform spec")
    version = spec.get("schemaVersion")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise InvalidArgument(
            f"unsupported IR schemaVersion {version!r}; "
            f"supported: {sorted(SUPPORTED_SCHEMA_VERSIONS)}"
        )
    if not (spec.get("pipelineInfo") or {}).get("name"):
        raise InvalidArgument("pipeline spec has no pipelineInfo.name")
    root = spec.get("root")
    if not isinstance(root, dict) or "dag" not in root:
        raise InvalidArgument("pipeline spec has no root DAG")
    components: dict[str, Any] = spec.get("components") or {}
    executors = ((spec.get("deploymentSpec") or {}).get("executors")) or {}
    for comp_name, comp in components.items():
        label = comp.get("executorLabel")
        if label and label not in executors:
            raise InvalidArgument(f"component {comp_name!r} uses unknown executor {label!r}")
        if not label and "dag" not in comp:
            raise InvalidArgument(f"component {comp_name!r} has neither an executor nor a DAG")
        if "dag" in comp:
            _check_dag(comp_name, comp["dag"], components)
    _check_dag("root", root["dag"], components)
    limits.check_component_graph(spec)
