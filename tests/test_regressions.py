"""Regressions of issue 9, on SQLite, PostgreSQL and MariaDB: RetryRun keeps the input
artifact links of the tasks it resets (inside and outside loops); dsl.Collected over nested
ParallelFor loops gives nested lists in iteration order (parameters) and the artifacts in
that order (an artifact list input is flat)."""

from __future__ import annotations

import re
import threading
from typing import Any

from kfpd.client.http import KfpdClient
from tests.fake_executor import FunctionExecutor
from tests.test_orchestrator import params_of, wait_final
from tests.test_run_lifecycle import _start, _state


def _artifact_uris(params: dict[str, Any]) -> list[str]:
    return list(params["__artifacts__"]["data"])


def _made_order(run: Any, executor: FunctionExecutor) -> dict[str, tuple[int, ...]]:
    """make-dataset output URI -> the iteration indexes (outer first) of the task that made it."""
    by_id = {t.task_id: t for t in run.tasks or []}

    def path(task_id: str) -> tuple[int, ...]:
        indexes: list[int] = []
        task = by_id[task_id]
        while task.parent_task_id:
            task = by_id[task.parent_task_id]
            if task.type and task.type.name == "LOOP_ITERATION" and task.type_attributes:
                indexes.insert(0, task.type_attributes.iteration_index or 0)
        return tuple(indexes)

    return {
        spec.output_artifacts["data"].uri: path(spec.task_id)
        for spec in executor.launched
        if spec.task_name == "make-dataset"
    }


def _nested_run(orchestrated_server: Any, pipeline: str) -> tuple[Any, FunctionExecutor, list]:
    seen: list[list[str]] = []

    def read_all(p: dict[str, Any]) -> dict[str, Any]:
        seen.append(_artifact_uris(p))
        return {"Output": _artifact_uris(p)}

    executor = FunctionExecutor(
        {
            "add": lambda p: {"Output": p["a"] + p["b"]},
            "add3": lambda p: {"Output": p["a"] + p["b"] + p["c"]},
            "show": lambda p: {"Output": p["values"]},
            "make_dataset": lambda _p: {},
            "read_all": read_all,
        }
    )
    url = orchestrated_server(executor)
    with KfpdClient(url) as client:
        run = wait_final(client, _start(client, f"regressions:{pipeline}"))
    assert run.state and run.state.name == "SUCCEEDED", run.error
    return run, executor, seen


def test_nested_collected_two_levels(orchestrated_server: Any) -> None:
    run, executor, seen = _nested_run(orchestrated_server, "nested_collected")
    show = next(t for t in run.tasks or [] if t.name == "show")
    assert params_of(show)["values"] == [[11, 21, 31], [12, 22, 32]]
    assert params_of(show, outputs=True)["Output"] == [[11, 21, 31], [12, 22, 32]]
    order = _made_order(run, executor)
    assert len(seen) == 1 and len(seen[0]) == 6
    assert [order[u] for u in seen[0]] == sorted(order.values())


def test_nested_collected_three_levels(orchestrated_server: Any) -> None:
    run, executor, seen = _nested_run(orchestrated_server, "nested_collected_3")
    show = next(t for t in run.tasks or [] if t.name == "show")
    expected = [[[x + y + z for z in (100, 200, 300)] for y in (10, 20)] for x in (1, 2)]
    assert params_of(show)["values"] == expected
    order = _made_order(run, executor)
    assert len(seen) == 1 and len(seen[0]) == 12
    assert [order[u] for u in seen[0]] == sorted(order.values())


def test_retry_run_keeps_input_artifacts(orchestrated_server: Any) -> None:
    """A failed run retried: every reset reader (top level and in loop iterations) gets the
    dataset its producer made in the first attempt."""
    first_attempt = threading.Event()
    inputs: list[list[str]] = []

    def read(p: dict[str, Any]) -> dict[str, Any]:
        uris = _artifact_uris(p)
        if not first_attempt.is_set():
            raise RuntimeError("first attempt fails")
        inputs.append(uris)
        return {"Output": uris[0]}

    executor = FunctionExecutor({"make_dataset": lambda _p: {}, "read_dataset": read})
    url = orchestrated_server(executor)
    with KfpdClient(url) as client:
        run_id = _start(client, "regressions:retry_inputs", text="hi")
        failed = wait_final(client, run_id)
        assert failed.state and failed.state.name == "FAILED"
        made = [t for t in failed.tasks or [] if t.name == "make-dataset"]
        assert len(made) == 1 and _state(made[0]) == "SUCCEEDED"
        uri = (made[0].outputs.artifacts or [])[0].artifacts[0].uri  # type: ignore[index,union-attr]
        first_attempt.set()
        client.retry_run(run_id)
        run = wait_final(client, run_id)
    assert run.state and run.state.name == "SUCCEEDED", run.error
    readers = [
        t for t in run.tasks or [] if t.name and re.fullmatch(r"read-dataset(-\d+)?", t.name)
    ]
    assert len(readers) == 3
    assert all(_state(t) == "SUCCEEDED" for t in readers)
    assert inputs and all(uris == [uri] for uris in inputs) and len(inputs) == 3
    for t in readers:
        linked = [
            a.uri
            for io in (t.inputs.artifacts if t.inputs else None) or []
            for a in io.artifacts or []
        ]
        assert linked == [uri]
    # make-dataset ran once: the retry kept it.
    assert sum(1 for s in executor.launched if s.task_name == "make-dataset") == 1
