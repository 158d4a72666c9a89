"""Input resolution: what a task receives from its DAG's inputs, its siblings and constants.

Follows upstream's resolver (reference §5.6): parameter and artifact sources, collected
outputs of loops, OneOf outputs, task final status, placeholders in runtime constants,
expression selectors, declared types, defaults and optional inputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kfpd.domain import grpc_codes
from kfpd.domain.enums import IOType, TaskState, TaskType
from kfpd.ir import (
    ArtifactSource,
    Component,
    ComponentInput,
    DagTask,
    FinalStatus,
    IteratorKind,
    LoopIterator,
    ParameterDefinition,
    ParameterInput,
    ParameterSource,
    RuntimeValue,
    TaskOutput,
    Unsupported,
    raw_items,
)
from kfpd.orchestrator.cel import CelError, apply_selector
from kfpd.orchestrator.model import ArtifactIO, ArtifactRef, Param, Sibling


class ResolveError(Exception):
    """A task's inputs cannot be resolved (the task fails with this message)."""


@dataclass(frozen=True)
class JobInfo:
    """Run-level values that runtime constants and placeholders may name."""

    run_id: str
    run_name: str
    create_time: str
    schedule_time: str
    pipeline_root: str = ""
    workspace_path: str = "/kfp-workspace"
    resource_name: str = ""  # what Argo would call the workflow: <pipeline name>-<run id prefix>


@dataclass
class Scope:
    """What a task inside one DAG instance can see."""

    group_name: str
    group_task_id: str
    params: list[Param]
    artifacts: list[ArtifactIO]
    iteration: int | None
    sibling: Callable[[str], Sibling | None]
    job: JobInfo


@dataclass
class ResolvedInputs:
    params: dict[str, Param] = field(default_factory=dict)
    artifacts: dict[str, ArtifactIO] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        return {k: p.value for k, p in self.params.items()}


_SUCCESS = {TaskState.SUCCEEDED, TaskState.CACHED}
_FINAL_STATUS_NAMES = {
    TaskState.SUCCEEDED: "SUCCEEDED",
    TaskState.CACHED: "SUCCEEDED",
    TaskState.FAILED: "FAILED",
    TaskState.CANCELED: "CANCELLED",
    TaskState.SKIPPED: "SKIPPED",
}
_INPUT_REF = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")


def _pick(entries: list[Any], iteration: int | None) -> list[Any]:
    """Prefer the entries of the current iteration, as upstream's resolver does."""
    if iteration is not None:
        same = [e for e in entries if e.iteration == iteration]
        if same:
            return same
    return entries


def _collect(entries: list[Param]) -> list[Any]:
    with_iteration = [e for e in entries if e.iteration is not None]
    if len(with_iteration) == len(entries):
        ordered = sorted(entries, key=lambda e: e.iteration or 0)
        seen = [e.iteration for e in ordered]
        if len(set(seen)) != len(seen):
            raise ResolveError(f"duplicate iteration outputs for {entries[0].key!r}")
        return [e.value for e in ordered]
    return [e.value for e in entries]


def _final_status(sibling: Sibling, job: JobInfo) -> dict[str, Any]:
    failed = sibling.state == TaskState.FAILED
    error: dict[str, Any] = {}
    if failed:
        error = {"code": grpc_codes.UNKNOWN, "message": sibling.message or f"{sibling.name} failed"}
    return {
        "state": _FINAL_STATUS_NAMES.get(sibling.state, sibling.state.name),
        "pipelineTaskName": sibling.name,
        "pipelineJobResourceName": job.resource_name or job.run_id,
        "error": error,
    }


def resource_name(pipeline_name: str, run_id: str) -> str:
    """A Kubernetes-style name for a run, as upstream's Argo workflow names read."""
    base = re.sub(r"[^a-z0-9-]+", "-", pipeline_name.lower()).strip("-")[:50] or "pipeline"
    return f"{base}-{run_id[:8]}"


def _placeholders(text: str, scope: Scope, task_name: str) -> str:
    job = scope.job
    values = {
        "{{$.pipeline_job_name}}": job.run_name,
        "{{$.pipeline_job_resource_name}}": job.resource_name or job.run_id,
        "{{$.pipeline_job_uuid}}": job.run_id,
        "{{$.pipeline_job_create_time_utc}}": job.create_time,
        "{{$.pipeline_job_schedule_time_utc}}": job.schedule_time,
        "{{$.pipeline_task_name}}": task_name,
        "{{$.pipeline_task_uuid}}": scope.group_task_id,
        "{{$.workspace_path}}": job.workspace_path,
        "{{$.pipeline_root}}": job.pipeline_root,
    }
    for placeholder, value in values.items():
        if placeholder in text:
            text = text.replace(placeholder, value)
    return text


