"""The planner: pure decisions over the typed IR and what the rows of a group say.

``services/orchestration.py`` loads rows, asks these functions, and applies what they return
through the state machine. Nothing here reads or writes the database: a group's siblings
reach input resolution through the :class:`~kfpd.orchestrator.resolve.Scope` callback.

Decisions for one DAG entry (:func:`plan_child`):

* :class:`FailTask` — its inputs or condition cannot be resolved (a FAILED row);
* :class:`SkipTask` — its condition is false (a SKIPPED row);
* :class:`StartLoop` — a ParallelFor with its item count (zero items: SKIPPED);
* :class:`StartGroup` — a DAG, condition branch or exit handler to advance;
* :class:`ImportArtifact` — an importer, done in the server;
* :class:`LaunchTask` — a container, with its cache fingerprint when caching applies (the
  caller looks the fingerprint up and applies a cache hit instead of launching).

For a started loop, :func:`plan_iterations` says which iterations start now.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from kfpd.domain.enums import GROUP_TASK_TYPES, TaskType
from kfpd.ir import Component, Container, DagTask, Executor, LoopIterator
from kfpd.orchestrator.cel import CelError, evaluate_condition
from kfpd.orchestrator.fingerprint import cache_fingerprint
from kfpd.orchestrator.plan import task_type
from kfpd.orchestrator.resolve import (
    ResolvedInputs,
    ResolveError,
    Scope,
    iteration_items,
    resolve_inputs,
)


@dataclass(frozen=True)
class FailTask:
    ttype: TaskType
    message: str
    inputs: ResolvedInputs | None = None


@dataclass(frozen=True)
class SkipTask:
    ttype: TaskType
    inputs: ResolvedInputs


@dataclass(frozen=True)
class StartLoop:
    inputs: ResolvedInputs
    item_count: int
    ttype: TaskType = TaskType.LOOP


@dataclass(frozen=True)
class StartGroup:
    ttype: TaskType
    inputs: ResolvedInputs


@dataclass(frozen=True)
class ImportArtifact:
    inputs: ResolvedInputs
    uri: str | None  # None or empty: the importer fails
    ttype: TaskType = TaskType.IMPORTER


@dataclass(frozen=True)
class LaunchTask:
    inputs: ResolvedInputs
    container: Container
    fingerprint: str = ""  # set when caching applies: look it up before launching
    ttype: TaskType = TaskType.RUNTIME


ChildDecision = FailTask | SkipTask | StartLoop | StartGroup | ImportArtifact | LaunchTask


def plan_child(
    task: DagTask,
    component: Component,
    executor: Executor | None,
    scope: Scope,
    *,
    pipeline_name: str,
    cache_enabled: bool,
) -> ChildDecision:
    """What to do with a DAG entry that became ready."""
    ttype = task_type(task, component, executor)
    try:
        inputs = resolve_inputs(task, component, scope)
        triggered = evaluate_condition(task.condition, inputs.values()) if task.condition else True
    except (ResolveError, CelError) as exc:
        return FailTask(ttype, str(exc))
    if not triggered:
        return SkipTask(ttype, inputs)
    if ttype == TaskType.LOOP:
        assert task.iterator is not None  # a LOOP by task_type
        try:
            items = iteration_items(task.iterator, inputs)
        except ResolveError as exc:
            return FailTask(ttype, str(exc), inputs)
        return StartLoop(inputs, len(items))
    if ttype in GROUP_TASK_TYPES:
        return StartGroup(ttype, inputs)
    if ttype == TaskType.IMPORTER:
        assert executor is not None and executor.importer is not None
        uri: Any = executor.importer.uri_constant
        if uri is None:
            found = inputs.params.get(executor.importer.uri_parameter)
            uri = found.value if found is not None else None
        return ImportArtifact(inputs, uri if isinstance(uri, str) and uri else None)
    container = executor_container(executor)
    fingerprint = ""
    if task.caching and cache_enabled:
        fingerprint = cache_fingerprint(
            pipeline_name=pipeline_name,
            inputs=inputs,
            output_definitions=component.output_definitions,
            container=container,
        )
    return LaunchTask(inputs, container, fingerprint)


def executor_container(executor: Executor | None) -> Container:
    """A component's container (an empty one when its executor has none)."""
    found = executor.container if executor is not None else None
    return found if found is not None else Container()


@dataclass(frozen=True)
class IterationPlan:
    indexes: tuple[int, ...]  # iterations to start now, in order
    more: bool  # a next step must start more (big loops start in slices)


def plan_iterations(
    loop: LoopIterator,
    *,
    count: int,
    started: Collection[int],
    running: int,
    per_step: int,
) -> IterationPlan:
    """Which iterations of a loop start now: every missing one, at most ``parallelismLimit``
    running at once and ``per_step`` per step (so one transaction never holds the write lock
    for long and launches begin early)."""
    missing = count - len(started)
    if missing <= 0:
        return IterationPlan((), False)
    limit = loop.parallelism_limit
    room = missing if limit <= 0 else max(limit - running, 0)
    more = room > per_step
    room = min(room, per_step)
    indexes: list[int] = []
    for index in range(count):
        if len(indexes) >= room:
            break
        if index not in started:
            indexes.append(index)
    return IterationPlan(tuple(indexes), more)
