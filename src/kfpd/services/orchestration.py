"""Orchestration steps: each call runs in one transaction under the run's row lock, writes the
tasks it decides to start (through the run state machine, services/state.py) and returns what
the engine must do after commit: launch container tasks, wait for retry backoffs.

The run graph lives in the database; nothing here keeps state between calls, so a restarted
server resumes a run from its rows (:func:`resume_run`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kfpd.db.models import Artifact, Run, Task
from kfpd.domain.enums import (
    GROUP_TASK_TYPES,
    ArtifactType,
    IOType,
    RunState,
    TaskPodType,
    TaskState,
    TaskType,
)
from kfpd.domain.grpc_codes import INVALID_ARGUMENT
from kfpd.domain.schema_titles import SCHEMA_TITLE_KEY, artifact_type_for
from kfpd.domain.timeutil import now_us, to_rfc3339
from kfpd.domain.transitions import Phase, TaskEvent
from kfpd.ir import Component, Container, DagTask, IteratorKind, LoopIterator, ParameterInput
from kfpd.ir.parameters import runtime_parameters
from kfpd.orchestrator.launch import build_launch_spec
from kfpd.orchestrator.model import ArtifactIO, Param, Sibling
from kfpd.orchestrator.plan import readiness
from kfpd.orchestrator.planner import (
    FailTask,
    ImportArtifact,
    LaunchTask,
    SkipTask,
    StartGroup,
    StartLoop,
    executor_container,
    plan_child,
    plan_iterations,
)
from kfpd.orchestrator.platform import LocalStore, Pod, local_env, resolved_config
from kfpd.orchestrator.resolve import (
    JobInfo,
    ResolvedInputs,
    ResolveError,
    Scope,
    iteration_items,
    resolve_source,
    resource_name,
)
from kfpd.schemas.launch import LaunchSpec
from kfpd.services.artifacts import link_artifact, uri_hash
from kfpd.services.common import new_id
from kfpd.services.state import machine_for, pending_retry_delay, task_phase
from kfpd.services.taskdata import (
    TASKS,
    TaskValues,
    child_named,
    find_cached_task,
    insert_task_row,
    ir_of,
    iteration_count,
    links_of,
    load_task,
    load_task_head,
    load_tasks,
    logical_key,
    new_task_row,
    params,
    sibling_of,
    task_exists,
    with_message,
    write_task,
)

log = logging.getLogger(__name__)
LOCAL_PROCESS = "local process (starting)"

_GROUPS = {int(t) for t in GROUP_TASK_TYPES}
# Loop task id -> its recorded inputs (see _RunStepper._loop_inputs); least recently used out.
_LoopInputs = tuple[tuple[Param, ...], tuple[ArtifactIO, ...]]
_LOOP_INPUTS: OrderedDict[str, _LoopInputs] = OrderedDict()
_LOOP_INPUTS_SIZE = 64
_LOOP_INPUTS_LOCK = threading.Lock()
# Tasks handed to an executor and not final: running, or queued for a slot.
_LAUNCHED_STATES = [int(TaskState.RUNNING), int(TaskState.PENDING)]
ITERATIONS_PER_STEP = 500
# The event that gives a task the orchestrator creates its first state.
_CREATE_EVENTS = {
    TaskState.RUNNING: TaskEvent.START,
    TaskState.PENDING: TaskEvent.QUEUE,
    TaskState.SKIPPED: TaskEvent.SKIP,
    TaskState.FAILED: TaskEvent.FAIL,
}


@dataclass(frozen=True)
class OrchestratorConfig:
    server_url: str
    pipeline_root: str  # URI, e.g. file:///home/u/.kfpd/artifacts
    token_for: Callable[[str], str]  # run id -> run-scoped token
    cache_enabled: bool = True
    workspace_root: str = ""  # per-run {{$.workspace_path}} directories live under it
    secrets_dir: Path | None = None  # local stand-ins for Kubernetes secrets (<name>.json)
    config_maps_dir: Path | None = None  # and config maps
    # True: kfp-kubernetes env config is applied here from the local stores above; False: it
    # goes resolved into the LaunchSpec for an executor that builds real pods (Kubernetes).
    local_platform: bool = True
    # How many launches the executor starts at once (a queueing executor's free slots, read
    # once per step; only the engine's thread submits, so none is taken meanwhile). None: all.
    free_slots: Callable[[], int] | None = None


@dataclass
class Step:
    """What the engine does after the transaction commits."""

    launches: list[LaunchSpec] = field(default_factory=list)
    retries: list[tuple[float, str]] = field(default_factory=list)  # (delay s, task id)
    follow_ups: list[str] = field(default_factory=list)  # groups to advance in a next step
    queued: set[str] = field(default_factory=set)  # launches left PENDING (no free slot)
    finished: bool = False  # the run reached a final state


class _RunStepper:
    """One orchestration transaction for one run."""

    def __init__(self, session: Session, run_id: str, config: OrchestratorConfig) -> None:
        self.session = session
        self.machine = machine_for(session, run_id)
        self.run: Run = self.machine.run
        self.config = config
        self.ir = ir_of(session, run_id)
        self.step = Step()
        self.now = now_us()
        self._scope_cache: Scope | None = None
        self._free_slots: int | None = None  # read at this step's first launch
        self._dirty: list[TaskValues] = []
        runtime = session.scalar(select(Run.runtime_config).where(Run.id == run_id)) or {}
        self.runtime_config: dict[str, Any] = runtime
        root = runtime.get("pipeline_root") or config.pipeline_root
        self.job = JobInfo(
            run_id=self.run.id,
            run_name=self.run.display_name,
            create_time=to_rfc3339(self.run.created_at) or "",
            schedule_time=to_rfc3339(self.run.scheduled_at or self.run.created_at) or "",
            pipeline_root=root,
            workspace_path=self._workspace(),
            resource_name=resource_name(self.run.pipeline_name, self.run.id),
        )

    # -- task rows

    def _new_task(
        self,
        *,
        name: str,
        parent: TaskValues | None,
        scope_path: str,
        ttype: TaskType,
        state: TaskState,
        display_name: str = "",
        iteration: int | None = None,
        inputs: ResolvedInputs | None = None,
        extra_params: list[Param] | None = None,
        message: str | None = None,
        fingerprint: str = "",
        type_attributes: dict[str, Any] | None = None,
    ) -> TaskValues:
        parent_id = parent["id"] if parent is not None else None
        key = logical_key(self.run.id, parent_id, scope_path, name, int(ttype), iteration)
        existing = load_tasks(self.session, TASKS.c.logical_key == key)
        if existing:
            return existing[0]
        attrs = dict(type_attributes or {})
        if iteration is not None:
            attrs["iteration_index"] = str(iteration)
        input_params = [p.to_json() for p in (inputs.params.values() if inputs else [])]
        input_params += [p.to_json() for p in extra_params or []]
        task = new_task_row(
            run_id=self.run.id,
            namespace=self.run.namespace,
            parent_id=parent_id,
            name=name,
            display_name=display_name,
            scope_path=scope_path,
            ttype=int(ttype),
            status_metadata={"message": message} if message else None,
            type_attributes=attrs,
            iteration=iteration,
            cache_fingerprint=fingerprint,
            input_parameters=input_params,
            created_at=self.now,
            logical_key=key,
        )
        insert_task_row(self.session.connection(), task)
        if inputs is not None:
            for io in inputs.artifacts.values():
                self._link(task, io, io.key)
        self.machine.start_run(self.now)
        self.set_state(task, _CREATE_EVENTS[state], state, message=message)
        return task

    def _link(
        self, task: TaskValues, io: ArtifactIO, key: str, io_type: IOType | None = None
    ) -> None:
        producer: dict[str, Any] = {"task_name": io.producer or ""}
        if io.iteration is not None:
            producer["iteration"] = str(io.iteration)
        for art in io.artifacts:
            link_artifact(
                self.session,
                artifact_id=art.artifact_id,
                task=task,
                io_type=io_type or io.io_type,
                producer=producer,
                key=key,
                now=self.now,
            )

    def set_state(
        self,
        task: TaskValues,
        event: TaskEvent,
        state: TaskState,
        *,
        message: str | None = None,
        changes: TaskValues | None = None,
    ) -> None:
        """Apply a task event through the state machine; schedule what it asks for."""
        change = self.machine.apply(
            task, event, state, at=self.now, message=message, changes=changes
        )
        if change is not None and change.retry_delay is not None:
            self.step.retries.append((change.retry_delay, task["id"]))
        if TaskState(task["state"]).is_terminal and task["parent_task_id"]:
            self._dirty_id(task["parent_task_id"])

    def _dirty_id(self, task_id: str) -> None:
        found = load_task_head(self.session, task_id)  # drain reads what it needs again
        if found is not None:
            self._dirty.append(found)

    def fail(self, task: TaskValues, message: str, event: TaskEvent = TaskEvent.FAIL) -> None:
        """FAIL a task (a pending retry when its policy has retries left)."""
        changes = {"status_metadata": with_message(task["status_metadata"], message)}
        task.update(changes)
        self.set_state(task, event, TaskState.FAILED, message=message, changes=changes)

    def _schedule_retry(self, task: TaskValues) -> None:
        """A task that awaits a retry (after a restart, or its process just exited)."""
        self.step.retries.append((pending_retry_delay(self.ir, task), task["id"]))

    # -- scopes

    def _scope(self, group: TaskValues) -> Scope:
        siblings: dict[str, Sibling | None] = {}

        def sibling(name: str) -> Sibling | None:
            if name not in siblings:
                row = child_named(self.session, group["id"], name)
                siblings[name] = sibling_of(self.session, row) if row is not None else None
            return siblings[name]

        own_params = params(group["input_parameters"])
        own_artifacts = links_of(self.session, [group["id"]], outputs=False).get(group["id"], [])
        if group["type"] == TaskType.LOOP_ITERATION and group["parent_task_id"]:
            # An iteration records only its item; the loop's inputs are read from the loop
            # (copying them into every iteration would grow with items x iterations).
            loop_params, loop_artifacts = self._loop_inputs(group["parent_task_id"])
            own_params = [*loop_params, *own_params]
            own_artifacts = [*loop_artifacts, *own_artifacts]
        return Scope(
            group_name=group["name"],
            group_task_id=group["id"],
            params=own_params,
            artifacts=own_artifacts,
            iteration=group["iteration_index"],
            sibling=sibling,
            job=self.job,
        )

    def _loop_inputs(self, loop_id: str) -> _LoopInputs:
        """A loop's recorded inputs. They never change once the loop row exists (a RetryRun
        reset keeps inputs), and they hold every item: decoded once per loop, not in each
        step that advances one of its iterations (that grew with the loop's size)."""
        with _LOOP_INPUTS_LOCK:
            found = _LOOP_INPUTS.get(loop_id)
            if found is not None:
                _LOOP_INPUTS.move_to_end(loop_id)
                return found
        loop = load_task(self.session, loop_id)
        if loop is None:
            return (), ()
        arts = links_of(self.session, [loop_id], outputs=False).get(loop_id, [])
        inputs = (tuple(params(loop["input_parameters"])), tuple(arts))
        with _LOOP_INPUTS_LOCK:
            _LOOP_INPUTS[loop_id] = inputs
            while len(_LOOP_INPUTS) > _LOOP_INPUTS_SIZE:
                _LOOP_INPUTS.popitem(last=False)
        return inputs

    def _recorded_inputs(self, task: TaskValues) -> ResolvedInputs:
        """A task's inputs as recorded at its creation (for launches)."""
        links = links_of(self.session, [task["id"]], outputs=False).get(task["id"], [])
        return _merged_inputs(params(task["input_parameters"]), links)

    def _loop_items(self, loop_id: str, iterator: LoopIterator) -> list[Any]:
        """A loop's items, from its recorded inputs (decoded once per loop)."""
        loop_params, loop_artifacts = self._loop_inputs(loop_id)
        return iteration_items(iterator, _merged_inputs(loop_params, loop_artifacts))

    def _started_iterations(self, loop: TaskValues, count: int) -> int:
        """How many iterations of ``loop`` have their row. They start in index order, so the
        rows are 0..k-1 and k is found by probing logical keys (binary search): no read of
        every iteration on each one that ends (a ``parallelismLimit`` loop starts one then)."""
        low, high = 0, count  # iteration low-1 exists (or low is 0); iteration high does not
        while low < high:
            middle = (low + high) // 2
            if self._iteration_exists(loop, middle):
                low = middle + 1
            else:
                high = middle
        return low

    # -- the walk

    def start(self) -> None:
        roots = load_tasks(
            self.session, TASKS.c.run_id == self.run.id, TASKS.c.parent_task_id.is_(None)
        )
        if roots:
            self._dirty.append(roots[0])
            self.drain()
            return
        config = self.runtime_config.get("parameters") or {}
        try:
            values = runtime_parameters(self.ir.root.input_definitions.parameters, config)
        except Exception as exc:  # validated at submission; a changed spec is still reported
            self.machine.fail_run(str(exc), self.now, code=INVALID_ARGUMENT)
            return
        runtime = [Param(k, v, IOType.RUNTIME_VALUE_INPUT, "ROOT") for k, v in values.items()]
        root = self._new_task(
            name="ROOT",
            parent=None,
            scope_path="root",
            ttype=TaskType.ROOT,
            state=TaskState.RUNNING,
            display_name=self.run.display_name,
            extra_params=runtime,
        )
        self._dirty.append(root)
        self.drain()

    def drain(self) -> None:
        """Advance every touched group until nothing more can start now."""
        while self._dirty:
            # Re-read: the roll-up may have finished it since it was queued. A loop without
            # its inputs (every item): most visits only learn that all iterations started.
            queued = self._dirty.pop()
            load = load_task_head if queued["type"] == TaskType.LOOP else load_task
            group = load(self.session, queued["id"]) or queued
            if TaskState(group["state"]).is_terminal:
                if group["parent_task_id"]:
                    self._dirty_id(group["parent_task_id"])
                continue
            if group["type"] == TaskType.LOOP:
                self._advance_loop(group)
            elif group["type"] in _GROUPS:
                self._advance_dag(group)
        if RunState(self.run.state).is_terminal:
            self.step.finished = True

    def _advance_dag(self, group: TaskValues) -> None:
        dag = self.ir.dag_at(group["scope_path"])
        if dag is None or not dag.tasks:
            self.set_state(group, TaskEvent.FINISH, TaskState.SUCCEEDED)
            return
        while True:
            rows = {
                name: TaskState(state)
                for name, state in self.session.execute(
                    select(Task.name, Task.state).where(Task.parent_task_id == group["id"])
                )
            }
            ready = readiness(dag, rows).ready
            if not ready:
                return
            scope = self._scope(group)
            self._scope_cache = scope
            for name in ready:
                self._start_child(group, scope, dag.tasks[name])
            group = load_task(self.session, group["id"]) or group
            if TaskState(group["state"]).is_terminal:
                return

    def _start_child(self, group: TaskValues, scope: Scope, spec: DagTask) -> None:
        """Ask the planner about a ready DAG entry and apply its decision."""
        component = self.ir.components.get(spec.component) or Component(spec.component)
        decision = plan_child(
            spec,
            component,
            self.ir.executor_of(component),
            scope,
            pipeline_name=self.run.pipeline_name,
            cache_enabled=self.config.cache_enabled,
        )
        common: dict[str, Any] = {
            "name": spec.name,
            "parent": group,
            "scope_path": f"{group['scope_path']}.{spec.name}",
            "ttype": decision.ttype,
            "display_name": spec.display_name,
            "iteration": group["iteration_index"],
        }
        match decision:
            case FailTask(message=message, inputs=inputs):
                self._new_task(**common, state=TaskState.FAILED, inputs=inputs, message=message)
            case SkipTask(inputs=inputs):
                self._new_task(**common, state=TaskState.SKIPPED, inputs=inputs)
            case StartLoop():
                self._start_loop(common, decision)
            case StartGroup(inputs=inputs):
                self._dirty.append(self._new_task(**common, state=TaskState.RUNNING, inputs=inputs))
            case ImportArtifact():
                self._run_importer(common, component, decision)
            case LaunchTask():
                self._start_container(common, spec, component, decision)

    # -- loops

    def _start_loop(self, common: dict[str, Any], decision: StartLoop) -> None:
        loop = self._new_task(
            **common,
            state=TaskState.RUNNING,
            inputs=decision.inputs,
            type_attributes={"iteration_count": str(decision.item_count)},
        )
        if not decision.item_count:
            self.set_state(loop, TaskEvent.SKIP, TaskState.SKIPPED)
            return
        self._dirty.append(loop)

    def _advance_loop(self, loop: TaskValues) -> None:
        """Start the iterations that may start now. This runs after every iteration that
        ends, so its common case (every iteration started) is one probe of an index, never a
        pass over the iterations (that made a loop's cost grow with the square of its size)."""
        count = iteration_count(loop["type_attributes"]) or 0
        if count <= 0 or self._iteration_exists(loop, count - 1):
            return
        spec = self.ir.task_at(loop["scope_path"])
        iterator = spec.iterator if spec is not None else None
        if iterator is None:
            self.fail(loop, f"no loop in the pipeline at {loop['scope_path']!r}")
            return
        running = 0
        if iterator.parallelism_limit > 0:
            # Index (parent_task_id, state): reads the RUNNING ones only, at most the limit.
            running = self.session.execute(
                select(func.count()).where(
                    Task.parent_task_id == loop["id"],
                    Task.state == int(TaskState.RUNNING),
                    Task.type == int(TaskType.LOOP_ITERATION),
                )
            ).scalar_one()
            if running >= iterator.parallelism_limit:
                return
        started = range(self._started_iterations(loop, count - 1))
        plan = plan_iterations(
            iterator, count=count, started=started, running=running, per_step=ITERATIONS_PER_STEP
        )
        if plan.more:
            self.step.follow_ups.append(loop["id"])
        if not plan.indexes:
            return
        try:
            items = self._loop_items(loop["id"], iterator)
        except ResolveError as exc:
            self.fail(loop, str(exc))
            return
        artifact_item = iterator.kind == IteratorKind.ARTIFACT
        for index in plan.indexes:
            self._start_iteration(loop, index, items[index], iterator.item_input, artifact_item)

    def _iteration_exists(self, loop: TaskValues, index: int) -> bool:
        """Iteration ``index`` of ``loop`` has its row. Iterations start in index order
        (:func:`plan_iterations`) and are never deleted alone, so the last one's row means
        every iteration started."""
        key = logical_key(
            self.run.id,
            loop["id"],
            loop["scope_path"],
            loop["name"],
            int(TaskType.LOOP_ITERATION),
            index,
        )
        return task_exists(self.session, key)

    def _start_iteration(
        self, loop: TaskValues, index: int, item: Any, item_key: str, artifact_item: bool
    ) -> None:
        extra: list[Param] = []
        if not artifact_item:
            extra.append(Param(item_key, item, IOType.ITERATOR_INPUT, loop["name"], index))
        iteration = self._new_task(
            name=loop["name"],
            parent=loop,
            scope_path=loop["scope_path"],
            ttype=TaskType.LOOP_ITERATION,
            state=TaskState.RUNNING,
            display_name=f"{loop['display_name']} #{index}",
            iteration=index,
            extra_params=extra,
        )
        if artifact_item:
            self._link(
                iteration,
                ArtifactIO(item_key, (item,), IOType.ITERATOR_INPUT, loop["name"], index),
                item_key,
            )
        self._dirty.append(iteration)

    # -- leaves

    def _run_importer(
        self, common: dict[str, Any], component: Component, decision: ImportArtifact
    ) -> None:
        executor = self.ir.executor_of(component)
        importer = executor.importer if executor is not None else None
        assert importer is not None  # an IMPORTER by task_type
        task = self._new_task(
            **common,
            state=TaskState.RUNNING,
            inputs=decision.inputs,
            type_attributes={"download_to_workspace": importer.download_to_workspace},
        )
        uri = decision.uri
        if uri is None:
            self.fail(task, "importer: the artifact URI has no value")
            return
        schema = importer.schema_title
        metadata = dict(importer.metadata)
        metadata.setdefault(SCHEMA_TITLE_KEY, schema)
        key = next(iter(component.output_artifact_keys), "artifact")
        atype = artifact_type_for(schema)
        artifact = self._find_or_create_artifact(
            uri=uri,
            name=uri.rstrip("/").rsplit("/", 1)[-1] or key,
            atype=atype,
            metadata=metadata,
            reuse=not importer.reimport,
        )
        producer = {"task_name": task["name"]}
        if task["iteration_index"] is not None:
            producer["iteration"] = str(task["iteration_index"])
        link_artifact(
            self.session,
            artifact_id=artifact,
            task=task,
            io_type=IOType.OUTPUT,
            producer=producer,
            key=key,
            now=self.now,
        )
        self.set_state(task, TaskEvent.FINISH, TaskState.SUCCEEDED)

    def _find_or_create_artifact(
        self, *, uri: str, name: str, atype: ArtifactType, metadata: dict[str, Any], reuse: bool
    ) -> str:
        if reuse:
            found = self.session.scalars(
                select(Artifact.id)
                .where(
                    Artifact.namespace == self.run.namespace,
                    Artifact.uri_hash == uri_hash(uri),
                    Artifact.type == int(atype),
                )
                .order_by(Artifact.created_at.desc())
                .limit(1)
            ).first()
            if found is not None:
                return found
        row = Artifact(
            id=new_id(),
            namespace=self.run.namespace,
            type=int(atype),
            uri=uri,
            uri_hash=uri_hash(uri),
            name=name[:255],
            description="",
            created_at=self.now,
            last_update=self.now,
            metadata_=metadata,
            number_value=None,
            identity_key=None,
        )
        self.session.add(row)
        self.session.flush()
        return str(row.id)

    def _start_container(
        self, common: dict[str, Any], spec: DagTask, component: Component, decision: LaunchTask
    ) -> None:
        container, inputs, fingerprint = decision.container, decision.inputs, decision.fingerprint
        if fingerprint:
            cached = find_cached_task(self.session, self.run.namespace, fingerprint)
            if cached is not None:
                self._use_cached(common, inputs, fingerprint, cached)
                return
        try:
            env, kube = self._platform(spec, component, self._scope_cache)
        except ResolveError as exc:
            self._new_task(**common, state=TaskState.FAILED, inputs=inputs, message=str(exc))
            return
        task = self._new_task(
            **common, state=self._launch_state(), inputs=inputs, fingerprint=fingerprint
        )
        self._launch(task, component, container, inputs, env, kube)

    def _use_cached(
        self, common: dict[str, Any], inputs: ResolvedInputs, fingerprint: str, cached: Task
    ) -> None:
        task = self._new_task(
            **common, state=TaskState.RUNNING, inputs=inputs, fingerprint=fingerprint
        )
        outputs = [
            Param(p.key, p.value, IOType.OUTPUT, task["name"], task["iteration_index"]).to_json()
            for p in params(cached.output_parameters)
        ]
        write_task(self.session, task, {"output_parameters": outputs})
        for io in links_of(self.session, [cached.id], outputs=True).get(cached.id, []):
            if io.key == "executor-logs":
                continue
            self._link(
                task,
                ArtifactIO(
                    io.key, io.artifacts, IOType.OUTPUT, task["name"], task["iteration_index"]
                ),
                io.key,
            )
        changes = {"status_metadata": {"message": f"cache hit: outputs of task {cached.id}"}}
        task.update(changes)
        self.set_state(task, TaskEvent.CACHE_HIT, TaskState.CACHED, changes=changes)

    def _pod(self, name: str, task_id: str = "") -> Pod:
        """The pod this task would be in upstream (its downward-API name for local env)."""
        base = resource_name(self.run.pipeline_name, self.run.id)
        return Pod(name=f"{base}-{name}"[:63], namespace=self.run.namespace, uid=task_id)

    def _platform(
        self, spec: DagTask, component: Component, scope: Scope | None
    ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """The task's kfp-kubernetes config: as local environment variables (local stores of
        secrets and config maps), or resolved for an executor that builds real pods."""
        config = self.ir.platform_config(component)

        def resolve(source: ParameterInput) -> Any:
            assert scope is not None
            return resolve_source(spec, component, scope, source)

        if not self.config.local_platform:
            kube = (
                {"workspace": dict(self.ir.platform_workspace)}
                if self.ir.platform_workspace
                else {}
            )
            if config is not None and scope is not None:
                kube.update(resolved_config(config, resolve))
            return [], kube
        if config is None or scope is None:
            return [], {}
        env = local_env(
            config,
            pod=self._pod(spec.name),
            secrets=LocalStore(self.config.secrets_dir, "secret"),
            config_maps=LocalStore(self.config.config_maps_dir, "config map"),
            resolve=resolve,
        )
        return env, {}

    def _launch_state(self) -> TaskState:
        """The state of this step's next launch: RUNNING while the executor has a free slot
        for it, PENDING after (it waits in the executor's queue)."""
        if self.config.free_slots is None:
            return TaskState.RUNNING
        if self._free_slots is None:
            self._free_slots = self.config.free_slots()
        return (
            TaskState.RUNNING if len(self.step.launches) < self._free_slots else TaskState.PENDING
        )

    def _launch(
        self,
        task: TaskValues,
        component: Component,
        container: Container,
        inputs: ResolvedInputs,
        env: list[tuple[str, str]] | None = None,
        kubernetes: dict[str, Any] | None = None,
    ) -> None:
        # A pod's name only where a pod will exist; a local process is named by its launcher
        # when it reports (placement: "local process PID on HOST").
        name = LOCAL_PROCESS if self.config.local_platform else self._pod(task["name"]).name
        pods = [{"name": name, "type": TaskPodType.EXECUTOR.name}]
        write_task(self.session, task, {"pods": pods})
        if task_phase(task) == Phase.PENDING:
            self.step.queued.add(task["id"])
        if env:
            container = replace(container, env=(*container.env, *env))
        self.step.launches.append(
            build_launch_spec(
                server_url=self.config.server_url,
                token=self.config.token_for(self.run.id),
                job=self.job,
                namespace=self.run.namespace,
                pipeline_name=self.run.pipeline_name,
                task_id=task["id"],
                task_name=task["name"],
                display_name=task["display_name"],
                parent_task_id=task["parent_task_id"],
                iteration_index=task["iteration_index"],
                container=container,
                outputs=component.output_definitions,
                inputs=inputs,
                workspace_path=self._workspace(),
                kubernetes=kubernetes or {},
                service_account=self.run.service_account or "",
            )
        )

    def _workspace(self) -> str:
        if not self.config.workspace_root:
            return ""
        return f"{self.config.workspace_root.rstrip('/')}/{self.run.id}"

    def relaunch(self, task: TaskValues) -> None:
        """Launch a RUNTIME task again from its recorded inputs (retry, restart, reset)."""
        component = self.ir.component_at(task["scope_path"])
        spec = self.ir.task_at(task["scope_path"])
        if component is None or spec is None:
            self.fail(task, f"no component for scope {task['scope_path']!r}")
            return
        phase, state = task_phase(task), self._launch_state()
        if phase == Phase.AWAITING_RETRY and state == TaskState.RUNNING:
            self.set_state(task, TaskEvent.RELAUNCH, TaskState.RUNNING)
        elif phase != Phase.PENDING and state == TaskState.PENDING:
            self.set_state(task, TaskEvent.QUEUE, TaskState.PENDING)
        elif phase == Phase.PENDING and state == TaskState.RUNNING:
            self.set_state(task, TaskEvent.BEGIN, TaskState.RUNNING)
        parent = load_task(self.session, task["parent_task_id"]) if task["parent_task_id"] else None
        scope = self._scope(parent) if parent else None
        try:
            env, kube = self._platform(spec, component, scope)
        except ResolveError as exc:
            self.fail(task, str(exc))
            return
        container = executor_container(self.ir.executor_of(component))
        self._launch(task, component, container, self._recorded_inputs(task), env, kube)

    # -- events

    def task_exited(self, task_id: str, reason: str) -> None:
        task = load_task(self.session, task_id)
        if task is None or task["run_id"] != self.run.id:
            return
        phase = task_phase(task)
        if phase == Phase.AWAITING_RETRY:
            self._schedule_retry(task)
        elif phase in (Phase.RUNNING, Phase.PENDING) and not task["pods"]:
            return  # an exit from before a RetryRun reset (pods cleared): the resume relaunches
        elif phase in (Phase.RUNNING, Phase.PENDING):
            self.fail(task, reason)
        elif task["parent_task_id"]:
            self._dirty_id(task["parent_task_id"])
        self.drain()

    def task_started(self, task_id: str) -> None:
        """The executor handed a queued task's launcher a slot: PENDING -> RUNNING."""
        task = load_task(self.session, task_id)
        if task is not None and task["run_id"] == self.run.id and task_phase(task) == Phase.PENDING:
            self.set_state(task, TaskEvent.BEGIN, TaskState.RUNNING)

    def resume(
        self,
        adopted: set[str] | frozenset[str] = frozenset(),
        never_started: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Pick a run up from its rows: launch what never ran (or was queued in the executor,
        ``never_started``), fail what lost its process (unless the executor ``adopted`` it:
        still running, watched again)."""
        rows = load_tasks(
            self.session, TASKS.c.run_id == self.run.id, TASKS.c.state.in_(_LAUNCHED_STATES)
        )
        if not rows:
            self.start()
            return
        for task in rows:
            if task["type"] in _GROUPS:
                self._dirty.append(task)
            elif task["type"] == TaskType.RUNTIME:
                if task_phase(task) == Phase.AWAITING_RETRY:
                    self._schedule_retry(task)
                elif not task["pods"] or task["id"] in never_started:
                    self.relaunch(task)
                elif task["id"] in adopted:
                    # Started before the restart, its BEGIN not recorded yet.
                    if task_phase(task) == Phase.PENDING:
                        self.set_state(task, TaskEvent.BEGIN, TaskState.RUNNING)
                else:
                    self.fail(
                        task,
                        "the server restarted while this task ran; its process is gone",
                        TaskEvent.RECOVER_LOST,
                    )
        self.drain()


def _merged_inputs(recorded: Iterable[Param], links: Iterable[ArtifactIO]) -> ResolvedInputs:
    """Recorded parameters and input links as resolved inputs (links of one key merged)."""
    inputs = ResolvedInputs()
    for p in recorded:
        inputs.params[p.key] = p
    for io in links:
        current = inputs.artifacts.get(io.key)
        if current is None:
            inputs.artifacts[io.key] = io
        else:
            inputs.artifacts[io.key] = ArtifactIO(
                io.key, current.artifacts + io.artifacts, current.io_type, current.producer
            )
    return inputs


# ---------------------------------------------------------------------------- entry points


def start_run(session: Session, run_id: str, config: OrchestratorConfig) -> Step:
    stepper = _RunStepper(session, run_id, config)
    if RunState(stepper.run.state).is_terminal:
        return Step(finished=True)
    stepper.start()
    return stepper.step


def task_exited(
    session: Session, run_id: str, task_id: str, reason: str, config: OrchestratorConfig
) -> Step:
    stepper = _RunStepper(session, run_id, config)
    if RunState(stepper.run.state).is_terminal:
        return Step(finished=True)
    stepper.task_exited(task_id, reason)
    return stepper.step


def advance_group(session: Session, run_id: str, task_id: str, config: OrchestratorConfig) -> Step:
    """Continue a group that asked for another step (a big loop starting in slices)."""
    stepper = _RunStepper(session, run_id, config)
    group = load_task(session, task_id)
    if RunState(stepper.run.state).is_terminal or group is None:
        return stepper.step
    stepper._dirty.append(group)
    stepper.drain()
    return stepper.step


def relaunch_task(session: Session, run_id: str, task_id: str, config: OrchestratorConfig) -> Step:
    stepper = _RunStepper(session, run_id, config)
    task = load_task(session, task_id)
    if (
        RunState(stepper.run.state).is_terminal
        or task is None
        or task["state"] != TaskState.RUNNING
    ):
        return stepper.step
    stepper.relaunch(task)
    return stepper.step


def task_started(session: Session, run_id: str, task_id: str, config: OrchestratorConfig) -> Step:
    stepper = _RunStepper(session, run_id, config)
    if RunState(stepper.run.state).is_terminal:
        return Step(finished=True)
    stepper.task_started(task_id)
    return stepper.step


def resume_run(
    session: Session,
    run_id: str,
    config: OrchestratorConfig,
    adopted: set[str] | frozenset[str] = frozenset(),
    never_started: set[str] | frozenset[str] = frozenset(),
) -> Step:
    stepper = _RunStepper(session, run_id, config)
    if RunState(stepper.run.state).is_terminal:
        return Step(finished=True)
    stepper.resume(adopted, never_started)
    return stepper.step


def running_container_tasks(session: Session) -> dict[str, str]:
    """RUNNING (or PENDING: queued) container tasks of runs not final yet (task id -> run
    id): what an executor whose tasks outlive the server may adopt after a restart."""
    states = [int(RunState.PENDING), int(RunState.RUNNING), int(RunState.CANCELING)]
    rows = session.execute(
        select(Task.id, Task.run_id)
        .join(Run, Run.id == Task.run_id)
        .where(
            Run.state.in_(states),
            Task.state.in_(_LAUNCHED_STATES),
            Task.type == int(TaskType.RUNTIME),
        )
    )
    return {str(task_id): str(run_id) for task_id, run_id in rows}


def fail_run(session: Session, run_id: str, message: str) -> None:
    """Last resort when orchestration itself broke: the run fails with the reason."""
    machine = machine_for(session, run_id)
    if RunState(machine.run.state).is_terminal:
        return
    now = now_us()
    machine.cancel_unfinished(message, now)
    machine.fail_run(message, now)


def active_run_ids(session: Session) -> list[str]:
    """Runs a (re)started server must drive: not final yet."""
    states = [int(RunState.PENDING), int(RunState.RUNNING), int(RunState.CANCELING)]
    return list(
        session.scalars(select(Run.id).where(Run.state.in_(states)).order_by(Run.created_at))
    )
