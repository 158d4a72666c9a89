"""The RecordingExecutor stand-in keeps the Executor contract: one on_exit per task."""

from __future__ import annotations

from kfpd.executors.base import Executor, RecordingExecutor, TaskExit
from kfpd.schemas.launch import ContainerSpec, LaunchSpec


def _spec(task_id: str) -> LaunchSpec:
    return LaunchSpec(
        server_url="http://x",
        token="t",
        run_id="r",
        task_id=task_id,
        task_name="n",
        pipeline_root="file:///p",
        container=ContainerSpec(command=["true"]),
    )


def test_recording_executor() -> None:
    executor: Executor = RecordingExecutor()
    assert isinstance(executor, RecordingExecutor)
    exits: list[TaskExit] = []
    for task_id in ("a", "b", "c"):
        executor.submit(_spec(task_id), exits.append)
    assert [s.task_id for s in executor.submitted] == ["a", "b", "c"]
    executor.exit("a")
    executor.cancel("b")
    executor.cancel("gone")  # unknown or finished: nothing happens
    executor.shutdown()
    assert exits == [
        TaskExit("a", 0, None),
        TaskExit("b", -9, "canceled"),
        TaskExit("c", None, "the executor shut down"),
    ]
    assert exits[0].reported and not exits[1].reported
    assert executor.canceled == ["b", "gone"] and executor.running() == []
