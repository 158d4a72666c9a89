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


# ---------------------------------------------------------------------------- decisions

from kfpd.domain.enums import IOType  # noqa: E402
from kfpd.orchestrator.model import Param, Sibling, TaskOutputs  # noqa: E402
from kfpd.orchestrator.planner import (  # noqa: E402
    ChildDecision,
    FailTask,
    ImportArtifact,
    LaunchTask,
    SkipTask,
    StartGroup,
    StartLoop,
    plan_child,
    plan_iterations,
)
from kfpd.orchestrator.resolve import JobInfo, Scope  # noqa: E402

JOB = JobInfo(run_id="r", run_name="run", create_time="", schedule_time="")


def sibling(name: str, state: TaskState, outputs: dict[str, object] | None = None) -> Sibling:
    params = [Param(k, v, IOType.OUTPUT, name) for k, v in (outputs or {}).items()]
    return Sibling(f"id-{name}", name, TaskType.RUNTIME, state, TaskOutputs(params=params))


def scope(
    params: dict[str, object] | None = None, siblings: dict[str, Sibling] | None = None
) -> Scope:
    return Scope(
        group_name="g",
        group_task_id="gid",
        params=[Param(k, v, IOType.COMPONENT_INPUT, "g") for k, v in (params or {}).items()],
        artifacts=[],
        iteration=None,
        sibling=lambda name: (siblings or {}).get(name),
        job=JOB,
    )


def decide(pipeline: str, path: str, where: Scope, cache: bool = True) -> ChildDecision:
    pipe = ir(pipeline)
    task = pipe.task_at(path)
    assert task is not None
    component = pipe.components[task.component]
    return plan_child(
        task,
        component,
        pipe.executor_of(component),
        where,
        pipeline_name=pipe.name,
        cache_enabled=cache,
    )


LIST_MADE = {"make-list": sibling("make-list", S, {"Output": [1, 2, 3]})}
COND = "pipelinechannel--total-Output"
# (pipeline, path, scope, expected decision type, check on the decision)
DECISIONS = [
    (
        "control_flow",
        "root.make-list",
        scope({"n": 3}),
        LaunchTask,
        lambda d: d.inputs.params["n"].value == 3 and len(d.fingerprint) == 64 and d.container,
    ),
    (
        "control_flow",
        "root.for-loop-1",
        scope({"n": 3}, LIST_MADE),
        StartLoop,
        lambda d: d.item_count == 3,
    ),
    # zero items: a loop that is then SKIPPED by the caller
    (
        "control_flow",
        "root.for-loop-1",
        scope({"n": 0}, {"make-list": sibling("make-list", S, {"Output": []})}),
        StartLoop,
        lambda d: d.item_count == 0,
    ),
    (
        "control_flow",
        "root.for-loop-1",
        scope({"n": 3}, {"make-list": sibling("make-list", S)}),
        FailTask,
        lambda d: "no value" in d.message and d.ttype == TaskType.LOOP,
    ),
    # If / Else: the condition decides between running the branch and skipping it
    (
        "control_flow",
        "root.condition-branches-4.condition-5",
        scope({COND: 12, "pipelinechannel--threshold": 5}),
        StartGroup,
        lambda d: d.ttype == TaskType.CONDITION_BRANCH,
    ),
    (
        "control_flow",
        "root.condition-branches-4.condition-5",
        scope({COND: 2, "pipelinechannel--threshold": 5}),
        SkipTask,
        lambda d: d.ttype == TaskType.CONDITION_BRANCH,
    ),
    (
        "control_flow",
        "root.condition-branches-4.condition-6",
        scope({COND: 2, "pipelinechannel--threshold": 5, "pipelinechannel--inner-sum-Output": 2}),
        StartGroup,
        lambda _d: True,
    ),
    # a required input without a value fails the task
    (
        "control_flow",
        "root.make-list",
        scope({}),
        FailTask,
        lambda d: "required input" in d.message,
    ),
    (
        "lifecycle:oneof_artifacts",
        "root.importer",
        scope({}),
        ImportArtifact,
        lambda d: d.uri == "file:///tmp/kfpd-test-imported.txt",
    ),
    (
        "lifecycle:exit_after_failure",
        "root.exit-handler-1",
        scope({"message": "boom"}),
        StartGroup,
        lambda d: d.ttype == TaskType.EXIT_HANDLER,
    ),
    # the exit task gets the handler group's final status
    (
        "lifecycle:exit_after_failure",
        "root.exit-op",
        scope(
            {},
            {
                "exit-handler-1": Sibling(
                    "h", "exit-handler-1", TaskType.EXIT_HANDLER, F, TaskOutputs(), "boom"
                )
            },
        ),
        LaunchTask,
        lambda d: d.inputs.params["status"].value["state"] == "FAILED",
    ),
    (
        "lifecycle:retrying",
        "root.flaky",
        scope({"x": 1}),
        LaunchTask,
        lambda _d: True,
    ),
]


