"""A typed, immutable view of a run's pipeline IR (PipelineSpec + platform config).

Built once per run by :func:`kfpd.ir.load.load_ir` (and cached once per run by
``services/taskdata.ir_of``); everything past the loader reads these frozen objects instead of
walking the raw dicts. Mappings are read-only views (``MappingProxyType``). ``Json`` is left
only where the data is free-form: parameter values (constants, defaults), user metadata, an
executor's ``resources`` and the Kubernetes pod config that goes, resolved, into the
LaunchSpec for an executor that builds pods (the launcher's wire format).
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
class ComponentInput:
    """A value of the enclosing DAG's inputs (``componentInputParameter`` / ``Artifact``)."""

    key: str


@dataclass(frozen=True)
class TaskOutput:
    """A sibling task's output (``taskOutputParameter`` / ``taskOutputArtifact``)."""

    producer: str
    key: str


@dataclass(frozen=True)
class RuntimeValue:
    """A constant (any JSON value; strings may hold placeholders)."""

    constant: Any


@dataclass(frozen=True)
class FinalStatus:
    """The final status of a sibling task (exit handlers' ``taskFinalStatus``)."""

    producer: str


@dataclass(frozen=True)
class Unsupported:
    """A source kfpd does not know: the task fails with these keys in its message."""

    keys: tuple[str, ...]


ParameterSource = ComponentInput | TaskOutput | RuntimeValue | FinalStatus | Unsupported
ArtifactSource = ComponentInput | TaskOutput | Unsupported


@dataclass(frozen=True)
class ParameterInput:
    """Where a task's input parameter comes from, and the CEL selector applied to it."""

    source: ParameterSource
    selector: str = ""  # parameterExpressionSelector


@dataclass(frozen=True)
class TaskInputs:
    """A DAG entry's wired inputs, in IR order."""

    parameters: Mapping[str, ParameterInput] = field(default_factory=lambda: MappingProxyType({}))
    artifacts: Mapping[str, ArtifactSource] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ParameterDefinition:
    """A declared input or output parameter of a component."""

    parameter_type: str | None = None  # None: the IR leaves it out
    has_default: bool = False
    default: Any = None  # a JSON value (when has_default)
    optional: bool = False


@dataclass(frozen=True)
class ArtifactType:
    """An ``artifactType`` (fields the IR leaves out are None)."""

    schema_title: str | None = None
    schema_version: str | None = None
    instance_schema: str | None = None
    schema_uri: str | None = None

    def to_json(self) -> dict[str, str]:
        """As the IR writes it (cache keys hash this form, so it must stay stable)."""
        fields = {
            "schemaTitle": self.schema_title,
            "schemaVersion": self.schema_version,
            "instanceSchema": self.instance_schema,
            "schemaUri": self.schema_uri,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class ArtifactDefinition:
    """A declared input or output artifact of a component."""

    artifact_type: ArtifactType = field(default_factory=ArtifactType)
    is_list: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Definitions:
    """A component's ``inputDefinitions`` or ``outputDefinitions``, in IR order."""

    parameters: Mapping[str, ParameterDefinition] = field(
        default_factory=lambda: MappingProxyType({})
    )
    artifacts: Mapping[str, ArtifactDefinition] = field(
        default_factory=lambda: MappingProxyType({})
    )


NO_DEFINITIONS = Definitions()


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
    inputs: TaskInputs = field(default_factory=TaskInputs)  # resolved by orchestrator/resolve

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
class Container:
    """A container executor (``deploymentSpec.executors.<label>.container``)."""

    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # (name, value), in order
    resources: Json = field(default_factory=lambda: EMPTY)  # passed to executors as written


@dataclass(frozen=True)
class Executor:
    label: str
    container: Container | None = None
    importer: Importer | None = None


@dataclass(frozen=True)
class Component:
    name: str
    executor_label: str = ""
    dag: Dag | None = None
    input_definitions: Definitions = NO_DEFINITIONS
    output_definitions: Definitions = NO_DEFINITIONS

    @property
    def output_artifact_keys(self) -> tuple[str, ...]:
        return tuple(self.output_definitions.artifacts)


@dataclass(frozen=True)
class FieldPathEnv:
    """``fieldPathAsEnv``: an environment variable from the pod's downward API."""

    name: str
    field_path: str


@dataclass(frozen=True)
class KeyToEnv:
    key: str  # secretKey / configMapKey
    env_var: str


@dataclass(frozen=True)
class EnvFromStore:
    """A ``secretAsEnv`` or ``configMapAsEnv`` entry: keys of a named secret or config map."""

    name: str
    name_parameter: ParameterInput | None  # secretNameParameter / configMapNameParameter
    optional: bool
    keys: tuple[KeyToEnv, ...]


@dataclass(frozen=True)
class KubernetesConfig:
    """A component's kfp-kubernetes executor config.

    The fields kfpd applies on a local host are typed; ``pod_config`` is the whole config as
    written, each parameter source in it replaced by a :class:`ParameterInput`, for an executor
    that builds real pods (``orchestrator/platform.resolved_config`` turns it into the
    LaunchSpec's wire form).
    """

    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    field_path_env: tuple[FieldPathEnv, ...] = ()
    secret_env: tuple[EnvFromStore, ...] = ()
    config_map_env: tuple[EnvFromStore, ...] = ()
    pod_config: Json = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True)
class PipelineIR:
    """A run's pipeline: components by name, the root, executors, platform config."""

    name: str
    root: Component
    components: Mapping[str, Component]
    executors: Mapping[str, Executor]
    platform_executors: Mapping[str, KubernetesConfig] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # kfp-kubernetes pipelineConfig.workspace ({size, kubernetes: {pvcSpecPatch}}), if any:
    # only forwarded to executors that build pods, so kept in its wire form.
    platform_workspace: Json = field(default_factory=lambda: EMPTY)
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

    def platform_config(self, component: Component) -> KubernetesConfig | None:
        """The Kubernetes platform config of a component's executor (None when none)."""
        return self.platform_executors.get(component.executor_label)
