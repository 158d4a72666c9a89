"""A restarted server adopts tasks its executor still runs (Kubernetes pods outlive the
server) instead of failing them; the adopted task then finishes and the run goes on."""

from __future__ import annotations

import threading
import time
from typing import Any

from kfpd.client.http import KfpdClient
from kfpd.executors.base import ExitCallback, TaskExit
from kfpd.launcher.reporter import Reporter
from kfpd.schemas.launch import FinishTaskRequest, LaunchSpec
from tests.test_run_lifecycle import _start, _task, wait_final


class KeptExecutor:
    """Tasks that keep running whatever the server does, like pods."""

    def __init__(self, adopt: bool) -> None:
        self.can_adopt = adopt
        self.submitted: list[LaunchSpec] = []
        self.adopted: dict[str, ExitCallback] = {}
        self.asked: dict[str, str] = {}
        self.arrived = threading.Event()

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        del on_exit  # never exits while this server runs
        self.submitted.append(spec)
        self.arrived.set()

    def adopt(self, running: dict[str, str], on_exit: ExitCallback) -> set[str]:
        self.asked = dict(running)
        if not self.can_adopt:
            return set()
        self.adopted = {task_id: on_exit for task_id in running}
        return set(running)

    def cancel(self, task_id: str) -> None:
        del task_id

    def shutdown(self) -> None:
        pass


def test_adopted_task_keeps_running_and_finishes(orchestrated_server: Any) -> None:
    first = KeptExecutor(adopt=False)
    url_a = orchestrated_server(first)
    with KfpdClient(url_a) as client:
        run_id = _start(client, "ray_pipelines:sleep", pid_file="/nonexistent", seconds=1)
        assert first.arrived.wait(20)
    orchestrated_server.stop(url_a)
    spec = first.submitted[0]

    second = KeptExecutor(adopt=True)
    url_b = orchestrated_server(second)
    deadline = time.monotonic() + 10
    while spec.task_id not in second.adopted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.asked == {spec.task_id: run_id}
    time.sleep(0.5)  # the resume step ran: the task must still be RUNNING, not failed
    with KfpdClient(url_b) as client:
        run = client.get_run(run_id, full=True)
        assert _task(run.tasks or [], spec.task_name).state.name == "RUNNING"
    # The pod finishes: its launcher reports, then the executor sees it exit.
    reporter = Reporter(spec.server_url.replace(url_a, url_b), spec.token)
    done = FinishTaskRequest(state="SUCCEEDED", output_parameters={"Output": "woke"})
    reporter.finish(spec.run_id, spec.task_id, done)
    reporter.close()
    second.adopted[spec.task_id](TaskExit(spec.task_id, 0))
    with KfpdClient(url_b) as client:
        run = wait_final(client, run_id)
    assert run.state and run.state.name == "SUCCEEDED", run.error
    task = _task(run.tasks or [], spec.task_name)
    history = [h.state.name for h in task.state_history or [] if h.state]
    assert history == ["RUNNING", "SUCCEEDED"], history
    assert second.submitted == [], "adopted, not launched again"
