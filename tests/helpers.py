"""Test helpers: compiled pipelines and request shorthands."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).parent
JSON = {"content-type": "application/json"}  # for requests whose body is given as bytes


@functools.cache
def compiled(name: str) -> dict[str, Any]:
    """Compile a pipeline with the real kfp SDK: ``name`` is the pipeline function in
    tests/pipelines/<name>.py, or ``module:function``."""
    import importlib
    import tempfile

    from kfp import compiler

    module_name, _, name = name.rpartition(":") if ":" in name else (name, "", name)
    module = importlib.import_module(f"tests.pipelines.{module_name}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(getattr(module, name), str(path))
        spec: dict[str, Any] = yaml.safe_load(path.read_text())
        return spec


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


class RunTokenAuth(httpx.Auth):
    """httpx auth for tests playing the launcher: a request that writes to a run's tasks,
    artifacts or links carries that run's token (as a launcher would), unless it names its own
    Authorization. findCached names no run: ``cache_run`` says whose token it shows."""

    def __init__(self, secret: bytes, cache_run: str | None = None) -> None:
        self.secret = secret
        self.cache_run = cache_run

    def auth_flow(self, request: Any) -> Any:
        if "authorization" not in request.headers:
            run_id = self._run_of(request)
            if run_id:
                from kfpd.domain.tokens import issue_run_token

                request.headers["authorization"] = f"Bearer {issue_run_token(self.secret, run_id)}"
        yield request

    def _run_of(self, request: Any) -> str | None:
        import json
        import re

        if request.method == "GET" or request.url.path.endswith((":finish", "/logs")):
            return None  # the launcher's own calls: their tests show tokens themselves
        path = request.url.path
        match = re.match(r"^/apis/v2beta1/runs/([^/:]+)/tasks", path)
        if match:
            return match.group(1)
        if path.endswith("/tasks:findCached"):
            return self.cache_run
        if not re.match(r"^/apis/v2beta1/(artifacts|artifact_tasks)(:batchCreate)?$", path):
            return None
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            return None
        items = (
            body.get("artifacts")
            or body.get("artifact_tasks")
            or [body.get("artifact_task") or body]
        )
        runs = {i.get("run_id") for i in items if isinstance(i, dict) and i.get("run_id")}
        return runs.pop() if len(runs) == 1 else None


def fan_spec(width: int) -> dict[str, Any]:
    """IR whose root DAG holds ``width`` independent tasks of one component: the run ends when
    all of them have."""
    tasks = {
        f"t{i}": {"componentRef": {"name": "comp-t"}, "taskInfo": {"name": f"t{i}"}}
        for i in range(width)
    }
    return {
        "pipelineInfo": {"name": "fan"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.0",
        "deploymentSpec": {
            "executors": {"exec-t": {"container": {"image": "x", "command": ["true"]}}}
        },
        "components": {"comp-t": {"executorLabel": "exec-t"}},
        "root": {"dag": {"tasks": tasks}},
    }
