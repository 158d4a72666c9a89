"""Output propagation up the DAG (reference §5.9), done when a group task completes.

A DAG component declares outputs selected from its children (``valueFromParameter``,
``valueFromOneof``, ``artifactSelectors``). When the group's roll-up makes it SUCCEEDED, its
declared outputs are computed from the children's recorded outputs and written on the group
task, in the same transaction, before its parent is evaluated: so a consumer of the group,
and the pipeline outputs on the ROOT task, are complete before anything reads them.
IO types: from a LOOP → ITERATOR_OUTPUT (one entry per iteration); from a CONDITION_BRANCH
(non-list output) → ONE_OF_OUTPUT; otherwise a child's ITERATOR/ONE_OF type is kept, else OUTPUT.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from kfpd.domain.enums import IOType, TaskState, TaskType
from kfpd.domain.timeutil import now_us
from kfpd.ir import DagOutput
from kfpd.orchestrator.model import ArtifactIO, Param
from kfpd.services.artifacts import link_artifact
from kfpd.services.taskdata import (
    TASKS,
    TaskValues,
    ir_of,
    links_of,
    load_task,
    load_tasks,
    params,
    write_task,
)

_DONE = {int(TaskState.SUCCEEDED), int(TaskState.CACHED)}
_KEEP = {IOType.ITERATOR_OUTPUT, IOType.ONE_OF_OUTPUT}


@dataclass
class _Child:
    task: TaskValues
    iteration: int | None


def _children(session: Session, group: TaskValues, names: set[str]) -> dict[str, list[_Child]]:
    """Children by name; for a LOOP, the tasks of every iteration with their index."""
    found: dict[str, list[_Child]] = {n: [] for n in names}
    if not names:
        return found
    c = TASKS.c
    if group["type"] == TaskType.LOOP:
        iterations = {
            t["id"]: t["iteration_index"]
            for t in load_tasks(
                session,
                c.parent_task_id == group["id"],
                c.type == int(TaskType.LOOP_ITERATION),
            )
        }
        if not iterations:
            return found
        for row in load_tasks(session, c.parent_task_id.in_(list(iterations)), c.name.in_(names)):
            found[row["name"]].append(_Child(row, iterations.get(row["parent_task_id"] or "")))
        for items in found.values():
            items.sort(key=lambda ch: ch.iteration or 0)
        return found
    for row in load_tasks(session, c.parent_task_id == group["id"], c.name.in_(names)):
        found[row["name"]].append(_Child(row, None))
    return found


def _emit_type(group: TaskValues, child_type: IOType, is_list: bool) -> IOType:
    if group["type"] == TaskType.LOOP:
        return IOType.ITERATOR_OUTPUT
    if group["type"] == TaskType.CONDITION_BRANCH and not is_list:
        return IOType.ONE_OF_OUTPUT
    return child_type if child_type in _KEEP else IOType.OUTPUT


def _param_entries(
    group: TaskValues, child: _Child, out_key: str, key: str, is_list: bool
) -> list[Param]:
    entries = [p for p in params(child.task["output_parameters"]) if p.key == out_key]
    if not entries:
        return []
    if group["type"] == TaskType.LOOP and (
        len(entries) > 1 or entries[0].io_type == IOType.ITERATOR_OUTPUT
    ):
        # A nested loop's outputs become one list per iteration of this loop.
        ordered = sorted(entries, key=lambda e: e.iteration or 0)
        value: Any = [e.value for e in ordered]
        return [Param(key, value, IOType.ITERATOR_OUTPUT, child.task["name"], child.iteration)]
    out = []
    for e in entries:
        io_type = _emit_type(group, e.io_type, is_list)
        iteration = child.iteration if io_type == IOType.ITERATOR_OUTPUT else None
        if group["type"] != TaskType.LOOP and io_type == IOType.ITERATOR_OUTPUT:
            iteration = e.iteration
        out.append(Param(key, e.value, io_type, child.task["name"], iteration))
    return out


def record_group_outputs(session: Session, run_id: str, group: TaskValues) -> None:
    """Write a completed group's declared outputs onto its task row.

    ``group`` needs id, state, type and scope_path; the full row is read only when the
    group's component declares outputs.
    """
    if group["state"] not in _DONE:
        return
    dag = ir_of(session, run_id).dag_at(group["scope_path"])
    if dag is None or not dag.has_outputs:
        return
    group = load_task(session, group["id"]) or group
    children = _children(session, group, dag.producers())
    new_params: list[Param] = []
    for out in dag.parameter_outputs:
        new_params += _parameter_output(group, children, out)
    if new_params:
        changes = {
            "output_parameters": [
                *(group["output_parameters"] or []),
                *(p.to_json() for p in new_params),
            ]
        }
        write_task(session, group, changes)
    if dag.artifact_outputs:
        _link_artifact_outputs(session, group, children, dag.artifact_outputs)


def _done(children: dict[str, list[_Child]], producer: str) -> list[_Child]:
    return [c for c in children.get(producer, []) if c.task["state"] in _DONE]


def _parameter_output(
    group: TaskValues, children: dict[str, list[_Child]], out: DagOutput
) -> list[Param]:
    if not out.oneof:
        sel = out.selectors[0]
        return [
            e
            for child in _done(children, sel.producer)
            for e in _param_entries(group, child, sel.output_key, out.key, out.is_list)
        ]
    for sel in out.selectors:  # OneOf: the first selector that has a value
        entries = [
            e
            for child in _done(children, sel.producer)
            for e in _param_entries(group, child, sel.output_key, out.key, True)
        ]
        if entries:
            e = entries[0]
            return [Param(out.key, e.value, IOType.ONE_OF_OUTPUT, e.producer, e.iteration)]
    return []


def _link_artifact_outputs(
    session: Session,
    group: TaskValues,
    children: dict[str, list[_Child]],
    outputs: tuple[DagOutput, ...],
) -> None:
    child_ids = [c.task["id"] for items in children.values() for c in items]
    child_links = links_of(session, child_ids, outputs=True)
    # Links are read back in created_at order: consecutive stamps keep the artifacts of a
    # nested loop in iteration order (outer, then inner), which the link's own iteration
    # (this loop's index) no longer tells.
    stamps = itertools.count(now_us())
    for out in outputs:
        for sel in out.selectors:
            emitted = 0
            for child in _done(children, sel.producer):
                ios = child_links.get(child.task["id"], [])
                for io in sorted(ios, key=lambda io: io.iteration or 0):
                    if io.key == sel.output_key:
                        emitted += _link_up(
                            session, group, child, io, out.key, out.is_list, out.oneof, stamps
                        )
            if emitted and out.oneof:
                break


def _link_up(
    session: Session,
    group: TaskValues,
    child: _Child,
    io: ArtifactIO,
    key: str,
    is_list: bool,
    oneof: bool,
    stamps: Iterator[int],
) -> int:
    io_type = IOType.ONE_OF_OUTPUT if oneof else _emit_type(group, io.io_type, is_list)
    iteration = child.iteration if io_type == IOType.ITERATOR_OUTPUT else None
    if group["type"] != TaskType.LOOP and io_type == IOType.ITERATOR_OUTPUT:
        iteration = io.iteration
    producer: dict[str, Any] = {"task_name": child.task["name"]}
    if iteration is not None:
        producer["iteration"] = str(iteration)
    for art in io.artifacts:
        link_artifact(
            session,
            artifact_id=art.artifact_id,
            task=group,
            io_type=io_type,
            producer=producer,
            key=key,
            now=next(stamps),
        )
    return len(io.artifacts)