@pytest.mark.parametrize(("pipeline", "path", "where", "kind", "check"), DECISIONS)
def test_plan_child(pipeline: str, path: str, where: Scope, kind: type, check: object) -> None:
    decision = decide(pipeline, path, where)
    assert isinstance(decision, kind), decision
    assert check(decision)  # type: ignore[operator]


def test_caching_off_leaves_no_fingerprint() -> None:
    on = decide("control_flow", "root.make-list", scope({"n": 3}))
    off = decide("control_flow", "root.make-list", scope({"n": 3}), cache=False)
    limited = decide(
        "planner:limited", "root.for-loop-2.echo", scope({"pipelinechannel--loop-item-param-1": 1})
    )
    assert isinstance(on, LaunchTask) and on.fingerprint
    assert isinstance(off, LaunchTask) and off.fingerprint == ""
    assert (
        isinstance(limited, LaunchTask) and limited.fingerprint == ""
    )  # set_caching_options(False)
    # The same inputs give the same key; other inputs another.
    again = decide("control_flow", "root.make-list", scope({"n": 3}))
    other = decide("control_flow", "root.make-list", scope({"n": 4}))
    assert isinstance(again, LaunchTask) and again.fingerprint == on.fingerprint
    assert isinstance(other, LaunchTask) and other.fingerprint != on.fingerprint


LIMITED = ir("planner:limited").task_at("root.for-loop-2")
UNLIMITED = ir("control_flow").task_at("root.for-loop-1")
# (loop, count, started, running, per step, expected indexes, more to come)
ITERATIONS = [
    (UNLIMITED, 3, set(), 0, 500, (0, 1, 2), False),
    (UNLIMITED, 0, set(), 0, 500, (), False),
    (UNLIMITED, 5, {0, 2}, 2, 500, (1, 3, 4), False),
    (UNLIMITED, 1200, set(), 0, 500, tuple(range(500)), True),
    (UNLIMITED, 1200, set(range(1000)), 0, 500, tuple(range(1000, 1200)), False),
    (LIMITED, 4, set(), 0, 500, (0, 1), False),
    (LIMITED, 4, {0, 1}, 2, 500, (), False),
    (LIMITED, 4, {0, 1}, 1, 500, (2,), False),
    (LIMITED, 4, {0, 1, 2, 3}, 0, 500, (), False),
]


@pytest.mark.parametrize(
    ("loop", "count", "started", "running", "per_step", "indexes", "more"), ITERATIONS
)
def test_plan_iterations(
    loop: object,
    count: int,
    started: set[int],
    running: int,
    per_step: int,
    indexes: tuple[int, ...],
    more: bool,
) -> None:
    assert loop is not None and loop.iterator is not None  # type: ignore[attr-defined]
    plan = plan_iterations(
        loop.iterator,
        count=count,
        started=started,
        running=running,
        per_step=per_step,  # type: ignore[attr-defined]
    )
    assert plan.indexes == indexes and plan.more is more


