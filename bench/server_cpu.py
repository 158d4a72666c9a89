"""Server CPU per task of bench/metadata_write.py's kfpd workload: a figure that holds on a
shared machine, where wall-clock rates swing 2-5x with the load.

Usage::

    .venv/bin/python bench/server_cpu.py [--tasks 500] [--rounds 3] [--log-level warning]

A ``kfpd server --no-orchestrate`` on SQLite gets metadata_write's launcher workload (CreateTask
+ ``:finish`` per task, one keep-alive connection, bare HTTP/1.1 client). Printed per round:
the wall rate (tasks/s) and the server process's user+system CPU (``/proc/<pid>/stat``) from
the ROOT task's CreateTask to the last ``:finish``, per task. The CPU figure moves with code
changes, not with other processes; comparing two checkouts still means running them
alternately in one session (CPU caches and frequency are shared too).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kfpd_server import kfpd_server
from metadata_write import RawCaller, kfpd_workload


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MarkingCaller:
    """The bench's HTTP client, noting the server's CPU when the timed part starts (the ROOT
    task's CreateTask) and ends (the first read after it)."""

    def __init__(self, inner: RawCaller, pid: int) -> None:
        self.inner = inner
        self.pid = pid
        self.marks: list[float] = []

    def call(
        self, method: str, path: str, body: Any, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        starts = not self.marks and method == "POST" and path.endswith("/tasks")
        ends = len(self.marks) == 1 and method == "GET"
        if starts or ends:
            self.marks.append(cpu_seconds(self.pid))
        return self.inner.call(method, path, body, params, headers)

    def close(self) -> None:
        self.inner.close()


def one_round(tasks: int, log_level: str) -> tuple[float, float]:
    """(tasks/s, server CPU ms per task) of one fresh server."""
    os.sync()
    time.sleep(2)  # the previous round's files written back first
    with tempfile.TemporaryDirectory(prefix="kfpd-bench-", dir="/tmp") as tmp:
        data = Path(tmp)
        # The bench helper passes --log-level warning first; a second --log-level wins.
        with kfpd_server("--no-orchestrate", "--log-level", log_level, data_dir=data) as srv:
            http = MarkingCaller(RawCaller(srv.url), srv.process.pid)
            try:
                seconds = kfpd_workload(http, tasks, "launcher", data / "run-token.key")
            finally:
                http.close()
    start, end = http.marks
    return tasks / seconds, 1000 * (end - start) / tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the server's (info: an access line per request, as a default server logs)",
    )
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    cpu: list[float] = []
    for r in range(args.rounds):
        rate, ms = one_round(args.tasks, args.log_level)
        cpu.append(ms)
        print(f"round {r + 1}: {rate:7.1f} tasks/s, server {ms:.2f} ms CPU per task")
    print(
        f"median server CPU {statistics.median(cpu):.2f} ms per task ({args.tasks} tasks, "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )


if __name__ == "__main__":
    main()