class _TaskResolver:
    def __init__(self, task: DagTask, component: Component, scope: Scope) -> None:
        self.task_name = task.name
        self.scope = scope
        self.wired_params = task.inputs.parameters
        self.wired_artifacts = task.inputs.artifacts
        self.param_defs = component.input_definitions.parameters
        self.artifact_defs = component.input_definitions.artifacts
        self._resolving: set[str] = set()

    # -- parameters

    def param(self, name: str) -> Param | None:
        """The resolved value of a wired parameter, None when it resolves to null."""
        if name in self._resolving:
            raise ResolveError(f"input {name!r} refers to itself")
        self._resolving.add(name)
        try:
            return self._param_input(name, self.wired_params[name])
        finally:
            self._resolving.discard(name)

    def _param_input(self, name: str, wired: ParameterInput) -> Param | None:
        found = self._param_source(name, wired.source)
        if found is not None and wired.selector:
            try:
                found = Param(
                    name,
                    apply_selector(wired.selector, found.value),
                    found.io_type,
                    found.producer,
                    found.iteration,
                )
            except CelError as exc:
                raise ResolveError(f"input {name!r}: {exc}") from exc
        return found

    def _param_source(self, name: str, source: ParameterSource) -> Param | None:
        scope = self.scope
        match source:
            case ComponentInput(key=key):
                entries = _pick([p for p in scope.params if p.key == key], scope.iteration)
                if entries and entries[0].value is not None:
                    return Param(
                        name,
                        entries[0].value,
                        IOType.COMPONENT_INPUT,
                        scope.group_name,
                        scope.iteration,
                    )
                return None
            case TaskOutput(producer=producer, key=key):
                return self._sibling_param(name, producer, key)
            case RuntimeValue(constant=constant):
                if isinstance(constant, str):
                    constant = self._expand_constant(constant)
                if constant is None:
                    return None
                return Param(
                    name, constant, IOType.RUNTIME_VALUE_INPUT, scope.group_name, scope.iteration
                )
            case FinalStatus(producer=producer):
                sibling = scope.sibling(producer)
                if sibling is None:
                    raise ResolveError(f"input {name!r}: task {producer!r} has not run")
                return Param(
                    name,
                    _final_status(sibling, scope.job),
                    IOType.TASK_FINAL_STATUS_OUTPUT,
                    producer,
                    scope.iteration,
                )
            case Unsupported(keys=keys):
                raise ResolveError(f"input {name!r} has no supported source: {list(keys)}")

    def _expand_constant(self, text: str) -> str:
        text = _placeholders(text, self.scope, self.task_name)

        def sub(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref in self.wired_params:
                resolved = self.param(ref)
            else:
                entries = [p for p in self.scope.params if p.key == ref]
                resolved = _pick(entries, self.scope.iteration)[0] if entries else None
            if resolved is None or resolved.value is None:
                return ""
            value = resolved.value
            return value if isinstance(value, str) else json.dumps(value)

        return _INPUT_REF.sub(sub, text)

    def _sibling_param(self, name: str, producer: str, key: str) -> Param | None:
        sibling = self.scope.sibling(producer)
        if sibling is None:
            return None
        entries = [p for p in sibling.outputs.params if p.key == key]
        iteration = self.scope.iteration
        if sibling.type == TaskType.LOOP or any(
            e.io_type == IOType.ITERATOR_OUTPUT for e in entries
        ):
            return Param(name, _collect(entries), IOType.COLLECTED_INPUTS, producer, iteration)
        if sibling.state not in _SUCCESS:
            return None
        chosen = [e for e in entries if e.value is not None]
        if not chosen:
            return None
        return Param(name, chosen[0].value, IOType.TASK_OUTPUT_INPUT, producer, iteration)

    # -- artifacts

    def artifact(self, name: str, source: ArtifactSource) -> ArtifactIO | None:
        scope = self.scope
        match source:
            case ComponentInput(key=key):
                entries = _pick([a for a in scope.artifacts if a.key == key], scope.iteration)
                arts = tuple(a for e in entries for a in e.artifacts)
                if not arts:
                    return None
                return ArtifactIO(
                    name, arts, IOType.COMPONENT_INPUT, scope.group_name, scope.iteration
                )
            case TaskOutput(producer=producer, key=key):
                return self._sibling_artifact(name, producer, key)
            case Unsupported(keys=keys):
                raise ResolveError(f"input artifact {name!r} has no supported source: {list(keys)}")

    def _sibling_artifact(self, name: str, producer: str, key: str) -> ArtifactIO | None:
        scope = self.scope
        sibling = scope.sibling(producer)
        if sibling is None:
            return None
        entries = [a for a in sibling.outputs.artifacts if a.key == key]
        if sibling.type == TaskType.LOOP or any(
            e.io_type == IOType.ITERATOR_OUTPUT for e in entries
        ):
            ordered = sorted(entries, key=lambda e: e.iteration or 0)
            arts = tuple(a for e in ordered for a in e.artifacts)
            return ArtifactIO(name, arts, IOType.COLLECTED_INPUTS, producer, scope.iteration)
        arts = tuple(a for e in entries[:1] for a in e.artifacts)
        if not arts:
            return None
        return ArtifactIO(name, arts, IOType.TASK_OUTPUT_INPUT, producer, scope.iteration)


def _to_integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, int):
        return value
    raise ValueError


