"""Which tasks of a DAG instance may start, whether the DAG is complete, and what kind of task
each entry becomes. The roll-up and the orchestrator ask the same :func:`readiness`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kfpd.domain.enums import TaskState, TaskType
from kfpd.ir import Component, Dag, DagTask, Executor

BLOCKING_STATES = frozenset({TaskState.FAILED, TaskState.CANCELED})


@dataclass(frozen=True)
class Readiness:
    ready: list[str]  # no row yet, may start now
    waiting: list[str]  # no row yet, may start once an upstream task finishes
    running: list[str]  # has a row that is not final

    @property
    def complete(self) -> bool:
        """Nothing of the DAG runs or can still start: every task is final or never starts."""
        return not (self.ready or self.waiting or self.running)


def readiness(dag: Dag, rows: Mapping[str, TaskState]) -> Readiness:
    """Split a DAG instance's tasks by what their rows (``name -> state``) allow.

    A task waits while an upstream task has not finished. It never starts when an upstream
    task failed (or never starts), unless it runs after failures (ALL_UPSTREAM_TASKS_COMPLETED,
    exit handlers).
    """
    status: dict[str, str] = {}
    ready: list[str] = []
    waiting: list[str] = []
    running: list[str] = []
    for name in dag.order:
        if name in rows:
            state = rows[name]
            if not state.is_terminal:
                status[name] = "running"
                running.append(name)
            else:
                status[name] = "blocked" if state in BLOCKING_STATES else "done"
            continue
        task = dag.tasks[name]
        deps = [status.get(d, "done") for d in task.dependent_tasks if d in dag.tasks]
        if any(d in {"running", "waiting"} for d in deps):
            status[name] = "waiting"
            waiting.append(name)
        elif "blocked" in deps and not task.runs_after_failures:
            status[name] = "blocked"
        else:
            status[name] = "waiting"  # to its dependents it has not finished yet
            ready.append(name)
    return Readiness(ready, waiting, running)


def task_type(task: DagTask, component: Component, executor: Executor | None) -> TaskType:
    """The kind of task a DAG entry becomes (reference §5.4, plus EXIT_HANDLER)."""
    name = task.name
    if component.dag is not None:
        if task.iterator is not None:
            return TaskType.LOOP
        if task.condition:
            return TaskType.CONDITION_BRANCH
        if name.startswith("condition") and not name.startswith("condition-branches"):
            return TaskType.CONDITION
        if name.startswith("exit-handler"):
            return TaskType.EXIT_HANDLER
        return TaskType.DAG
    if executor is not None and executor.importer is not None:
        return TaskType.IMPORTER
    return TaskType.RUNTIME
