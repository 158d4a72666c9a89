"""Build a :class:`PipelineIR` from the IR dicts as stored on a run. The only place that
walks the raw PipelineSpec and PlatformSpec for orchestration (validation at submission,
before a typed view exists, lives in spec/)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from kfpd.ir.model import (
    EMPTY,
    NO_DEFINITIONS,
    ArtifactDefinition,
    ArtifactSource,
    ArtifactType,
    Component,
    ComponentInput,
    Container,
    Dag,
    DagOutput,
    DagTask,
    Definitions,
    EnvFromStore,
    Executor,
    FieldPathEnv,
    FinalStatus,
    Importer,
    IteratorKind,
    Json,
    KeyToEnv,
    KubernetesConfig,
    LoopIterator,
    ParameterDefinition,
    ParameterInput,
    ParameterSource,
    PipelineIR,
    RetryPolicy,
    RuntimeValue,
    Selector,
    TaskInputs,
    TaskOutput,
    Unsupported,
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


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def parameter_input(source: Json) -> ParameterInput:
    """A task input parameter's source (``TaskInputsSpec.InputParameterSpec``); kfp-kubernetes
    fields given as parameters use the same form."""
    parsed: ParameterSource
    if "componentInputParameter" in source:
        parsed = ComponentInput(str(source["componentInputParameter"]))
    elif "taskOutputParameter" in source:
        ref = _map(source["taskOutputParameter"])
        parsed = TaskOutput(
            str(ref.get("producerTask", "")), str(ref.get("outputParameterKey", ""))
        )
    elif "runtimeValue" in source:
        parsed = RuntimeValue(_map(source["runtimeValue"]).get("constant"))
    elif "taskFinalStatus" in source:
        parsed = FinalStatus(str(_map(source["taskFinalStatus"]).get("producerTask", "")))
    else:
        parsed = Unsupported(tuple(sorted(source)))
    return ParameterInput(parsed, str(source.get("parameterExpressionSelector") or ""))


def _artifact_source(source: Json) -> ArtifactSource:
    if "componentInputArtifact" in source:
        return ComponentInput(str(source["componentInputArtifact"]))
    if "taskOutputArtifact" in source:
        ref = _map(source["taskOutputArtifact"])
        return TaskOutput(str(ref.get("producerTask", "")), str(ref.get("outputArtifactKey", "")))
    return Unsupported(tuple(sorted(source)))


def _task_inputs(spec: Json) -> TaskInputs:
    params = _map(spec.get("parameters"))
    artifacts = _map(spec.get("artifacts"))
    return TaskInputs(
        parameters=MappingProxyType({n: parameter_input(_map(s)) for n, s in params.items()}),
        artifacts=MappingProxyType({n: _artifact_source(_map(s)) for n, s in artifacts.items()}),
    )


def _artifact_type(spec: Json) -> ArtifactType:
    return ArtifactType(
        schema_title=_optional_str(spec.get("schemaTitle")),
        schema_version=_optional_str(spec.get("schemaVersion")),
        instance_schema=_optional_str(spec.get("instanceSchema")),
        schema_uri=_optional_str(spec.get("schemaUri")),
    )


def _definitions(spec: Json) -> Definitions:
    if not spec:
        return NO_DEFINITIONS
    parameters = {
        name: ParameterDefinition(
            parameter_type=_optional_str(d.get("parameterType")),
            has_default="defaultValue" in d,
            default=d.get("defaultValue"),
            optional=bool(d.get("isOptional")),
        )
        for name, d in ((n, _map(v)) for n, v in _map(spec.get("parameters")).items())
    }
    artifacts = {
        name: ArtifactDefinition(
            artifact_type=_artifact_type(_map(d.get("artifactType"))),
            is_list=bool(d.get("isArtifactList")),
            optional=bool(d.get("isOptional")),
        )
        for name, d in ((n, _map(v)) for n, v in _map(spec.get("artifacts")).items())
    }
    return Definitions(MappingProxyType(parameters), MappingProxyType(artifacts))


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
        inputs=_task_inputs(_map(spec.get("inputs"))),
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
        input_definitions=_definitions(_map(spec.get("inputDefinitions"))),
        output_definitions=_definitions(definitions),
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
    container = _container(_map(spec.get("container"))) if "container" in spec else None
    return Executor(label=label, container=container, importer=importer)


def _container(spec: Json) -> Container:
    return Container(
        image=str(spec.get("image", "")),
        command=tuple(str(c) for c in spec.get("command") or ()),
        args=tuple(str(a) for a in spec.get("args") or ()),
        env=tuple(
            (str(e.get("name", "")), str(e.get("value", "")))
            for e in (_map(v) for v in spec.get("env") or ())
        ),
        resources=_map(spec.get("resources")),
    )


# A kfp-kubernetes field given as a parameter: {componentInputParameter: ...} and the like.
_SOURCE_KEYS = {"componentInputParameter", "taskOutputParameter", "runtimeValue", "taskFinalStatus"}


def _pod_config(value: Any) -> Any:
    """The config read-only, with each parameter source as a :class:`ParameterInput`."""
    if isinstance(value, Mapping):
        if value and set(value) <= _SOURCE_KEYS:
            return parameter_input(value)
        return MappingProxyType({k: _pod_config(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_pod_config(v) for v in value)
    return value


def _env_from_store(entries: Any, name_key: str, value_key: str) -> tuple[EnvFromStore, ...]:
    found = []
    for entry in (_map(e) for e in entries or ()):
        source = _map(entry.get(f"{name_key}Parameter"))
        found.append(
            EnvFromStore(
                name=str(entry.get(name_key) or ""),
                name_parameter=parameter_input(source) if source else None,
                optional=bool(entry.get("optional")),
                keys=tuple(
                    KeyToEnv(str(m.get(value_key, "")), str(m.get("envVar", "")))
                    for m in (_map(k) for k in entry.get("keyToEnv") or ())
                ),
            )
        )
    return tuple(found)


def _kubernetes(spec: Json) -> KubernetesConfig:
    metadata = _map(spec.get("podMetadata"))
    return KubernetesConfig(
        labels=MappingProxyType({str(k): str(v) for k, v in _map(metadata.get("labels")).items()}),
        annotations=MappingProxyType(
            {str(k): str(v) for k, v in _map(metadata.get("annotations")).items()}
        ),
        field_path_env=tuple(
            FieldPathEnv(str(i.get("name") or ""), str(i.get("fieldPath") or ""))
            for i in (_map(item) for item in spec.get("fieldPathAsEnv") or ())
        ),
        secret_env=_env_from_store(spec.get("secretAsEnv"), "secretName", "secretKey"),
        config_map_env=_env_from_store(spec.get("configMapAsEnv"), "configMapName", "configMapKey"),
        pod_config=_pod_config(spec),
    )


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
        platform_executors=MappingProxyType(
            {k: _kubernetes(_map(v)) for k, v in platform.items() if _map(v)}
        ),
        platform_workspace=_map(_map(kubernetes.get("pipelineConfig")).get("workspace")),
    )


def raw_items(loop: LoopIterator) -> Any:
    """A literal loop's items as a value (the IR may hold them as JSON text)."""
    raw = loop.raw_items
    return json.loads(raw) if isinstance(raw, str) else raw


def root_parameter_definitions(pipeline_spec: Json | None) -> Mapping[str, ParameterDefinition]:
    """The root DAG's declared input parameters, without building the whole view (run
    submission checks its parameters with them)."""
    root = _map(_map(pipeline_spec).get("root"))
    return _definitions(_map(root.get("inputDefinitions"))).parameters
