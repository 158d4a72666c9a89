"""Run lifecycle under the orchestrator: exit handler after a failure, retry on the 2nd
attempt, cache hits on a second run, OneOf over artifacts and an importer, terminate, and a
server restart in the middle of a run. Components are Python stand-ins (fake_executor)."""

from __future__ import annotations

import threading
import time
from typing import Any

from kfpd.client.http import KfpdClient
from kfpd.schemas.runs import RunCreate
from kfpd.schemas.tasks import PipelineTask
from tests.fake_executor import FunctionExecutor
from tests.helpers import compiled
from tests.test_orchestrator import params_of, wait_final


def _start(client: KfpdClient, pipeline: str, **parameters: Any) -> str:
    created = client.create_run(
        RunCreate(
            display_name=pipeline,
            pipeline_spec=compiled(pipeline),
            runtime_config={"parameters": parameters},
        )
    )
    return created.run_id or ""


def _task(tasks: list[PipelineTask], name: str) -> PipelineTask:
    found = [t for t in tasks if t.name == name]
    assert len(found) == 1, [t.name for t in tasks]
    return found[0]


def _state(task: PipelineTask) -> str:
    return task.state.name if task.state else ""


def test_exit_handler_runs_after_failure(orchestrated_server: Any) -> None:
    def fail(p: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(p["message"])

    handlers = {
        "print_op": lambda p: {"Output": p["message"]},
        "fail_op": fail,
        "exit_op": lambda p: {"Output": f"{p['user_input']}:{p['status']['state']}"},
    }
    url = orchestrated_server(FunctionExecutor(handlers))
    with KfpdClient(url) as client:
        run = wait_final(client, _start(client, "lifecycle:exit_after_failure", message="boom"))
    assert run.state and run.state.name == "FAILED"
    assert run.error and "fail-op" in str(run.error)
    tasks = run.tasks or []
    assert _state(_task(tasks, "fail-op")) == "FAILED"
    assert "boom" in (_task(tasks, "fail-op").status_metadata.message or "")  # type: ignore[union-attr]
    handler = _task(tasks, "exit-handler-1")
    assert handler.type and handler.type.name == "EXIT_HANDLER" and _state(handler) == "FAILED"
    exit_task = _task(tasks, "exit-op")
    assert _state(exit_task) == "SUCCEEDED"
    status = params_of(exit_task)["status"]
    assert status["state"] == "FAILED" and status["pipelineTaskName"] == "exit-handler-1"
    assert "boom" in status["error"]["message"]
    assert params_of(exit_task, outputs=True) == {"Output": "cleanup:FAILED"}


def test_retry_succeeds_on_second_attempt(orchestrated_server: Any) -> None:
    calls: list[int] = []

    def flaky(p: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return {"Output": p["x"]}

    url = orchestrated_server(FunctionExecutor({"flaky": flaky}))
    with KfpdClient(url) as client:
        run = wait_final(client, _start(client, "lifecycle:retrying", x=7))
    assert run.state and run.state.name == "SUCCEEDED", run.error
    task = _task(run.tasks or [], "flaky")
    assert len(calls) == 2
    history = [h.state.name for h in task.state_history or [] if h.state]
    assert history == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    assert params_of(task, outputs=True) == {"Output": 7}
    assert params_of(_task(run.tasks or [], "ROOT"), outputs=True) == {"Output": 7}


def test_second_run_hits_the_cache(orchestrated_server: Any) -> None:
    executor = FunctionExecutor(
        {
            "make_dataset": lambda _p: {},
            "read_dataset": lambda p: {"Output": p["__artifacts__"]["data"][0]},
        }
    )
    url = orchestrated_server(executor)
    with KfpdClient(url) as client:
        first = wait_final(client, _start(client, "lifecycle:cacheable", text="x"))
        launched = len(executor.launched)
        second = wait_final(client, _start(client, "lifecycle:cacheable", text="x"))
        third = wait_final(client, _start(client, "lifecycle:cacheable", text="other"))
    assert first.state and first.state.name == "SUCCEEDED"
    assert second.state and second.state.name == "SUCCEEDED"
    assert launched == 2 and len(executor.launched) == 4  # second run launched nothing
    for name in ("make-dataset", "read-dataset"):
        old, new = _task(first.tasks or [], name), _task(second.tasks or [], name)
        assert _state(new) == "CACHED" and new.cache_fingerprint == old.cache_fingerprint
        assert _state(_task(third.tasks or [], name)) == "SUCCEEDED"
    # The cached task links the cached artifact and carries the cached outputs.
    old_make, new_make = (
        _task(first.tasks or [], "make-dataset"),
        _task(second.tasks or [], "make-dataset"),
    )
    old_ids = [a.artifact_id for io in old_make.outputs.artifacts or [] for a in io.artifacts or []]  # type: ignore[union-attr]
    new_ids = [a.artifact_id for io in new_make.outputs.artifacts or [] for a in io.artifacts or []]  # type: ignore[union-attr]
    assert old_ids and old_ids == new_ids
    assert params_of(_task(second.tasks or [], "ROOT"), outputs=True) == params_of(
        _task(first.tasks or [], "ROOT"), outputs=True
    )


def test_oneof_artifacts_and_importer(orchestrated_server: Any) -> None:
    executor = FunctionExecutor(
        {
            "make_dataset": lambda _p: {},
            "read_dataset": lambda p: {"Output": p["__artifacts__"]["data"][0]},
        }
    )
    url = orchestrated_server(executor)
    with KfpdClient(url) as client:
        run = wait_final(client, _start(client, "lifecycle:oneof_artifacts", flag="b"))
    assert run.state and run.state.name == "SUCCEEDED", run.error
    tasks = run.tasks or []
    made_b = _task(tasks, "make-dataset-2")
    uri_b = (made_b.outputs.artifacts or [])[0].artifacts[0].uri  # type: ignore[index,union-attr]
    importer = _task(tasks, "importer")
    assert importer.type and importer.type.name == "IMPORTER" and _state(importer) == "SUCCEEDED"
    imported = (importer.outputs.artifacts or [])[0].artifacts[0]  # type: ignore[index,union-attr]
    assert imported.uri == "file:///tmp/kfpd-test-imported.txt"
    readers = {
        params_of(t, outputs=True)["Output"]
        for t in tasks
        if t.name and t.name.startswith("read-dataset")
    }
    assert readers == {uri_b, imported.uri}
    # The OneOf output is linked on the condition-branches DAG as ONE_OF_OUTPUT.
    wrapper = _task(tasks, "condition-branches-1")
    types = {io.type.name for io in wrapper.outputs.artifacts or [] if io.type}  # type: ignore[union-attr]
    assert types == {"ONE_OF_OUTPUT"}


def test_terminate_a_running_run(orchestrated_server: Any) -> None:
    release = threading.Event()

    def slow(p: dict[str, Any]) -> dict[str, Any]:
        release.wait(30)
        return {"Output": p["seconds"]}

    url = orchestrated_server(FunctionExecutor({"slow": slow}))
    try:
        with KfpdClient(url) as client:
            run_id = _start(client, "lifecycle:slow_pipeline", seconds=30)
            deadline = time.monotonic() + 20
            while not any(t.name == "slow" for t in client.get_run(run_id, full=True).tasks or []):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            client.terminate_run(run_id)
            run = wait_final(client, run_id)
    finally:
        release.set()
    assert run.state and run.state.name == "CANCELED"
    assert _state(_task(run.tasks or [], "slow")) == "CANCELED"


def test_server_restart_mid_run_resumes(orchestrated_server: Any) -> None:
    stuck = threading.Event()
    reading_started = threading.Event()

    def hang(_p: dict[str, Any]) -> dict[str, Any]:
        reading_started.set()
        stuck.wait(30)  # the "process" never reports: the server goes away meanwhile
        raise RuntimeError("never reported")

    first = FunctionExecutor({"make_dataset": lambda _p: {}, "read_dataset": hang})
    url_a = orchestrated_server(first)
    try:
        with KfpdClient(url_a) as client:
            run_id = _start(client, "lifecycle:resumable", text="hi")
            assert reading_started.wait(20)
        orchestrated_server.stop(url_a)

        second = FunctionExecutor(
            {"make_dataset": lambda _p: {}, "read_dataset": lambda _p: {"Output": "read"}}
        )
        url_b = orchestrated_server(second)
        with KfpdClient(url_b) as client:
            run = wait_final(client, run_id)
    finally:
        stuck.set()
    assert run.state and run.state.name == "SUCCEEDED", run.error
    # Only the interrupted task ran again; the finished one was kept.
    assert [s.task_name for s in second.launched] == ["read-dataset"]
    read = _task(run.tasks or [], "read-dataset")
    history = [h.state.name for h in read.state_history or [] if h.state]
    assert history == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    assert any(
        "server restarted" in ((h.error.message if h.error else "") or "")
        for h in read.state_history or []
    )
