"""Helpers for launcher/executor tests: compile components, create tasks, build LaunchSpecs
the way the orchestrator would (outputs provisioned under the pipeline root)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from kfpd.config import Settings
from kfpd.domain.tokens import issue_run_token
from kfpd.executors.base import TaskExit
from kfpd.schemas.launch import (
    ContainerSpec,
    EnvVar,
    LaunchSpec,
    OutputArtifactSpec,
    RuntimeArtifactSpec,
)
from tests.helpers import RunTokenAuth

API = "/apis/v2beta1"


def compile_component(component: Any) -> dict[str, Any]:
    """The IR of one component compiled on its own with the kfp SDK."""
    from kfp import compiler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "component.yaml"
        compiler.Compiler().compile(component, str(path))
        ir: dict[str, Any] = yaml.safe_load(path.read_text())
        return ir


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


class Server:
    """A live kfpd server seen by a test: creates runs and tasks, issues run tokens."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.secret = Settings(data_dir=data_dir).run_token_secret()
        self.http = httpx.Client(base_url=url, timeout=30, auth=RunTokenAuth(self.secret))

    def new_task(self, ir: dict[str, Any], name: str | None = None) -> tuple[str, str]:
        """A run of ``ir`` with one RUNTIME task (no parent, so the run stays open)."""
        # The run needs its required pipeline parameters; their values do not matter here.
        defaults = {"STRING": "", "NUMBER_INTEGER": 0, "NUMBER_DOUBLE": 0.0, "BOOLEAN": False}
        params = {
            k: defaults.get(v["parameterType"], [])
            for k, v in ir["root"].get("inputDefinitions", {}).get("parameters", {}).items()
            if not v.get("isOptional") and "defaultValue" not in v
        }
        body = {"display_name": "t", "pipeline_spec": ir, "runtime_config": {"parameters": params}}
        run = ok(self.http.post(f"{API}/runs", json=body))
        task_name = name or next(iter(ir["root"]["dag"]["tasks"]))
        task = ok(
            self.http.post(
                f"{API}/runs/{run['run_id']}/tasks",
                json={
                    "name": task_name,
                    "type": "RUNTIME",
                    "state": "RUNNING",
                    "scope_path": f"root.{task_name}",
                },
            )
        )
        return run["run_id"], task["task_id"]

    def task(self, run_id: str, task_id: str) -> dict[str, Any]:
        return ok(self.http.get(f"{API}/runs/{run_id}/tasks/{task_id}"))

    def log(self, run_id: str, task_id: str) -> dict[str, Any]:
        return ok(self.http.get(f"{API}/runs/{run_id}/tasks/{task_id}/logs"))

    def spec(
        self,
        ir: dict[str, Any],
        run_id: str,
        task_id: str,
        pipeline_root: Path,
        *,
        params: dict[str, Any] | None = None,
        inputs: dict[str, list[RuntimeArtifactSpec]] | None = None,
        task_name: str | None = None,
    ) -> LaunchSpec:
        return build_spec(
            ir,
            server_url=self.url,
            token=issue_run_token(self.secret, run_id),
            run_id=run_id,
            task_id=task_id,
            pipeline_root=pipeline_root,
            params=params,
            inputs=inputs,
            task_name=task_name,
        )


def build_spec(
    ir: dict[str, Any],
    *,
    server_url: str,
    token: str,
    run_id: str,
    task_id: str,
    pipeline_root: Path,
    params: dict[str, Any] | None = None,
    inputs: dict[str, list[RuntimeArtifactSpec]] | None = None,
    task_name: str | None = None,
) -> LaunchSpec:
    task_name = task_name or next(iter(ir["root"]["dag"]["tasks"]))
    task = ir["root"]["dag"]["tasks"][task_name]
    component = ir["components"][task["componentRef"]["name"]]
    container = ir["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    outs = component.get("outputDefinitions", {})
    task_root = f"file://{pipeline_root}/{run_id}/{task_name}"
    return LaunchSpec(
        server_url=server_url,
        token=token,
        run_id=run_id,
        task_id=task_id,
        task_name=task_name,
        pipeline_name=ir["pipelineInfo"]["name"],
        run_display_name="test run",
        run_create_time="2026-01-02T03:04:05Z",
        pipeline_root=f"file://{pipeline_root}",
        container=ContainerSpec(
            image=container.get("image", ""),
            command=container.get("command", []),
            args=container.get("args", []),
            env=[EnvVar(**e) for e in container.get("env", [])],
        ),
        parameter_values=params or {},
        input_artifacts=inputs or {},
        output_parameters={k: v["parameterType"] for k, v in outs.get("parameters", {}).items()},
        output_artifacts={
            k: OutputArtifactSpec(
                name=k,
                uri=f"{task_root}/{k}",
                schema_title=v["artifactType"]["schemaTitle"],
                schema_version=v["artifactType"].get("schemaVersion", "0.0.1"),
            )
            for k, v in outs.get("artifacts", {}).items()
        },
        log_uri=f"{task_root}/executor-logs",
    )


class Exits:
    """Collects TaskExit callbacks; ``wait`` blocks until a task's exit arrived."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.exits: dict[str, TaskExit] = {}
        self.calls: list[str] = []

    def __call__(self, exit_: TaskExit) -> None:
        with self._cond:
            self.calls.append(exit_.task_id)
            self.exits[exit_.task_id] = exit_
            self._cond.notify_all()

    def wait(self, task_id: str, timeout: float = 60) -> TaskExit:
        deadline = time.monotonic() + timeout
        with self._cond:
            while task_id not in self.exits:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"task {task_id} did not exit in {timeout}s")
                self._cond.wait(left)
            return self.exits[task_id]
