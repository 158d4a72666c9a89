"""The orchestrator on real IR (compiled by the kfp SDK), with components replaced by Python
stand-ins that report through the HTTP API: control flow, typing, propagation, retries.
Runs on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import threading
import time
from typing import Any

from kfpd.client.http import KfpdClient
from kfpd.schemas.runs import Run, RunCreate
from kfpd.schemas.tasks import PipelineTask
from tests.fake_executor import FunctionExecutor
from tests.helpers import compiled

HANDLERS: dict[str, Any] = {
    "make_list": lambda p: {"Output": list(range(1, p["n"] + 1))},
    "double": lambda p: {"Output": 2 * p["x"]},
    "add": lambda p: {"Output": p["a"] + p["b"]},
    "total": lambda p: {"Output": sum(p["values"])},
    "describe": lambda p: {"Output": f"{p['label']}:{p.get('value', 0)}:{p.get('note')}"},
    "echo": lambda p: {"Output": p["text"]},
}


def wait_final(client: KfpdClient, run_id: str, timeout: float = 60) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = client.get_run(run_id, full=True)
        if run.state and run.state.name in {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}:
            return run
        assert time.monotonic() < deadline, f"run still {run.state} after {timeout}s"
        time.sleep(0.1)


def params_of(task: PipelineTask, outputs: bool = False) -> dict[str, Any]:
    io = task.outputs if outputs else task.inputs
    return {p.parameter_key: p.value for p in (io.parameters if io else None) or []}


def param_types(task: PipelineTask) -> dict[str, str]:
    io = task.inputs
    return {
        p.parameter_key or "": p.type.name for p in (io.parameters if io else None) or [] if p.type
    }


def test_control_flow_run_graph(orchestrated_server: Any) -> None:
    executor = FunctionExecutor(HANDLERS)
    url = orchestrated_server(executor)
    with KfpdClient(url) as client:
        created = client.create_run(
            RunCreate(
                display_name="control flow",
                pipeline_spec=compiled("control_flow"),
                runtime_config={"parameters": {"n": 3}},
            )
        )
        run = wait_final(client, created.run_id or "")
    assert run.state and run.state.name == "SUCCEEDED", run.error
    tasks = run.tasks or []
    by_id = {t.task_id: t for t in tasks}
    named = lambda n: [t for t in tasks if t.name == n]  # noqa: E731

    root = named("ROOT")[0]
    assert root.type and root.type.name == "ROOT"
    assert params_of(root) == {"n": 3, "threshold": 5}
    # The pipeline output went up from echo through the root DAG.
    assert params_of(root, outputs=True) == {"Output": "big:12:None"}

    # Outer loop: 3 iterations over [1, 2, 3], each with a nested loop of 2.
    outer = [t for t in named("for-loop-1") if t.type and t.type.name == "LOOP"]
    assert len(outer) == 1 and outer[0].type_attributes
    assert outer[0].type_attributes.iteration_count == 3
    iterations = [
        t
        for t in tasks
        if t.type and t.type.name == "LOOP_ITERATION" and t.parent_task_id == outer[0].task_id
    ]
    assert sorted(t.type_attributes.iteration_index for t in iterations if t.type_attributes) == [
        0,
        1,
        2,
    ]
    adds = named("add")
    assert len(adds) == 6
    assert sorted(params_of(t, outputs=True)["Output"] for t in adds) == [11, 12, 13, 21, 22, 23]
    # Collected integers stay integers, in iteration order.
    summed = next(t for t in named("total") if t.parent_task_id == root.task_id)
    assert params_of(summed)["values"] == [2, 4, 6]
    assert param_types(summed)["values"] == "COLLECTED_INPUTS"
    assert params_of(summed, outputs=True)["Output"] == 12
    # The nested pipeline's output came up through its DAG.
    inner = named("inner-sum")[0]
    assert inner.type and inner.type.name == "DAG"
    assert params_of(inner, outputs=True)["Output"] == 12

    # If/Else: one branch ran, the other was skipped; OneOf picked the one that ran.
    branches = {t.name: t for t in tasks if t.type and t.type.name == "CONDITION_BRANCH"}
    states = sorted(t.state.name for t in branches.values() if t.state)
    assert states == ["SKIPPED", "SUCCEEDED"]
    assert named("describe-2") == []  # the Else branch's task never ran
    described = named("describe")
    assert len(described) == 1 and params_of(described[0]) == {"label": "big", "value": 12}
    echo = named("echo")[0]
    assert params_of(echo) == {"text": "big:12:None"}

    # The zero-item loop is SKIPPED and its body never ran.
    empty_loops = [
        t
        for t in tasks
        if t.type
        and t.type.name == "LOOP"
        and t.type_attributes
        and t.type_attributes.iteration_count == 0
    ]
    assert len(empty_loops) == 1 and empty_loops[0].state and empty_loops[0].state.name == "SKIPPED"
    for t in tasks:
        if t.parent_task_id:
            assert t.parent_task_id in by_id
        assert t.state and t.state.name in {"SUCCEEDED", "SKIPPED"}, (t.name, t.state)


def test_big_loops_start_in_slices(orchestrated_server: Any, monkeypatch: Any) -> None:
    from kfpd.services import orchestration

    monkeypatch.setattr(orchestration, "ITERATIONS_PER_STEP", 2)
    url = orchestrated_server(FunctionExecutor(HANDLERS))
    with KfpdClient(url) as client:
        created = client.create_run(
            RunCreate(
                display_name="sliced",
                pipeline_spec=compiled("control_flow"),
                runtime_config={"parameters": {"n": 5}},
            )
        )
        run = wait_final(client, created.run_id or "")
    assert run.state and run.state.name == "SUCCEEDED", run.error
    root = next(t for t in run.tasks or [] if t.name == "ROOT")
    assert params_of(root, outputs=True) == {"Output": "big:30:None"}
    doubled = sorted(
        params_of(t, outputs=True)["Output"] for t in run.tasks or [] if t.name == "double"
    )
    assert doubled == [2, 4, 6, 8, 10]


def test_parallelism_limit_holds_and_every_iteration_runs(
    orchestrated_server: Any, monkeypatch: Any
) -> None:
    """ParallelFor(parallelism=2): never more than 2 iterations at once, yet all of them run
    (each finished iteration frees a slot for the next, in slices of 2 per step here)."""
    from kfpd.services import orchestration

    monkeypatch.setattr(orchestration, "ITERATIONS_PER_STEP", 2)
    lock = threading.Lock()
    active, peak = [0], [0]

    def slow_double(p: dict[str, Any]) -> dict[str, Any]:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1
        return {"Output": 2 * p["x"]}

    url = orchestrated_server(FunctionExecutor({**HANDLERS, "double": slow_double}, workers=6))
    with KfpdClient(url) as client:
        created = client.create_run(
            RunCreate(
                display_name="limited",
                pipeline_spec=compiled("control_flow:limited_loop"),
                runtime_config={"parameters": {"n": 7}},
            )
        )
        run = wait_final(client, created.run_id or "")
    assert run.state and run.state.name == "SUCCEEDED", run.error
    root = next(t for t in run.tasks or [] if t.name == "ROOT")
    assert params_of(root, outputs=True) == {"Output": 2 * sum(range(1, 8))}
    assert len([t for t in run.tasks or [] if t.name == "double"]) == 7
    assert 1 <= peak[0] <= 2
