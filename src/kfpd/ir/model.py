"""A typed, immutable view of a run's pipeline IR (PipelineSpec + platform config).

Built once per run by :func:`kfpd.ir.load.load_ir`; everything past the loader reads these
frozen objects instead of walking the raw dicts. Mappings are read-only views
(``MappingProxyType``). ``inputs`` of a task and the definitions of a component are kept in
their IR form (``Json``): input resolution (``orchestrator/resolve.py``) and launch specs read
them as the kfp SDK wrote them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

Json = Mapping[str, Any]
EMPTY: Json = MappingProxyType({})

ALL_UPSTREAM_COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"


@dataclass(frozen=True)
class RetryPolicy:
    """A task's retryPolicy (only built when it asks for at least one retry)."""

    max_retries: int
    backoff_s: float = 0.0
    factor: float = 2.0
    max_backoff_s: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        return min(self.backoff_s * self.factor ** max(attempt - 1, 0), self.max_backoff_s)


class IteratorKind(Enum):
    PARAMETER = "parameterIterator"
    ARTIFACT = "artifactIterator"


@dataclass(frozen=True)
class LoopIterator:
    """A ParallelFor: where its items come from and how many iterations may run at once."""

    kind: IteratorKind
    item_input: str
    raw_items: Any = None  # parameter loops over a literal list (JSON text or a list)
    items_input: str = ""  # else the input (parameter or artifact) holding the items
    parallelism_limit: int = 0  # 0 = unlimited


@dataclass(frozen=True)
class DagTask:
    """One entry of a DAG component's ``tasks``."""

    name: str
    component: str
    display_name: str
    dependent_tasks: tuple[str, ...] = ()
    trigger_strategy: str = ""
    condition: str = ""
    iterator: LoopIterator | None = None
    caching: bool = False
    retry: RetryPolicy | None = None
    inputs: Json = field(
        default_factory=lambda: EMPTY
    )  # the IR's task inputs (resolved by orchestrator/resolve.py)
    spec: Json = field(
        default_factory=lambda: EMPTY
    )  # the whole IR entry, for resolve/launch code that reads it as written

    @property
    def runs_after_failures(self) -> bool:
        """Starts even when an upstream task failed (exit handlers)."""
        return self.trigger_strategy == ALL_UPSTREAM_COMPLETED


@dataclass(frozen=True)
class Selector:
    producer: str
    output_key: str


@dataclass(frozen=True)
class DagOutput:
    """A declared DAG output: one selector, or several for a OneOf (first that has a value)."""

    key: str
    selectors: tuple[Selector, ...]
    oneof: bool
    is_list: bool  # LIST parameter / isArtifactList artifact


@dataclass(frozen=True)
class Dag:
    tasks: Mapping[str, DagTask]
    order: tuple[str, ...]  # dependency order; tasks behind a cycle are left out
    parameter_outputs: tuple[DagOutput, ...] = ()
    artifact_outputs: tuple[DagOutput, ...] = ()

    @property
    def has_outputs(self) -> bool:
        return bool(self.parameter_outputs or self.artifact_outputs)

    def producers(self) -> set[str]:
        """Names of the tasks whose outputs the DAG's declared outputs select."""
        return {
            s.producer
            for out in (*self.parameter_outputs, *self.artifact_outputs)
            for s in out.selectors
        }


@dataclass(frozen=True)
class Importer:
    uri_constant: str | None
    uri_parameter: str
    schema_title: str
    metadata: Json
    reimport: bool
    download_to_workspace: bool


@dataclass(frozen=True)
class Executor:
    label: str
    container: Json | None = None
    importer: Importer | None = None


@dataclass(frozen=True)
class Component:
    name: str
    executor_label: str = ""
    dag: Dag | None = None
    input_definitions: Json = field(default_factory=lambda: EMPTY)
    output_definitions: Json = field(default_factory=lambda: EMPTY)
    spec: Json = field(default_factory=lambda: EMPTY)  # as written, for resolve/launch

    @property
    def output_artifact_keys(self) -> tuple[str, ...]:
        return tuple((self.output_definitions.get("artifacts") or {}).keys())


@dataclass(frozen=True)
class PipelineIR:
    """A run's pipeline: components by name, the root, executors, platform config."""

    name: str
    root: Component
    components: Mapping[str, Component]
    executors: Mapping[str, Executor]
    platform_executors: Mapping[str, Json] = field(default_factory=lambda: EMPTY)
    # kfp-kubernetes pipelineConfig.workspace ({size, kubernetes: {pvcSpecPatch}}), if any.
    platform_workspace: Json = field(default_factory=lambda: EMPTY)
    spec: Json = field(
        default_factory=lambda: EMPTY
    )  # as written (runtime parameter validation reads it)
    _scopes: dict[str, Component | None] = field(default_factory=dict, compare=False)

    def component_at(self, scope_path: str) -> Component | None:
        """The component a scope path (``root.<task>.<task>…``) names."""
        if scope_path in self._scopes:
            return self._scopes[scope_path]
        found = self._walk(scope_path)
        self._scopes[scope_path] = found  # immutable data, so a benign race at worst
        return found

    def _walk(self, scope_path: str) -> Component | None:
        parts = [p for p in scope_path.split(".") if p]
        if not parts or parts[0] != "root":
            return None
        component: Component | None = self.root
        for name in parts[1:]:
            task = component.dag.tasks.get(name) if component and component.dag else None
            if task is None:
                return None
            component = self.components.get(task.component)
        return component

    def dag_at(self, scope_path: str) -> Dag | None:
        component = self.component_at(scope_path)
        return component.dag if component is not None else None

    def task_at(self, scope_path: str) -> DagTask | None:
        """The DAG entry a task's scope path ends in (its parent DAG's entry)."""
        parent, _, name = scope_path.rpartition(".")
        dag = self.dag_at(parent) if parent else None
        return dag.tasks.get(name) if dag is not None else None

    def executor_of(self, component: Component) -> Executor | None:
        return self.executors.get(component.executor_label)

    def platform_config(self, component: Component) -> Json:
        """The Kubernetes platform config of a component's executor (empty when none)."""
        return self.platform_executors.get(component.executor_label) or EMPTY
