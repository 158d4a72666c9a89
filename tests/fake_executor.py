"""An executor for orchestration tests: Python stand-ins for components, reporting through
the HTTP task API the way upstream's launcher does (outputs, then the final state)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kfpd.client.http import KfpdClient
from kfpd.executors.base import TaskExit
from kfpd.schemas.artifacts import Artifact, CreateArtifactRequest
from kfpd.schemas.launch import LaunchSpec
from kfpd.schemas.tasks import IOParameter, IOProducer, PipelineTask, StatusMetadata

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def function_name(spec: LaunchSpec) -> str:
    args = spec.container.args if spec.container else []
    for flag, value in itertools.pairwise(args):
        if flag == "--function_to_execute":
            return value
    return ""


class FunctionExecutor:
    def __init__(self, handlers: dict[str, Handler], workers: int = 4) -> None:
        self.handlers = handlers
        self.pool = ThreadPoolExecutor(workers)
        self.launched: list[LaunchSpec] = []
        self.lock = threading.Lock()

    def submit(self, spec: LaunchSpec, on_exit: Callable[[TaskExit], None]) -> None:
        with self.lock:
            self.launched.append(spec)
        self.pool.submit(self._run, spec, on_exit)

    def _run(self, spec: LaunchSpec, on_exit: Callable[[TaskExit], None]) -> None:
        try:
            with KfpdClient(spec.server_url, token=spec.token) as client:
                self._report(client, spec)
        finally:
            on_exit(TaskExit(spec.task_id, 0))

    def _report(self, client: KfpdClient, spec: LaunchSpec) -> None:
        name = function_name(spec)
        try:
            inputs = dict(spec.parameter_values)
            inputs["__artifacts__"] = {
                key: [a.uri for a in arts] for key, arts in spec.input_artifacts.items()
            }
            outputs = self.handlers[name](inputs)
        except Exception as exc:
            client.update_task(
                spec.run_id,
                spec.task_id,
                PipelineTask(state="FAILED", status_metadata=StatusMetadata(message=repr(exc))),
            )
            return
        requests = [
            CreateArtifactRequest(
                artifact=Artifact(name=key, type="Dataset", uri=out.uri),
                run_id=spec.run_id,
                task_id=spec.task_id,
                producer_key=key,
            )
            for key, out in spec.output_artifacts.items()
        ]
        if requests:
            client.create_artifacts_bulk(requests)
        params = [
            IOParameter(
                value=value,
                type="OUTPUT",
                parameter_key=key,
                # As the launcher's :finish records them (services/execution.py).
                producer=IOProducer(task_name=spec.task_name, iteration=spec.iteration_index),
            )
            for key, value in outputs.items()
        ]
        client.update_task(
            spec.run_id,
            spec.task_id,
            PipelineTask(state="SUCCEEDED", outputs={"parameters": params}),
        )

    def cancel(self, task_id: str) -> None:
        pass

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
