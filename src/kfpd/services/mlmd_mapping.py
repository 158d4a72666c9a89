"""Pure mapping of one KFP run's ML Metadata records to kfpd rows (no database access).

What KFP 2.x's driver and launcher wrote (backend/src/v2/metadata/client.go) becomes:

* the ``system.PipelineRun`` context -> a run (id = the context's name, the KFP run id);
* ``system.DAGExecution`` -> ROOT (no parent_dag_id), LOOP (``for-loop-*`` with
  iteration_count), LOOP_ITERATION (``for-loop-*`` with iteration_index),
  CONDITION_BRANCH (``condition-N``), DAG (``condition-branches-*`` and nested pipelines,
  as kfpd's own planner types them), EXIT_HANDLER (``exit-handler-*``);
  ``system.ContainerExecution`` -> RUNTIME; ``system.Importer(Workspace)Execution`` -> IMPORTER;
* states COMPLETE -> SUCCEEDED, CACHED -> CACHED, FAILED -> FAILED, CANCELED -> SKIPPED (KFP's
  "not triggered"), RUNNING/NEW/UNKNOWN of a finished run -> FAILED with a message; a group
  task's state is rolled up from its children with kfpd's rule, so imported runs are final and
  consistent;
* artifacts -> artifacts (``system.Metrics`` -> one Metric artifact per value, as kfpd's launcher
  writes them), INPUT/OUTPUT events -> artifact_tasks links keyed by the event's path key. A
  cache hit's republished artifact and a reused importer artifact are the same MLMD artifact,
  so they map to the same kfpd artifact. ``executor-logs`` outputs stay artifacts with an
  OUTPUT link keyed ``executor-logs``, which is how kfpd records its own tasks' logs.

Ids are UUIDv5 of the store key and the MLMD entity, so a re-import maps to the same rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from kfpd.db.kfp_source import KfpRun
from kfpd.db.mlmd_source import (
    EVENT_INPUT,
    EVENT_OUTPUT,
    EVENT_TYPES,
    Artifact,
    Event,
    Execution,
    RunRecords,
)
from kfpd.domain import grpc_codes
from kfpd.domain.enums import ArtifactType, IOType, RunState, StorageState, TaskState, TaskType
from kfpd.domain.timeutil import to_rfc3339

ID_NAMESPACE = uuid.UUID("5b0c7f4e-2f9e-5c1a-9a52-6b66d2a1c0de")
DAG_EXECUTION = "system.DAGExecution"
CONTAINER_EXECUTION = "system.ContainerExecution"
IMPORTER_EXECUTIONS = {"system.ImporterExecution", "system.ImporterWorkspaceExecution"}
ARTIFACT_TYPES = {
    "system.Artifact": ArtifactType.Artifact,
    "system.Model": ArtifactType.Model,
    "system.Dataset": ArtifactType.Dataset,
    "system.HTML": ArtifactType.HTML,
    "system.Markdown": ArtifactType.Markdown,
    "system.Metrics": ArtifactType.Metric,
    "system.ClassificationMetrics": ArtifactType.ClassificationMetric,
    "system.SlicedClassificationMetrics": ArtifactType.SlicedClassificationMetric,
}
# Artifact properties that describe storage or naming, not the artifact's metadata.
NOT_METADATA = {"display_name", "store_session_info"}
LEAF_STATES = {
    "COMPLETE": TaskState.SUCCEEDED,
    "CACHED": TaskState.CACHED,
    "FAILED": TaskState.FAILED,
    "CANCELED": TaskState.SKIPPED,
}
FINAL_RUN_STATES = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
# Upstream keeps fingerprints only of executions that can serve the cache.
FINGERPRINT_STATES = {TaskState.SUCCEEDED, TaskState.CACHED}


def entity_id(store_key: str, kind: str, *parts: object) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "/".join([store_key, kind, *map(str, parts)])))


def uri_hash(uri: str | None) -> str:
    """The artifacts.uri_hash column (same digest the artifact service writes)."""
    return hashlib.sha256(uri.encode()).hexdigest() if uri else ""


@dataclass
class MappedRun:
    run: dict[str, Any]
    tasks: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    links: list[dict[str, Any]]
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class _Node:
    execution: Execution
    task: dict[str, Any]
    children: list[_Node] = field(default_factory=list)


def task_type(execution: Execution) -> TaskType:
    if execution.type_name in IMPORTER_EXECUTIONS:
        return TaskType.IMPORTER
    if execution.type_name != DAG_EXECUTION:
        return TaskType.RUNTIME
    name = execution.task_name
    if not execution.parent_dag_id:
        return TaskType.ROOT
    if name.startswith("for-loop"):
        has_index = execution.props.get("iteration_index") is not None
        return TaskType.LOOP_ITERATION if has_index else TaskType.LOOP
    if name.startswith("condition-branches"):
        return TaskType.DAG
    if name.startswith("condition"):
        return TaskType.CONDITION_BRANCH
    if name.startswith("exit-handler"):
        return TaskType.EXIT_HANDLER
    return TaskType.DAG


def leaf_state(execution: Execution) -> tuple[TaskState, str]:
    """A runtime/importer task's state, and why when it is not what MLMD recorded."""
    state = LEAF_STATES.get(execution.state)
    if state == TaskState.FAILED:
        return state, "FAILED in ML Metadata"
    if state is not None:
        return state, ""
    return TaskState.FAILED, (
        f"the run ended while this task was {execution.state} in ML Metadata (imported as FAILED)"
    )


