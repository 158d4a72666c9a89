"""Dependency order of a DAG's tasks, on the raw IR dicts: submission validation runs it
before a typed view exists, and the IR loader (``ir/load.py``) uses it to order each DAG once.
Scope paths (``root.<task>.<task>…``) are resolved on the typed view: ``PipelineIR.component_at``.
"""

from __future__ import annotations

from typing import Any


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
