"""Build a :class:`PipelineIR` from the IR dicts as stored on a run. The only place that
walks the raw PipelineSpec for orchestration (validation at submission lives in spec/)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from kfpd.ir.model import (
    EMPTY,
    Component,
    Dag,
    DagOutput,
    DagTask,
    Executor,
    Importer,
    IteratorKind,
    Json,
    LoopIterator,
    PipelineIR,
    RetryPolicy,
    Selector,
)
from kfpd.spec.scope import topological_order


def _map(value: Any) -> Json:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) and value else EMPTY


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _seconds(text: Any, default: float) -> float:
    if text is None:
        return default
    try:
        return float(str(text).strip().rstrip("s"))
    except ValueError:
        return default


def _retry(policy: Json) -> RetryPolicy | None:
    count = _int(policy.get("maxRetryCount"))
    if count <= 0:
        return None
    return RetryPolicy(
        max_retries=count,
        backoff_s=_seconds(policy.get("backoffDuration"), 0.0),
        factor=float(policy.get("backoffFactor") or 2.0),
        max_backoff_s=_seconds(policy.get("backoffMaxDuration"), 3600.0),
    )


def _iterator(spec: Json) -> LoopIterator | None:
    limit = _int(_map(spec.get("iteratorPolicy")).get("parallelismLimit"))
    for kind in IteratorKind:
        if kind.value not in spec:
            continue
        body = _map(spec.get(kind.value))
        items = _map(body.get("items"))
        source = "inputParameter" if kind == IteratorKind.PARAMETER else "inputArtifact"
        return LoopIterator(
            kind=kind,
            item_input=str(body.get("itemInput") or ""),
            raw_items=items.get("raw"),
            items_input=str(items.get(source) or ""),
            parallelism_limit=limit,
        )
    return None


def _task(name: str, spec: Json) -> DagTask:
    trigger = _map(spec.get("triggerPolicy"))
    return DagTask(
        name=name,
        component=str(_map(spec.get("componentRef")).get("name") or ""),
        display_name=str(_map(spec.get("taskInfo")).get("name") or name),
        dependent_tasks=tuple(spec.get("dependentTasks") or ()),
        trigger_strategy=str(trigger.get("strategy") or ""),
        condition=str(trigger.get("condition") or ""),
        iterator=_iterator(spec),
        caching=bool(_map(spec.get("cachingOptions")).get("enableCache")),
        retry=_retry(_map(spec.get("retryPolicy"))),
        inputs=_map(spec.get("inputs")),
        spec=MappingProxyType(dict(spec)),
    )


def _parameter_outputs(selectors: Json, definitions: Json) -> tuple[DagOutput, ...]:
    outputs = []
    for key, sel in selectors.items():
        is_list = _map(definitions.get(key)).get("parameterType") == "LIST"
        if "valueFromParameter" in sel:
            ref = _map(sel["valueFromParameter"])
            picks: list[Json] = [ref]
            oneof = False
        else:
            picks = list(_map(sel.get("valueFromOneof")).get("parameterSelectors") or [])
            oneof = True
        outputs.append(
            DagOutput(
                key=key,
                selectors=tuple(
                    Selector(
                        str(p.get("producerSubtask") or ""), str(p.get("outputParameterKey") or "")
                    )
                    for p in picks
                ),
                oneof=oneof,
                is_list=is_list,
            )
        )
    return tuple(outputs)


def _artifact_outputs(selectors: Json, definitions: Json) -> tuple[DagOutput, ...]:
    outputs = []
    for key, sel in selectors.items():
        picks = list(sel.get("artifactSelectors") or [])
        outputs.append(
            DagOutput(
                key=key,
                selectors=tuple(
                    Selector(
                        str(p.get("producerSubtask") or ""), str(p.get("outputArtifactKey") or "")
                    )
                    for p in picks
                ),
                oneof=len(picks) > 1,
                is_list=bool(_map(definitions.get(key)).get("isArtifactList")),
            )
        )
    return tuple(outputs)


def _component(name: str, spec: Json) -> Component:
    definitions = _map(spec.get("outputDefinitions"))
    dag = None
    if "dag" in spec:
        body = _map(spec.get("dag"))
        raw_tasks: dict[str, Any] = dict(body.get("tasks") or {})
        tasks = {n: _task(n, _map(t)) for n, t in raw_tasks.items()}
        outputs = _map(body.get("outputs"))
        dag = Dag(
            tasks=MappingProxyType(tasks),
            order=tuple(topological_order(raw_tasks)[0]),
            parameter_outputs=_parameter_outputs(
                _map(outputs.get("parameters")), _map(definitions.get("parameters"))
            ),
            artifact_outputs=_artifact_outputs(
                _map(outputs.get("artifacts")), _map(definitions.get("artifacts"))
            ),
        )
    return Component(
        name=name,
        executor_label=str(spec.get("executorLabel") or ""),
        dag=dag,
        input_definitions=_map(spec.get("inputDefinitions")),
        output_definitions=definitions,
        spec=MappingProxyType(dict(spec)),
    )


def _executor(label: str, spec: Json) -> Executor:
    importer = None
    if "importer" in spec:
        body = _map(spec.get("importer"))
        uri = _map(body.get("artifactUri"))
        importer = Importer(
            uri_constant=uri.get("constant"),
            uri_parameter=str(uri.get("runtimeParameter") or "uri"),
            schema_title=str(_map(body.get("typeSchema")).get("schemaTitle") or "system.Artifact"),
            metadata=_map(body.get("metadata")),
            reimport=bool(body.get("reimport", False)),
            download_to_workspace=bool(body.get("downloadToWorkspace")),
        )
    container = _map(spec.get("container")) if "container" in spec else None
    return Executor(label=label, container=container, importer=importer)


def load_ir(pipeline_spec: Json | None, platform_spec: Json | None = None) -> PipelineIR:
    """The typed view of a stored pipeline spec (and its platform spec)."""
    spec = _map(pipeline_spec)
    components = {n: _component(n, _map(c)) for n, c in _map(spec.get("components")).items()}
    executors = {
        label: _executor(label, _map(e))
        for label, e in _map(_map(spec.get("deploymentSpec")).get("executors")).items()
    }
    kubernetes = _map(_map(_map(platform_spec).get("platforms")).get("kubernetes"))
    platform = _map(_map(kubernetes.get("deploymentSpec")).get("executors"))
    return PipelineIR(
        name=str(_map(spec.get("pipelineInfo")).get("name") or ""),
        root=_component("root", _map(spec.get("root"))),
        components=MappingProxyType(components),
        executors=MappingProxyType(executors),
        platform_executors=MappingProxyType({k: _map(v) for k, v in platform.items()}),
        platform_workspace=_map(_map(kubernetes.get("pipelineConfig")).get("workspace")),
        spec=spec,
    )


def raw_items(loop: LoopIterator) -> Any:
    """A literal loop's items as a value (the IR may hold them as JSON text)."""
    raw = loop.raw_items
    return json.loads(raw) if isinstance(raw, str) else raw