# ---------------------------------------------------------------------------- typed view

from kfpd.ir import ComponentInput, RuntimeValue, TaskOutput  # noqa: E402
from kfpd.orchestrator.fingerprint import cache_fingerprint  # noqa: E402
from kfpd.orchestrator.resolve import ResolvedInputs  # noqa: E402
from kfpd.spec.loader import load_package  # noqa: E402
from tests.conftest import CORPUS, require_corpus  # noqa: E402


def corpus_ir(name: str) -> PipelineIR:
    require_corpus()
    path = CORPUS / name
    loaded = load_package(path.read_bytes(), path.name)
    return load_ir(loaded.pipeline_spec, loaded.platform_spec)


def test_cache_keys_stay_what_they_were() -> None:
    """The typed view hashes the same canonical JSON as the raw IR did (figures computed
    before the view was typed): a change here makes every stored cache entry miss."""
    pipe = corpus_ir("critical/artifact_cache.yaml")
    inputs = ResolvedInputs(params={"a": Param("a", 1, IOType.COMPONENT_INPUT, "g")})
    keys = {}
    for name in ("comp-core-comp", "comp-crust-comp"):
        component = pipe.components[name]
        executor = pipe.executor_of(component)
        assert executor is not None and executor.container is not None
        keys[name] = cache_fingerprint(
            pipeline_name=pipe.name,
            inputs=inputs,
            output_definitions=component.output_definitions,
            container=executor.container,
        )
    assert keys == {
        "comp-core-comp": "1d42313c0bf9604253c5568507836c00ad257083a67765750a71bec72ea79c4c",
        "comp-crust-comp": "17df0c87b3b4f2f731c6113ac3205cf271026e73391985105876d8a68f84477d",
    }
    (dataset,) = pipe.components["comp-core-comp"].output_definitions.artifacts.values()
    assert dataset.artifact_type.to_json() == {
        "schemaTitle": "system.Dataset",
        "schemaVersion": "0.0.1",
    }


def test_platform_config_and_definitions_are_typed() -> None:
    pipe = corpus_ir("critical/pipeline_with_secret_as_env.yaml")
    (secret_param,) = pipe.root.input_definitions.parameters.values()
    assert secret_param.has_default and secret_param.default == "test-secret-1"
    assert secret_param.parameter_type == "STRING" and secret_param.optional
    config = pipe.platform_config(pipe.components["comp-comp"])
    assert config is not None
    sources = [e.name_parameter.source if e.name_parameter else None for e in config.secret_env]
    assert sources == [
        ComponentInput("secret_parm"),
        RuntimeValue("test-secret-2"),
        TaskOutput("generate-secret-name", "some_output"),
    ]
    assert [k.env_var for k in config.secret_env[0].keys] == ["USER_NAME"]
    assert pipe.platform_config(pipe.components["comp-generate-secret-name"]) is None


def test_an_unknown_input_source_fails_the_task_naming_it() -> None:
    pipe = load_ir(
        {
            "pipelineInfo": {"name": "p"},
            "root": {
                "dag": {
                    "tasks": {
                        "t": {
                            "componentRef": {"name": "comp-t"},
                            "inputs": {"parameters": {"x": {"fromTheFuture": {}}}},
                        }
                    }
                }
            },
            "components": {"comp-t": {"executorLabel": "exec-t"}},
            "deploymentSpec": {"executors": {"exec-t": {"container": {"image": "i"}}}},
        }
    )
    task = pipe.task_at("root.t")
    assert task is not None
    component = pipe.components["comp-t"]
    decision = plan_child(
        task,
        component,
        pipe.executor_of(component),
        scope(),
        pipeline_name=pipe.name,
        cache_enabled=True,
    )
    assert decision == FailTask(
        TaskType.RUNTIME, "input 'x' has no supported source: ['fromTheFuture']"
    )
