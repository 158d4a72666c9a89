"""Per-task overhead: kfpd vs kfp.local's SubprocessRunner, side by side in one run.

Usage::

    .venv/bin/python bench/overhead.py [--reps 3] [--skip-shipped]

Pipelines (every step ``add_one(x) -> x + 1``, caching off):

* chain-10: ten steps, each consuming the previous output (result 10);
* fanout-20: twenty independent steps.

Systems:

* kfp.local as shipped: ``SubprocessRunner(use_venv=False)``; each task runs the IR's
  ``pip install kfp==<version> --no-deps`` prelude, then ``executor_main``;
* kfp.local stripped: the same with the pip prelude removed (monkeypatched);
* kfpd: a ``kfpd server`` subprocess with its local executor; the run is submitted with
  ``kfp.Client`` and timed from submission until ``wait_for_run_completion`` returns.

Printed per system and pipeline: median wall seconds (kfpd: the run's created_at to
finished_at on the server; compiling is not timed), seconds per task, and busy cores (all
CPUs' busy time / wall, from /proc/stat: 2.0 = both cores busy on this machine).
Target: kfpd <= 0.05 s per task on the chain; the fan-out keeps every core busy.
"""

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from kfp import dsl
from kfpd_server import kfpd_server

from kfpd.domain.timeutil import parse_rfc3339


@dsl.component(base_image="python:3.11")
def add_one(x: int) -> int:
    return x + 1


@dsl.pipeline(name="chain-10")
def chain_10(start: int = 0) -> int:
    step = add_one(x=start).set_caching_options(False)
    for _ in range(9):
        step = add_one(x=step.output).set_caching_options(False)
    return step.output


@dsl.pipeline(name="fanout-20")
def fanout_20() -> None:
    for i in range(20):
        add_one(x=i).set_caching_options(False)


PIPELINES: dict[str, tuple[Callable[..., Any], int]] = {
    "chain-10": (chain_10, 10),
    "fanout-20": (fanout_20, 20),
}


def _strip_prelude() -> Callable[[], None]:
    from kfp.local import subprocess_task_handler as handler

    original = handler.SubprocessTaskHandler.__init__

    def init(self: Any, image: str, full_command: list[str], *args: Any, **kwargs: Any) -> None:
        if full_command[:2] == ["sh", "-c"] and "pip install" in full_command[2]:
            full_command = full_command[3:]  # `sh -ec <program> <source> <args>` directly
        original(self, image, full_command, *args, **kwargs)

    handler.SubprocessTaskHandler.__init__ = init  # type: ignore[method-assign]

    def undo() -> None:
        handler.SubprocessTaskHandler.__init__ = original  # type: ignore[method-assign]

    return undo


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy, total = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / total if total else 0.0


def time_kfp_local(pipeline: Callable[..., Any], stripped: bool) -> tuple[float, float]:
    from kfp import local

    undo = _strip_prelude() if stripped else None
    try:
        with tempfile.TemporaryDirectory() as root:
            local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
            cpu = _cpu_times()
            started = time.perf_counter()
            pipeline()
            return time.perf_counter() - started, _busy_cores(cpu, _cpu_times())
    finally:
        if undo:
            undo()


def time_kfpd(url: str, package: str) -> tuple[float, float]:
    """Seconds from the run's creation to its end (server clock), and busy cores meanwhile."""
    import httpx
    import kfp

    client = kfp.Client(host=url)
    cpu = _cpu_times()
    result = client.create_run_from_pipeline_package(package, arguments={}, enable_caching=False)
    run = client.wait_for_run_completion(result.run_id, timeout=600, sleep_duration=0.02)
    busy = _busy_cores(cpu, _cpu_times())
    if str(run.state) != "SUCCEEDED":
        raise RuntimeError(f"kfpd run ended {run.state}")
    detail = httpx.get(f"{url}/apis/v2beta1/runs/{result.run_id}").json()
    wall = (parse_rfc3339(detail["finished_at"]) - parse_rfc3339(detail["created_at"])) / 1e6
    return wall, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-shipped", action="store_true", help="skip kfp.local as shipped")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, reps: {args.reps} (median shown)")
    from kfp import compiler

    rows: list[tuple[str, str, float, int, str]] = []
    with tempfile.TemporaryDirectory() as tmp, kfpd_server() as server:
        for name, (pipeline, tasks) in PIPELINES.items():
            package = f"{tmp}/{name}.yaml"
            compiler.Compiler().compile(pipeline, package)  # not timed
            time_kfpd(server.url, package)  # warm-up: worker fork server, imports
            runs = [time_kfpd(server.url, package) for _ in range(args.reps)]
            wall = statistics.median(w for w, _ in runs)
            busy = statistics.median(b for _, b in runs)
            rows.append(("kfpd", name, wall, tasks, f"busy cores {busy:.1f}"))
    for stripped in (True, False):
        if not stripped and args.skip_shipped:
            continue
        label = "kfp.local stripped" if stripped else "kfp.local as shipped"
        for name, (pipeline, tasks) in PIPELINES.items():
            runs = [time_kfp_local(pipeline, stripped) for _ in range(args.reps)]
            wall = statistics.median(w for w, _ in runs)
            busy = statistics.median(b for _, b in runs)
            rows.append((label, name, wall, tasks, f"busy cores {busy:.1f}"))
    print(f"{'system':<22}{'pipeline':<11}{'wall s':>8}{'s/task':>8}  note")
    for system, name, wall, tasks, note in rows:
        print(f"{system:<22}{name:<11}{wall:>8.2f}{wall / tasks:>8.3f}  {note}")
    chain = next(r for r in rows if r[0] == "kfpd" and r[1] == "chain-10")
    per_task = chain[2] / chain[3]
    verdict = "met" if per_task <= 0.05 else "MISSED"
    print(f"kfpd chain overhead {per_task:.3f} s/task (target <= 0.05): {verdict}")


if __name__ == "__main__":
    main()
