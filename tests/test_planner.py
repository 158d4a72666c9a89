"""The typed IR view and the planner's pure rules (readiness = group completion, task types),
on IR compiled by the kfp SDK: no database, no server. Table-driven."""

from __future__ import annotations

import pytest

from kfpd.domain.enums import TaskState, TaskType
from kfpd.ir import IteratorKind, PipelineIR, load_ir
from kfpd.orchestrator.plan import readiness, task_type
from tests.helpers import compiled

S, F, C, R, K = (
    TaskState.SUCCEEDED,
    TaskState.FAILED,
    TaskState.CANCELED,
    TaskState.RUNNING,
    TaskState.SKIPPED,
)


def ir(name: str) -> PipelineIR:
    return load_ir(compiled(name))


# (pipeline, DAG scope, rows name -> state, expected ready, expected waiting, complete)
READINESS = [
    # A plain chain: the first task is ready, the rest wait on it.
    (
        "control_flow",
        "root",
        {},
        ["make-list", "make-list-2"],
        ["for-loop-1", "total", "inner-sum", "condition-branches-4", "echo", "for-loop-7"],
        False,
    ),
    (
        "control_flow",
        "root",
        {"make-list": S, "make-list-2": R},
        ["for-loop-1"],
        ["total", "inner-sum", "condition-branches-4", "echo", "for-loop-7"],
        False,
    ),
    # A failed upstream blocks everything behind it: the DAG is complete once the rest ended.
    ("control_flow", "root", {"make-list": F, "make-list-2": S, "for-loop-7": K}, [], [], True),
    ("control_flow", "root", {"make-list": C, "make-list-2": R}, [], ["for-loop-7"], False),
    # Exit handler: exit-op runs after the handler group failed; complete once it ran.
    ("lifecycle:exit_after_failure", "root", {}, ["exit-handler-1"], ["exit-op"], False),
    ("lifecycle:exit_after_failure", "root", {"exit-handler-1": F}, ["exit-op"], [], False),
    ("lifecycle:exit_after_failure", "root", {"exit-handler-1": F, "exit-op": S}, [], [], True),
    ("lifecycle:exit_after_failure", "root.exit-handler-1", {"print-op": F}, [], [], True),
    (
        "lifecycle:exit_after_failure",
        "root.exit-handler-1",
        {"print-op": S},
        ["fail-op"],
        [],
        False,
    ),
    # If/Elif/Else: every branch is ready together (each checks its own condition).
    (
        "planner:branches",
        "root.condition-branches-1",
        {},
        ["condition-2", "condition-3", "condition-4"],
        [],
        False,
    ),
    (
        "planner:branches",
        "root.condition-branches-1",
        {"condition-2": S, "condition-3": K, "condition-4": K},
        [],
        [],
        True,
    ),
    # Importer: an ordinary leaf for readiness.
    (
        "lifecycle:oneof_artifacts",
        "root",
        {"condition-branches-1": S},
        ["read-dataset-2", "importer"],
        ["read-dataset"],
        False,
    ),
    # Loop body inside an iteration: its two tasks start together.
    ("control_flow", "root.for-loop-1", {}, ["double", "for-loop-3"], [], False),
    ("control_flow", "root.for-loop-1", {"double": S, "for-loop-3": R}, [], [], False),
]


@pytest.mark.parametrize(("pipeline", "scope", "rows", "ready", "waiting", "complete"), READINESS)
def test_readiness_and_completion(
    pipeline: str,
    scope: str,
    rows: dict[str, TaskState],
    ready: list[str],
    waiting: list[str],
    complete: bool,
) -> None:
    dag = ir(pipeline).dag_at(scope)
    assert dag is not None
    found = readiness(dag, rows)
    assert sorted(found.ready) == sorted(ready)
    assert sorted(found.waiting) == sorted(waiting)
    assert found.complete is complete


