"""Per-task cost of running a no-op lightweight component through kfpd's LocalExecutor.

Anchors (docs/kfp-sdk-wire.md §7, same 2-vCPU VM): kfp.local runs an ``add_one`` task in
0.86 s as shipped (pip prelude) and 0.13 s with the prelude stripped; ``python -m
kfp.dsl.executor_main`` alone takes about 0.12 s. kfpd's target is <= 0.05 s per task.

What it does: starts a kfpd server in-process (uvicorn thread, SQLite in a temp dir, the
executor in the same process as it would be in ``kfpd server``), compiles ``add_one`` with
the kfp SDK, then for each mode runs ``--tasks`` tasks one after the other: create a run and
a RUNTIME task over HTTP (not timed), build the LaunchSpec, ``submit`` it and wait for
``on_exit`` (timed: spec file, launcher start, placeholders, executor_main, output files,
the ``:finish`` report and its transaction, the exit notice). Modes: ``warm`` (pre-forked
worker, the default), ``warm-prefault`` (idle processes also pre-fault their memory),
``cold`` (``python -m kfpd.launcher`` per task) and ``direct`` (``python -m
kfp.dsl.executor_main`` per task: kfp.local's prelude-stripped floor, no server). The first
task of each mode is a warm-up, not counted.

Usage::

    .venv/bin/python bench/launcher_overhead.py
    .venv/bin/python bench/launcher_overhead.py --tasks 50 --modes warm,direct
"""

# No "from __future__ import annotations": kfp reads the component's annotations.
import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from kfp import compiler, dsl

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.domain.tokens import issue_run_token
from kfpd.executors.base import TaskExit
from kfpd.executors.local import LocalExecutor
from kfpd.schemas.launch import ContainerSpec, LaunchSpec

API = "/apis/v2beta1"


@dsl.component(base_image="python:3.11")
def add_one(x: int) -> int:
    return x + 1


def _compile(tmp: Path) -> dict[str, Any]:
    path = tmp / "add_one.yaml"
    compiler.Compiler().compile(add_one, str(path))
    ir: dict[str, Any] = yaml.safe_load(path.read_text())
    return ir


def _serve(data_dir: Path) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(Settings(data_dir=data_dir))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}"


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ir = _compile(tmp)
        self.url = _serve(tmp / "data")
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.secret = Settings(data_dir=tmp / "data").run_token_secret()
        exec_spec = self.ir["deploymentSpec"]["executors"]["exec-add-one"]["container"]
        self.container = ContainerSpec(**{k: exec_spec[k] for k in ("image", "command", "args")})

    def spec(self, x: int) -> LaunchSpec:
        config = {"parameters": {"x": x}}
        body = {"display_name": "b", "pipeline_spec": self.ir, "runtime_config": config}
        run = self.http.post(f"{API}/runs", json=body).json()
        task_body = {"name": "add-one", "type": "RUNTIME", "state": "RUNNING"}
        task_body["scope_path"] = "root.add-one"
        token = issue_run_token(self.secret, run["run_id"])
        task = self.http.post(
            f"{API}/runs/{run['run_id']}/tasks",
            json=task_body,
            headers={"authorization": f"Bearer {token}"},
        ).json()
        root = self.tmp / "root" / run["run_id"]
        return LaunchSpec(
            server_url=self.url,
            token=issue_run_token(self.secret, run["run_id"]),
            run_id=run["run_id"],
            task_id=task["task_id"],
            task_name="add-one",
            pipeline_name="add-one",
            pipeline_root=f"file://{self.tmp / 'root'}",
            container=self.container,
            parameter_values={"x": x},
            output_parameters={"Output": "NUMBER_INTEGER"},
            log_uri=f"file://{root}/add-one/executor-logs",
        )

    def check(self, spec: LaunchSpec, x: int) -> None:
        task = self.http.get(f"{API}/runs/{spec.run_id}/tasks/{spec.task_id}").json()
        value = task["outputs"]["parameters"][0]["value"]
        if task["state"] != "SUCCEEDED" or value != x + 1:
            raise SystemExit(f"task did not succeed: {json.dumps(task)[:500]}")

    def run_executor(self, tasks: int, **options: Any) -> list[float]:
        done = threading.Event()
        exits: list[TaskExit] = []

        def on_exit(exit_: TaskExit) -> None:
            exits.append(exit_)
            done.set()

        executor = LocalExecutor(max_parallel=2, work_root=self.tmp / "work", **options)
        times = []
        try:
            time.sleep(1.0 if options.get("warm", True) else 0)  # let the worker start
            for i in range(tasks + 1):
                spec = self.spec(i)
                done.clear()
                start = time.perf_counter()
                executor.submit(spec, on_exit)
                done.wait(120)
                elapsed = time.perf_counter() - start
                if not exits or not exits[-1].reported:
                    raise SystemExit(f"launcher failed: {exits[-1:]}")
                self.check(spec, i)
                if i:
                    times.append(elapsed)
        finally:
            executor.shutdown()
        return times

    def run_direct(self, tasks: int) -> list[float]:
        """kfp.local's floor: executor_main in a new interpreter, no prelude, no server."""
        container = self.ir["deploymentSpec"]["executors"]["exec-add-one"]["container"]
        source = container["command"][-1]
        module = self.tmp / "direct" / "ephemeral_component.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(source)
        times = []
        for i in range(tasks + 1):
            out = self.tmp / "direct" / str(i)
            ei = {
                "inputs": {"parameterValues": {"x": i}},
                "outputs": {
                    "parameters": {"Output": {"outputFile": str(out / "Output")}},
                    "outputFile": str(out / "executor_output.json"),
                },
            }
            argv = [sys.executable, "-m", "kfp.dsl.executor_main"]
            argv += ["--component_module_path", str(module), "--executor_input", json.dumps(ei)]
            argv += ["--function_to_execute", "add_one"]
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env={"_KFP_RUNTIME": "true"})
            if i:
                times.append(time.perf_counter() - start)
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--modes", default="warm,warm-prefault,cold,direct")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfpd-bench-") as tmp:
        bench = Bench(Path(tmp))
        results = {}
        for mode in args.modes.split(","):
            if mode == "direct":
                results[mode] = bench.run_direct(args.tasks)
            elif mode == "cold":
                results[mode] = bench.run_executor(args.tasks, warm=False)
            elif mode == "warm-prefault":
                results[mode] = bench.run_executor(args.tasks, warm=True, prefault=True)
            elif mode == "warm":
                results[mode] = bench.run_executor(args.tasks, warm=True)
            else:
                raise SystemExit(f"unknown mode {mode!r}")
    print(f"add_one x {args.tasks}, sequential, seconds per task (submit -> exit notice)")
    print(f"{'mode':<14}{'median':>9}{'mean':>9}{'min':>9}{'max':>9}   anchor")
    anchors = {
        "warm": "target <= 0.05",
        "warm-prefault": "",
        "cold": "",
        "direct": "kfp.local, prelude stripped: 0.13",
    }
    for mode, times in results.items():
        print(
            f"{mode:<14}{statistics.median(times):>9.3f}{statistics.mean(times):>9.3f}"
            f"{min(times):>9.3f}{max(times):>9.3f}   {anchors[mode]}"
        )
    print("kfp.local as shipped (pip prelude): 0.86 s per task")


if __name__ == "__main__":
    main()
