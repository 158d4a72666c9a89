"""Which tasks of a DAG instance may start, and what kind of task each one is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kfpd.domain.enums import TaskState, TaskType

_BLOCKING = {TaskState.FAILED, TaskState.CANCELED}
ALL_UPSTREAM_COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"


@dataclass(frozen=True)
class Readiness:
    ready: list[str]  # may start now
    waiting: list[str]  # may start later


def ready_tasks(
    order: list[str] | tuple[str, ...], specs: dict[str, Any], rows: dict[str, TaskState]
) -> Readiness:
    """Split the tasks without a row into ready and waiting; the rest never start.

    A task waits while an upstream task has not finished. It never starts when an upstream
    task failed (or never starts), unless its trigger strategy is ALL_UPSTREAM_TASKS_COMPLETED.
    """
    status: dict[str, str] = {}
    ready: list[str] = []
    waiting: list[str] = []
    for name in order:
        if name in rows:
            state = rows[name]
            if not state.is_terminal:
                status[name] = "running"
            else:
                status[name] = "blocked" if state in _BLOCKING else "done"
            continue
        spec = specs[name]
        strategy = (spec.get("triggerPolicy") or {}).get("strategy", "")
        deps = [status.get(d, "done") for d in spec.get("dependentTasks") or [] if d in specs]
        if any(d in {"running", "waiting"} for d in deps):
            status[name] = "waiting"
            waiting.append(name)
        elif "blocked" in deps and strategy != ALL_UPSTREAM_COMPLETED:
            status[name] = "blocked"
        else:
            status[name] = "waiting"  # to its dependents it has not finished yet
            ready.append(name)
    return Readiness(ready, waiting)


def task_type(
    name: str, task_spec: dict[str, Any], component: dict[str, Any], executors: dict[str, Any]
) -> TaskType:
    """The kind of task a DAG entry becomes (reference §5.4, plus EXIT_HANDLER)."""
    if "dag" in component:
        if "parameterIterator" in task_spec or "artifactIterator" in task_spec:
            return TaskType.LOOP
        if (task_spec.get("triggerPolicy") or {}).get("condition"):
            return TaskType.CONDITION_BRANCH
        if name.startswith("condition") and not name.startswith("condition-branches"):
            return TaskType.CONDITION
        if name.startswith("exit-handler"):
            return TaskType.EXIT_HANDLER
        return TaskType.DAG
    executor = executors.get(component.get("executorLabel", "")) or {}
    if "importer" in executor:
        return TaskType.IMPORTER
    return TaskType.RUNTIME