def _to_double(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return float(value.strip())
    raise ValueError


def _to_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise ValueError


def _to_json(wanted: type) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, wanted):
            raise ValueError
        return value

    return convert


# Parameter type -> conversion of a value to it (ValueError when it does not fit).
_NORMALIZE: dict[str, Callable[[Any], Any]] = {
    "STRING": lambda value: value if isinstance(value, str) else json.dumps(value),
    "NUMBER_INTEGER": _to_integer,
    "NUMBER_DOUBLE": _to_double,
    "BOOLEAN": _to_boolean,
    "LIST": _to_json(list),
    "STRUCT": _to_json(dict),
}


def normalize(name: str, ptype: str, value: Any) -> Any:
    """Bring a value to its declared parameter type (upstream: STRING takes anything)."""
    convert = _NORMALIZE.get(ptype)
    if convert is None:
        return value
    try:
        return convert(value)
    except ValueError:
        raise ResolveError(
            f"input {name!r} must be {ptype}, got {type(value).__name__} {value!r}"
        ) from None


def iterator_item_key(loop: LoopIterator | None) -> str | None:
    return loop.item_input if loop is not None else None


def resolve_source(
    task: DagTask,
    component: Component,
    scope: Scope,
    source: ParameterInput,
) -> Any:
    """Resolve one parameter source outside the task's inputs (e.g. a secret name in the
    Kubernetes platform config); None when it has no value."""
    found = _TaskResolver(task, component, scope)._param_input("_", source)
    return found.value if found is not None else None


def _wired_params(resolver: _TaskResolver) -> dict[str, Param]:
    """Parameters wired to a source that has a value, normalised to their declared type."""
    found_params: dict[str, Param] = {}
    for name in resolver.wired_params:
        definition = resolver.param_defs.get(name)
        ptype = (definition.parameter_type if definition is not None else None) or ""
        if ptype == "TASK_CONFIG":
            continue
        found = resolver.param(name)
        if found is None or found.value is None:
            continue  # handled with the unwired ones
        value = normalize(name, ptype, found.value) if ptype else found.value
        found_params[name] = Param(name, value, found.io_type, found.producer, found.iteration)
    return found_params


def _default_param(
    task_name: str, name: str, definition: ParameterDefinition, scope: Scope
) -> Param | None:
    """An input without a value: its default, None when it may stay unset, else an error."""
    ptype = definition.parameter_type or ""
    if ptype == "TASK_CONFIG":
        return None
    if definition.has_default:
        value = definition.default
        value = normalize(name, ptype, value) if ptype else value
        return Param(name, value, IOType.COMPONENT_DEFAULT_INPUT, scope.group_name, scope.iteration)
    if definition.optional or ptype == "TASK_FINAL_STATUS":
        return None
    raise ResolveError(f"task {task_name!r}: required input {name!r} has no value")


def resolve_inputs(task: DagTask, component: Component, scope: Scope) -> ResolvedInputs:
    """Resolve every input of a task; raise ResolveError when a required one is missing."""
    resolver = _TaskResolver(task, component, scope)
    result = ResolvedInputs(params=_wired_params(resolver))
    skip = {iterator_item_key(task.iterator)}
    for name, definition in resolver.param_defs.items():
        if name in result.params or name in skip:
            continue
        default = _default_param(task.name, name, definition, scope)
        if default is not None:
            result.params[name] = default
    for name, source in resolver.wired_artifacts.items():
        found_artifacts = resolver.artifact(name, source)
        if found_artifacts is not None:
            result.artifacts[name] = found_artifacts
    for name, artifact in resolver.artifact_defs.items():
        if name in result.artifacts or name in skip:
            continue
        if not artifact.optional:
            raise ResolveError(f"task {task.name!r}: required input artifact {name!r} is missing")
    return result


def iteration_items(loop: LoopIterator, inputs: ResolvedInputs) -> list[Any]:
    """The items a ParallelFor iterates over: parameter values or artifacts."""
    if loop.kind == IteratorKind.ARTIFACT:
        found = inputs.artifacts.get(loop.items_input)
        return list(found.artifacts) if found else []
    if loop.raw_items is not None:
        value = raw_items(loop)
    else:
        key = loop.items_input
        if key not in inputs.params:
            raise ResolveError(f"loop items come from {key!r}, which has no value")
        value = inputs.params[key].value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ResolveError(f"loop items {key!r} are not a JSON list") from None
    if not isinstance(value, list):
        raise ResolveError(f"loop items must be a list, got {type(value).__name__}")
    return value


def loop_artifact_item(item: Any) -> ArtifactRef:
    if not isinstance(item, ArtifactRef):
        raise ResolveError("artifact loop item is not an artifact")
    return item
