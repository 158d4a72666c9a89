"""Bounds on what a submitted pipeline may cost to read: nesting depth, YAML aliases, archive
sizes, component nesting. Every check refuses with InvalidArgument (400) before the work grows:
a 4 KB YAML of nested aliases expands to gigabytes, a 1 MB zip to 1 GiB, and Python's parsers
recurse once per nesting level (RecursionError, a 500, past ~1,000 levels)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml

from kfpd.domain.errors import InvalidArgument
from kfpd.schemas.base import refuse_control

# Compiled IR nests ~12 levels (a Struct default inside a component's input definitions);
# protobuf's JSON parser recurses a few Python frames per level, so 100 stays far from the
# interpreter's limit.
MAX_NESTING = 100
# Nested pipelines (a DAG component whose task runs another DAG component), counted from root.
MAX_COMPONENT_NESTING = 32
# An archive's pipeline files, uncompressed, and how many members it may list.
MAX_ARCHIVE_BYTES = 32 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 10_000


def too_deep(what: str) -> InvalidArgument:
    return InvalidArgument(f"{what} is nested more than {MAX_NESTING} levels deep")


def check_nesting(value: Any, what: str) -> None:
    """Refuse a parsed value nested deeper than MAX_NESTING (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_NESTING:
            raise too_deep(what)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def load_json(data: bytes | str, what: str) -> Any:
    """json.loads with the nesting bound (json.JSONDecodeError passes through)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise too_deep(what) from None
    check_nesting(value, what)
    return value


class _BoundedYamlLoader(yaml.SafeLoader):
    """SafeLoader without aliases (pipeline specs never need them; each one can multiply the
    document's size) and with a nesting bound checked while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise InvalidArgument(
                f"YAML aliases (*{event.anchor}) are not accepted in pipeline files "
                f"(line {event.start_mark.line + 1})"
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise too_deep("the YAML document")
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1


def load_yaml_documents(text: str) -> Iterator[Any]:
    """yaml.safe_load_all, without aliases and with the nesting bound."""
    loader = _BoundedYamlLoader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    finally:
        loader.dispose()


def archive_budget_exceeded(total: int) -> InvalidArgument:
    return InvalidArgument(
        f"the archive's pipeline files exceed {MAX_ARCHIVE_BYTES} bytes uncompressed ({total}+)"
    )


ROOT = "(root)"


def check_component_graph(spec: dict[str, Any]) -> None:
    """Refuse a component that (directly or through others) runs itself, and nesting deeper
    than MAX_COMPONENT_NESTING: either would have the engine expand DAGs without end."""
    components: dict[str, Any] = spec.get("components") or {}
    children: dict[str, list[str]] = {}
    _check_name(str((spec.get("pipelineInfo") or {}).get("name") or ""), "pipelineInfo.name")
    for name, component in [(ROOT, spec.get("root")), *components.items()]:
        _check_name(name, "component name")
        dag = component.get("dag") if isinstance(component, dict) else None
        tasks = (dag.get("tasks") if isinstance(dag, dict) else None) or {}
        for task_name in tasks:
            _check_name(task_name, f"task name in {name}")
        children[name] = [ref for task in tasks.values() if (ref := _dag_ref(task, components))]
    _walk_from_root(children)


def _check_name(name: str, what: str) -> None:
    """Task and pipeline names become text columns and paths: no control characters."""
    try:
        refuse_control(name)
    except ValueError as exc:
        raise InvalidArgument(f"{what} {name!r} {exc}") from None


def _dag_ref(task: Any, components: dict[str, Any]) -> str | None:
    """The DAG component a task runs, if it runs one."""
    ref = task.get("componentRef") if isinstance(task, dict) else None
    name = ref.get("name") if isinstance(ref, dict) else None
    component = components.get(name) if isinstance(name, str) else None
    return name if isinstance(component, dict) and "dag" in component else None


def _walk_from_root(children: dict[str, list[str]]) -> None:
    """Depth-first from the root with an explicit stack: a child already on the path is a
    cycle; a finished child's height (levels below it) bounds every path through it."""
    path: list[str] = [ROOT]
    pending: list[Iterator[str]] = [iter(children[ROOT])]
    height: dict[str, int] = {}
    while pending:
        child = next(pending[-1], None)
        if child is None:
            pending.pop()
            done = path.pop()
            height[done] = 1 + max((height[c] for c in children[done]), default=0)
            continue
        if child in path:
            cycle = " -> ".join([*path[path.index(child) :], child])
            raise InvalidArgument(f"recursive component reference: {cycle}")
        if len(path) + height.get(child, 1) > MAX_COMPONENT_NESTING:
            raise InvalidArgument(
                f"pipelines are nested more than {MAX_COMPONENT_NESTING} levels deep "
                f"(at {' -> '.join(path[-3:])} -> {child})"
            )
        if child not in height:
            path.append(child)
            pending.append(iter(children[child]))
