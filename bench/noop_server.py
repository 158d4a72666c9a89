"""``kfpd server`` whose executor runs no user code: each task is reported SUCCEEDED at once.

Usage (as ``kfpd``; bench/fanout.py starts it with ``--executor noop``)::

    .venv/bin/python bench/noop_server.py server --port 8888 --data-dir /tmp/d

Everything but the executor is the real server (same CLI, settings, engine, routes). The
no-op executor reports through the launcher's own client (``kfpd.launcher.reporter``): one
``:finish`` per task with its output parameters, its executor-logs URI, a log line and a
placement, then ``on_exit`` with return code 0 — the same calls and the same order as a
launcher process, without starting one. So the server's cost per task is what a run measures.

A task's output parameters come from ``HANDLERS`` (the component's Python function name ->
outputs from its inputs); other components report no outputs.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kfpd.api.app as app_module
from kfpd.cli.main import main
from kfpd.executors.base import ExitCallback, TaskExit, deliver_exit
from kfpd.executors.registry import ExecutorConfig
from kfpd.launcher.reporter import Reporter
from kfpd.schemas.launch import FinishTaskRequest, LaunchSpec

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# bench/fanout.py's components.
HANDLERS: dict[str, Handler] = {
    "make_items": lambda p: {"Output": list(range(int(p["n"])))},
    "noop": lambda p: {"Output": p["i"]},
}


def function_name(spec: LaunchSpec) -> str:
    """The Python function a kfp lightweight component runs (``--function_to_execute F``)."""
    for flag, value in itertools.pairwise(spec.container.args):
        if flag == "--function_to_execute":
            return value
    return ""


class NoopExecutor:
    """Reports each task as a launcher would, from ``workers`` threads (the tasks at once)."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="noop-task")
        self._where = {"pod_name": f"noop executor on {socket.gethostname()}"}

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        self._pool.submit(self._run, spec, on_exit)

    def _run(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        handler = HANDLERS.get(function_name(spec))
        result = FinishTaskRequest(
            state="SUCCEEDED",
            output_parameters=handler(dict(spec.parameter_values)) if handler else {},
            log_uri=spec.log_uri or None,
            log_text="noop\n",
            placement=self._where,
        )
        reporter = Reporter(spec.server_url, spec.token)
        code = 0
        try:
            reporter.finish(spec.run_id, spec.task_id, result)
        except Exception:
            code = 3  # as the launcher's EXIT_NOT_REPORTED
        finally:
            reporter.close()
        deliver_exit(on_exit, TaskExit(spec.task_id, code, None if code == 0 else "not reported"))

    def cancel(self, task_id: str) -> None:
        pass  # a task ends as soon as it is reported

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _noop_executor(config: ExecutorConfig) -> NoopExecutor:
    return NoopExecutor(config.max_parallel or os.cpu_count() or 1)


if __name__ == "__main__":
    app_module.create_executor = _noop_executor  # type: ignore[assignment]
    main()
