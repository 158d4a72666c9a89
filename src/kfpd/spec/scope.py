"""Scope paths: ``root.<task>.<task>...`` from the root DAG through nested DAG components."""

from __future__ import annotations

from typing import Any


def component_for_scope(spec: dict[str, Any], scope_path: str) -> dict[str, Any] | None:
    """The component a scope path names, or None when the path does not resolve."""
    parts = [p for p in scope_path.split(".") if p]
    if not parts or parts[0] != "root":
        return None
    component: dict[str, Any] | None = spec.get("root")
    components: dict[str, Any] = spec.get("components") or {}
    for name in parts[1:]:
        if component is None:
            return None
        tasks = (component.get("dag") or {}).get("tasks") or {}
        task = tasks.get(name)
        if task is None:
            return None
        component = components.get((task.get("componentRef") or {}).get("name", ""))
    return component


def dag_tasks(spec: dict[str, Any], scope_path: str) -> dict[str, Any] | None:
    """The task specs of the DAG a scope path names (None if it is not a DAG)."""
    component = component_for_scope(spec, scope_path)
    if component is None or "dag" not in component:
        return None
    return dict(component["dag"].get("tasks") or {})


def topological_order(tasks: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Task names in dependency order (iteratively, so deep chains are fine), plus the
    names left over because they sit on or behind a dependency cycle."""
    names = set(tasks)
    pending = {n: set(t.get("dependentTasks") or []) & names for n, t in tasks.items()}
    dependents: dict[str, list[str]] = {n: [] for n in tasks}
    for name, deps in pending.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = sorted((n for n, deps in pending.items() if not deps), reverse=True)
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for nxt in dependents[name]:
            pending[nxt].discard(name)
            if not pending[nxt]:
                ready.append(nxt)
    placed = set(order)
    return order, [n for n in tasks if n not in placed]