# (pipeline, scope path of a task, its task type)
TYPES = [
    ("control_flow", "root.make-list", TaskType.RUNTIME),
    ("control_flow", "root.for-loop-1", TaskType.LOOP),
    ("control_flow", "root.for-loop-1.for-loop-3", TaskType.LOOP),
    ("control_flow", "root.inner-sum", TaskType.DAG),
    ("control_flow", "root.condition-branches-4", TaskType.DAG),
    ("control_flow", "root.condition-branches-4.condition-5", TaskType.CONDITION_BRANCH),
    ("lifecycle:exit_after_failure", "root.exit-handler-1", TaskType.EXIT_HANDLER),
    ("lifecycle:oneof_artifacts", "root.importer", TaskType.IMPORTER),
    ("planner:branches", "root.condition-branches-1.condition-4", TaskType.CONDITION_BRANCH),
]


@pytest.mark.parametrize(("pipeline", "path", "expected"), TYPES)
def test_task_types(pipeline: str, path: str, expected: TaskType) -> None:
    pipe = ir(pipeline)
    task = pipe.task_at(path)
    assert task is not None
    component = pipe.components[task.component]
    assert task_type(task, component, pipe.executor_of(component)) == expected


def test_loops_in_the_ir() -> None:
    flow = ir("control_flow")
    outer = flow.task_at("root.for-loop-1")
    inner = flow.task_at("root.for-loop-1.for-loop-3")
    assert outer and outer.iterator and inner and inner.iterator
    assert outer.iterator.kind == IteratorKind.PARAMETER
    assert outer.iterator.items_input == "pipelinechannel--make-list-Output"
    assert outer.dependent_tasks == ("make-list",)
    assert inner.iterator.raw_items == "[10, 20]" and inner.iterator.parallelism_limit == 0
    limited = ir("planner:limited").task_at("root.for-loop-2")
    assert limited and limited.iterator and limited.iterator.parallelism_limit == 2
    # Collected outputs of a loop: declared on the loop's DAG as a LIST.
    loop_dag = flow.dag_at("root.for-loop-1")
    assert loop_dag is not None
    assert [(o.key, o.is_list) for o in loop_dag.parameter_outputs] == [
        ("pipelinechannel--double-Output", True)
    ]


def test_caching_retry_importer_and_oneof() -> None:
    cached = ir("lifecycle:cacheable").task_at("root.make-dataset")
    assert cached and cached.caching and cached.retry is None
    not_cached = ir("planner:limited").task_at("root.for-loop-2.echo")
    assert not_cached and not not_cached.caching
    flaky = ir("lifecycle:retrying").task_at("root.flaky")
    assert flaky and flaky.retry and flaky.retry.max_retries == 2
    assert flaky.retry.delay(1) == 0.0
    pipe = ir("lifecycle:oneof_artifacts")
    importer_task = pipe.task_at("root.importer")
    assert importer_task is not None
    executor = pipe.executor_of(pipe.components[importer_task.component])
    assert executor and executor.importer
    assert executor.importer.uri_constant == "file:///tmp/kfpd-test-imported.txt"
    assert not executor.importer.reimport
    branches = pipe.dag_at("root.condition-branches-1")
    assert branches and branches.artifact_outputs
    (out,) = branches.artifact_outputs
    assert out.oneof and [s.producer for s in out.selectors] == ["condition-2", "condition-3"]
    assert branches.producers() == {"condition-2", "condition-3"}


def test_backoff_grows_and_caps() -> None:
    from kfpd.ir import RetryPolicy

    policy = RetryPolicy(max_retries=5, backoff_s=2.0, factor=3.0, max_backoff_s=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 30.0]


def test_scope_paths_resolve_once_and_miss_cleanly() -> None:
    pipe = ir("control_flow")
    assert pipe.component_at("root") is pipe.root
    assert pipe.component_at("root.nope") is None
    assert pipe.component_at("other") is None
    assert pipe.task_at("root.for-loop-1.double") is pipe.task_at("root.for-loop-1.double")