def rolled_up(children: list[TaskState]) -> TaskState:
    """kfpd's group roll-up over final children."""
    if any(s in (TaskState.FAILED, TaskState.CANCELED) for s in children):
        return TaskState.FAILED
    if children and all(s == TaskState.CACHED for s in children):
        return TaskState.CACHED
    if all(s == TaskState.SKIPPED for s in children):
        return TaskState.SKIPPED
    return TaskState.SUCCEEDED


def group_state(node: _Node) -> tuple[TaskState, str]:
    execution = node.execution
    if execution.state == "CANCELED":
        return TaskState.SKIPPED, ""
    states = [TaskState(c.task["state"]) for c in node.children]
    if states:
        return rolled_up(states), ""
    if execution.state == "COMPLETE" or execution.props.get("iteration_count") == 0:
        return (TaskState.SUCCEEDED if execution.state == "COMPLETE" else TaskState.SKIPPED), ""
    if execution.state == "FAILED":
        return TaskState.FAILED, "failed in ML Metadata"
    return TaskState.FAILED, (
        f"the run ended while this group was {execution.state} with no task inside it "
        "(imported as FAILED)"
    )


def _params(values: Any, io_type: IOType, producer: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not isinstance(values, dict):
        return []
    out = []
    for key, value in values.items():
        entry: dict[str, Any] = {"value": value, "type": io_type.name, "parameter_key": key}
        if producer is not None:
            entry["producer"] = producer
        out.append(entry)
    return out


def _producer(task: dict[str, Any]) -> dict[str, Any]:
    producer: dict[str, Any] = {"task_name": task["name"]}
    if task["iteration_index"] is not None:
        producer["iteration"] = str(task["iteration_index"])
    return producer


class RunMapper:
    """Maps one run; build with the run's records, then call :meth:`map`."""

    def __init__(
        self,
        records: RunRecords,
        store_key: str,
        kfp: KfpRun | None,
        known_experiments: set[str] | None = None,
    ) -> None:
        self.records, self.store_key, self.kfp = records, store_key, kfp
        self.known_experiments = known_experiments or set()
        self.run_id = records.context.name
        self.namespace = str(records.context.props.get("namespace") or "")
        if kfp is not None and kfp.namespace:
            self.namespace = kfp.namespace
        self.skipped: Counter[str] = Counter()
        self.nodes: dict[int, _Node] = {}

    # -- tasks -------------------------------------------------------------------------
    def _root(self) -> Execution | None:
        roots = [
            e
            for e in self.records.executions
            if e.type_name == DAG_EXECUTION and not e.parent_dag_id
        ]
        named = [e for e in roots if e.name == f"run/{self.run_id}"]
        found = named or roots
        return found[0] if found else None

    def _new_task(self, execution: Execution, parent: _Node | None) -> dict[str, Any]:
        ttype = task_type(execution) if parent is not None else TaskType.ROOT
        props = execution.props
        name = "ROOT" if parent is None else execution.task_name
        scope = "root" if parent is None else f"{parent.task['scope_path']}.{name}"
        iteration = None if parent is None else parent.task["iteration_index"]
        display = str(props.get("display_name") or name)
        attributes: dict[str, Any] = {}
        if ttype == TaskType.LOOP:
            attributes["iteration_count"] = int(props.get("iteration_count") or 0)
        if ttype == TaskType.LOOP_ITERATION and parent is not None:
            iteration = int(props.get("iteration_index") or 0)
            scope, name = parent.task["scope_path"], parent.task["name"]
            display = f"{parent.task['display_name']} #{iteration}"
            attributes["iteration_index"] = iteration
        created = execution.created_ms * 1000
        return {
            "id": entity_id(self.store_key, "execution", execution.id),
            "run_id": self.run_id,
            "namespace": self.namespace,
            "parent_task_id": None if parent is None else parent.task["id"],
            "name": name,
            "display_name": display,
            "scope_path": scope,
            "type": int(ttype),
            "state": int(TaskState.RUNNING),
            "state_history": [],
            "status_metadata": None,
            "type_attributes": attributes,
            "iteration_index": iteration,
            "pods": _pods(props),
            "cache_fingerprint": str(props.get("cache_fingerprint") or ""),
            "input_parameters": [],
            "output_parameters": [],
            "created_at": created,
            "started_at": created,
            "finished_at": max(execution.updated_ms * 1000, created),
            "logical_key": None,
        }

    def _build_tree(self, root: Execution) -> _Node:
        by_parent: dict[int, list[Execution]] = defaultdict(list)
        for execution in self.records.executions:
            if execution is not root:
                by_parent[execution.parent_dag_id].append(execution)
        top = _Node(root, self._new_task(root, None))
        self.nodes[root.id] = top
        pending = [top]
        while pending:
            node = pending.pop()
            for child in sorted(by_parent.pop(node.execution.id, []), key=lambda e: e.id):
                child_node = _Node(child, self._new_task(child, node))
                node.children.append(child_node)
                self.nodes[child.id] = child_node
                pending.append(child_node)
        for orphans in by_parent.values():
            self.skipped["execution: its parent DAG is not in the run"] += len(orphans)
        return top

    def _settle(self, node: _Node) -> None:
        """Final state, parameters and history of every task, children first."""
        order: list[_Node] = []
        pending = [node]
        while pending:
            current = pending.pop()
            order.append(current)
            pending.extend(current.children)
        for current in reversed(order):
            task = current.task
            if TaskType(task["type"]) in (TaskType.RUNTIME, TaskType.IMPORTER):
                state, message = leaf_state(current.execution)
            else:
                state, message = group_state(current)
                ends = [c.task["finished_at"] for c in current.children]
                task["finished_at"] = max([task["finished_at"], *ends])
            self._finish(current, state, message)

    def _finish(self, node: _Node, state: TaskState, message: str) -> None:
        task, execution = node.task, node.execution
        task["state"] = int(state)
        if state not in FINGERPRINT_STATES:
            task["cache_fingerprint"] = ""
        root = task["parent_task_id"] is None
        in_type = IOType.RUNTIME_VALUE_INPUT if root else IOType.COMPONENT_INPUT
        task["input_parameters"] = _params(
            execution.props.get("inputs"), in_type, {"task_name": "ROOT"} if root else None
        )
        task["output_parameters"] = _params(
            execution.props.get("outputs"), IOType.OUTPUT, _producer(task)
        )
        custom: dict[str, Any] = {
            "mlmd_execution_id": execution.id,
            "mlmd_state": execution.state,
        }
        for key in ("image", "cached_execution_id"):
            if execution.props.get(key):
                custom[key] = execution.props[key]
        status: dict[str, Any] = {"custom_properties": custom}
        if message:
            status["message"] = message
        elif state == TaskState.CACHED and execution.props.get("cached_execution_id"):
            status["message"] = (
                f"cache hit: outputs of MLMD execution {custom['cached_execution_id']}"
            )
        task["status_metadata"] = status
        task["state_history"] = _history(task, state, message)

    # -- artifacts and links ---------------------------------------------------------------
    def _artifact_rows(self, artifact: Artifact, key: str) -> list[tuple[dict[str, Any], str]]:
        """kfpd artifacts for one MLMD artifact, each with the suffix of its ids."""
        atype = ARTIFACT_TYPES.get(artifact.type_name, ArtifactType.Artifact)
        meta = {k: v for k, v in artifact.props.items() if k not in NOT_METADATA}
        name = str(artifact.props.get("display_name") or key)
        base = {
            "namespace": self.namespace,
            "uri": artifact.uri or None,
            "uri_hash": uri_hash(artifact.uri),
            "description": "",
            "created_at": artifact.created_ms * 1000,
            "last_update": max(artifact.updated_ms, artifact.created_ms) * 1000,
            "number_value": None,
            "identity_key": None,
            "store_session_info": _session_info(artifact.props.get("store_session_info")),
        }
        if atype == ArtifactType.Metric:
            return [
                (
                    {
                        **base,
                        "id": entity_id(self.store_key, "artifact", artifact.id, metric),
                        "type": int(atype),
                        "name": metric,
                        "metadata": {metric: value},
                        "number_value": float(value),
                    },
                    metric,
                )
                for metric, value in sorted(meta.items())
                if isinstance(value, int | float) and not isinstance(value, bool)
            ]
        if atype == ArtifactType.Artifact and artifact.type_name not in ARTIFACT_TYPES:
            meta["_kfp_schema_title"] = artifact.type_name
        row = {
            **base,
            "id": entity_id(self.store_key, "artifact", artifact.id),
            "type": int(atype),
            "name": name,
            "metadata": meta or None,
        }
        return [(row, "")]

    def _map_artifacts(self) -> tuple[list[dict[str, Any]], dict[int, list[tuple[str, str]]]]:
        keys: dict[int, str] = {}
        for event in self.records.events:
            if event.type == EVENT_OUTPUT or event.artifact_id not in keys:
                keys[event.artifact_id] = event.key
        rows: list[dict[str, Any]] = []
        ids: dict[int, list[tuple[str, str]]] = {}
        for artifact_id, artifact in sorted(self.records.artifacts.items()):
            mapped = self._artifact_rows(artifact, keys.get(artifact_id, ""))
            if not mapped:
                self.skipped["artifact: Metrics without a numeric value"] += 1
            rows.extend(r for r, _ in mapped)
            ids[artifact_id] = [(r["id"], suffix) for r, suffix in mapped]
        return rows, ids

    def _producers(self) -> dict[int, list[dict[str, Any]]]:
        """Tasks of this run that output each artifact (runtime and importer tasks)."""
        out: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for event in self.records.events:
            node = self.nodes.get(event.execution_id)
            if event.type != EVENT_OUTPUT or node is None:
                continue
            if node.task["type"] in (int(TaskType.RUNTIME), int(TaskType.IMPORTER)):
                out[event.artifact_id].append(node.task)
        return out

    def _link_kind(
        self, event: Event, task: dict[str, Any], producers: dict[int, list[dict[str, Any]]]
    ) -> tuple[IOType, dict[str, Any] | None]:
        if event.type == EVENT_OUTPUT:
            return IOType.OUTPUT, _producer(task)
        upstream = [p for p in producers.get(event.artifact_id, []) if p["id"] != task["id"]]
        if upstream:
            return IOType.TASK_OUTPUT_INPUT, _producer(upstream[0])
        return IOType.COMPONENT_INPUT, None

    def _map_links(self, artifact_ids: dict[int, list[tuple[str, str]]]) -> list[dict[str, Any]]:
        producers = self._producers()
        links: list[dict[str, Any]] = []
        for event in self.records.events:
            node = self.nodes.get(event.execution_id)
            if event.type not in (EVENT_INPUT, EVENT_OUTPUT):
                self.skipped[f"event: type {EVENT_TYPES.get(event.type, event.type)}"] += 1
                continue
            if node is None:
                self.skipped["event: its execution was not imported"] += 1
                continue
            io_type, producer = self._link_kind(event, node.task, producers)
            iteration = int(producer["iteration"]) if producer and "iteration" in producer else -1
            for kfpd_id, suffix in artifact_ids.get(event.artifact_id, []):
                links.append(
                    {
                        "id": entity_id(self.store_key, "event", event.id, suffix),
                        "artifact_id": kfpd_id,
                        "task_id": node.task["id"],
                        "run_id": self.run_id,
                        "type": int(io_type),
                        "iteration": iteration,
                        "producer": producer,
                        "key": event.key,
                        "created_at": node.task["finished_at"]
                        if event.type == EVENT_OUTPUT
                        else node.task["created_at"],
                    }
                )
        return links

    # -- run ----------------------------------------------------------------------------
    def map(self) -> MappedRun | None:
        """The run's rows, or None (reason in ``skipped``) when it cannot be imported."""
        root = self._root()
        if root is None:
            self.skipped["run: no root DAG execution"] += 1
            return None
        top = self._build_tree(root)
        self._settle(top)
        artifacts, artifact_ids = self._map_artifacts()
        links = self._map_links(artifact_ids)
        tasks = _parents_first(top)
        run = self._run_row(top, tasks)
        if not run["pipeline_spec"]:
            run["pipeline_spec"] = synthetic_spec(run["pipeline_name"], tasks, links)
        return MappedRun(run, tasks, artifacts, links, self.skipped)

    def _run_row(self, top: _Node, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        context, kfp = self.records.context, self.kfp
        root_state = TaskState(top.task["state"])
        state = _run_state(root_state, kfp)
        created = (kfp.created_s * 1_000_000 if kfp and kfp.created_s else 0) or (
            context.created_ms * 1000
        )
        finished = max(t["finished_at"] for t in tasks)
        if kfp is not None and kfp.finished_s:
            finished = kfp.finished_s * 1_000_000
        display = kfp.display_name if kfp else ""
        display = display or str(context.props.get("resource_name") or self.run_id)
        top.task["display_name"] = display
        runtime: dict[str, Any] = {"pipeline_root": str(context.props.get("pipeline_root") or "")}
        parameters = (kfp.runtime_parameters if kfp else None) or (
            root_params(top.task["input_parameters"])
        )
        if parameters:
            runtime["parameters"] = parameters
        error = None
        if state == RunState.FAILED:
            error = {"code": grpc_codes.UNKNOWN, "message": _failure(tasks)}
        experiment = kfp.experiment_id if kfp else None
        history: list[dict[str, Any]] = [
            {"update_time": to_rfc3339(created), "state": "PENDING"},
            {"update_time": to_rfc3339(created), "state": "RUNNING"},
            {"update_time": to_rfc3339(finished), "state": state.name},
        ]
        if error:
            history[-1]["error"] = error
        return {
            "id": self.run_id,
            "namespace": self.namespace,
            "experiment_id": experiment if experiment in self.known_experiments else None,
            "display_name": display,
            "description": kfp.description if kfp else "",
            "pipeline_id": kfp.pipeline_id if kfp else None,
            "pipeline_version_id": kfp.pipeline_version_id if kfp else None,
            "pipeline_name": (kfp.pipeline_name if kfp else "") or context.pipeline_name,
            "pipeline_spec": (kfp.pipeline_spec if kfp else None) or {},
            "platform_spec": None,
            "spec_inline": 1,
            "runtime_config": runtime,
            "service_account": kfp.service_account if kfp else "",
            "storage_state": int(_storage_state(kfp)),
            "state": int(state),
            "state_history": history,
            "error": error,
            "created_at": created,
            "scheduled_at": kfp.scheduled_s * 1_000_000 if kfp else 0,
            "finished_at": finished,
            "recurring_run_id": kfp.recurring_run_id if kfp else None,
        }


GROUP_TYPES = {
    int(TaskType.ROOT),
    int(TaskType.DAG),
    int(TaskType.LOOP),
    int(TaskType.LOOP_ITERATION),
    int(TaskType.CONDITION_BRANCH),
    int(TaskType.EXIT_HANDLER),
}


def _component_name(scope_path: str) -> str:
    return "comp-" + scope_path.replace(".", "-")


def _spec_task(task: dict[str, Any], deps: set[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "taskInfo": {"name": task["display_name"] or task["name"]},
        "componentRef": {"name": _component_name(task["scope_path"])},
    }
    if deps:
        entry["dependentTasks"] = sorted(deps)
    if task["type"] == int(TaskType.LOOP):
        count = task["type_attributes"].get("iteration_count", 0)
        entry["parameterIterator"] = {"itemInput": "item", "items": {"raw": str(count)}}
    if task["type"] == int(TaskType.CONDITION_BRANCH):
        entry["triggerPolicy"] = {"condition": "(imported from ML Metadata)"}
    return entry


def _leaf_executor(task: dict[str, Any]) -> dict[str, Any]:
    if task["type"] == int(TaskType.IMPORTER):
        return {"importer": {"artifactUri": {"constant": ""}}}
    image = ((task["status_metadata"] or {}).get("custom_properties") or {}).get("image", "")
    return {"container": {"image": str(image)}}


def _dependencies(tasks: list[dict[str, Any]], links: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Sibling dependencies by scope path, from TASK_OUTPUT_INPUT links (MLMD keeps no DAG)."""
    by_id = {t["id"]: t for t in tasks}
    scopes = {t["scope_path"] for t in tasks}
    deps: dict[str, set[str]] = defaultdict(set)
    for link in links:
        consumer = by_id.get(link["task_id"])
        producer = (link["producer"] or {}).get("task_name")
        if consumer is None or link["type"] != int(IOType.TASK_OUTPUT_INPUT) or not producer:
            continue
        # The consumer, or the group around it that is the producer's sibling, waits for it.
        path = consumer["scope_path"]
        while "." in path:
            parent = path.rpartition(".")[0]
            if f"{parent}.{producer}" in scopes and f"{parent}.{producer}" != path:
                deps[path].add(producer)
                break
            path = parent
    return deps


def synthetic_spec(
    pipeline_name: str, tasks: list[dict[str, Any]], links: list[dict[str, Any]]
) -> dict[str, Any]:
    """An IR of the run's shape, for runs whose pipeline spec KFP's database did not give.

    MLMD keeps tasks, not the pipeline: this spec names every DAG level's tasks (grouped by
    scope path over all iterations) so the UI can draw the run; it holds no commands, and is
    marked by ``sdkVersion`` so nobody mistakes it for the original.
    """
    deps = _dependencies(tasks, links)
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    children: dict[str, dict[str, Any]] = defaultdict(dict)
    for task in tasks:
        if task["type"] in (int(TaskType.ROOT), int(TaskType.LOOP_ITERATION)):
            continue
        parent_scope = task["scope_path"].rpartition(".")[0]
        children[parent_scope][task["name"]] = _spec_task(task, deps.get(task["scope_path"], set()))
        name = _component_name(task["scope_path"])
        if task["type"] in GROUP_TYPES:
            components.setdefault(name, {"dag": {"tasks": {}}})
        else:
            components[name] = {"executorLabel": "exec-" + name[len("comp-") :]}
            executors["exec-" + name[len("comp-") :]] = _leaf_executor(task)
    for scope, entries in children.items():
        if scope != "root":
            components[_component_name(scope)]["dag"]["tasks"] = entries
    return {
        "pipelineInfo": {"name": pipeline_name},
        "root": {"dag": {"tasks": children.get("root", {})}},
        "components": components,
        "deploymentSpec": {"executors": executors},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfpd-mlmd-import",
    }


def _session_info(raw: Any) -> dict[str, Any] | None:
    """The launcher's JSON string (provider and settings; KFP never put secrets in it)."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def root_params(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["parameter_key"]: p["value"] for p in params}


def _pods(props: dict[str, Any]) -> list[dict[str, Any]]:
    if not props.get("pod_name"):
        return []
    return [{"name": props["pod_name"], "uid": str(props.get("pod_uid") or ""), "type": "EXECUTOR"}]


def _history(task: dict[str, Any], state: TaskState, message: str) -> list[dict[str, Any]]:
    final: dict[str, Any] = {"update_time": to_rfc3339(task["finished_at"]), "state": state.name}
    if state == TaskState.FAILED:
        final["error"] = {"code": grpc_codes.UNKNOWN, "message": message or "failed"}
    if state in (TaskState.SKIPPED, TaskState.CACHED):
        return [final]
    return [{"update_time": to_rfc3339(task["created_at"]), "state": "RUNNING"}, final]


def _parents_first(top: _Node) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    level = [top]
    while level:
        out.extend(n.task for n in level)
        level = [c for n in level for c in n.children]
    return out


def _failure(tasks: list[dict[str, Any]]) -> str:
    for task in tasks:
        leaf = task["type"] in (int(TaskType.RUNTIME), int(TaskType.IMPORTER))
        if leaf and task["state"] == int(TaskState.FAILED):
            detail = (task["status_metadata"] or {}).get("message") or "failed"
            return f"task {task['name']!r} failed: {detail}"
    return "the run failed"


def _run_state(root: TaskState, kfp: KfpRun | None) -> RunState:
    if kfp is not None and kfp.state in FINAL_RUN_STATES:
        return RunState[kfp.state]
    if root == TaskState.FAILED:
        return RunState.FAILED
    if root == TaskState.SKIPPED:
        return RunState.SKIPPED
    return RunState.SUCCEEDED


def _storage_state(kfp: KfpRun | None) -> StorageState:
    if kfp is not None and kfp.storage_state in ("ARCHIVED", "STORAGESTATE_ARCHIVED"):
        return StorageState.ARCHIVED
    return StorageState.AVAILABLE
