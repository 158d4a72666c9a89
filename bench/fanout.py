"""ParallelFor fan-out at several sizes, side by side in one run: does the cost per task stay flat?

Usage::

    .venv/bin/python bench/fanout.py [--items 1000,10000] [--executor local|noop]
        [--chain 1] [--parallelism 0] [--max-parallel 0] [--py-spy DIR]

Each size runs on its own fresh ``kfpd server`` (SQLite): ``make_items(n) -> list``, then a
ParallelFor over its output with one ``noop(i)`` component per item, submitted with
``kfp.Client`` and polled with ListRuns (see :func:`wait_final`). Per size: wall time (the
run's created_at to finished_at, server clock), tasks/s (the loop's tasks / wall), the server
process's CPU per task (user + system of the server process only) and its peak RSS (VmHWM).

``--chain K`` makes each iteration run K noop tasks in a row (tasks = items x K): then steps
also advance an iteration's own DAG, not only end it. ``--parallelism L`` limits the loop to L
iterations at once (each ended iteration then starts the next).

Executors: ``local`` is the real local executor (a launcher process per task, the user's code
runs); ``noop`` is ``bench/noop_server.py``: the same server, but each task is reported
SUCCEEDED at once through the launcher's client (same ``:finish`` call, same exit notice), so
the server's own cost per task dominates and 10,000 items take minutes, not most of an hour.
Its reporting threads run in the server process, so its CPU per task includes them.

Verdict (issue 9): tasks/s at the largest size >= 0.8x tasks/s at the smallest (a size given
twice, ``--items 1000,10000,1000``, counts by its mean: it brackets the big run); peak server
RSS < 1 GiB; every run SUCCEEDED. ``--py-spy DIR`` records each server with py-spy (collapsed
stacks, ``DIR/fanout-<executor>-<items>.txt``).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import dsl
from kfpd_server import kfpd_server

from kfpd.domain.timeutil import parse_rfc3339

BENCH = Path(__file__).resolve().parent
FLAT_RATIO = 0.8  # tasks/s at the largest size over the smallest, at least
RSS_LIMIT_MIB = 1024
FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


@dsl.component(base_image="python:3.11")
def noop(i: int) -> int:
    return i


@dsl.component(base_image="python:3.11")
def make_items(n: int) -> list:
    return list(range(n))


def fanout_pipeline(chain: int, parallelism: int = 0) -> Any:
    """The loop's iterations each run ``chain`` noop tasks in a row (1: one task); at most
    ``parallelism`` iterations at once (0: no limit)."""

    @dsl.pipeline(name="fanout")
    def fanout(n: int = 10000) -> None:
        items = make_items(n=n).set_caching_options(False)
        with dsl.ParallelFor(items.output, parallelism=parallelism) as item:
            step = noop(i=item).set_caching_options(False)
            for _ in range(chain - 1):
                step = noop(i=step.output).set_caching_options(False)

    return fanout


@dataclass
class Result:
    items: int
    tasks: int  # the loop's tasks: items x chain
    state: str
    wall: float
    cpu: float  # server process CPU seconds during the run
    peak_mib: float

    @property
    def rate(self) -> float:
        return self.tasks / self.wall

    @property
    def cpu_ms_per_task(self) -> float:
        return self.cpu / self.tasks * 1000


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_size(
    items: int, chain: int, parallelism: int, executor: str, max_parallel: int, py_spy: Path | None
) -> Result:
    import kfp

    command = [sys.executable, str(BENCH / "noop_server.py")] if executor == "noop" else None
    extra = ["--max-parallel", str(max_parallel)]
    with kfpd_server(*extra, command=command) as server:
        profiler = None
        if py_spy is not None:
            py_spy.mkdir(parents=True, exist_ok=True)
            out = py_spy / f"fanout-{executor}-{items}.txt"
            profiler = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                 str(server.process.pid), "--format", "raw", "--output", str(out),
                 "--rate", "50", "--nonblocking", "--threads"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        client = kfp.Client(host=server.url)
        cpu_before = server.cpu_seconds()
        result = client.create_run_from_pipeline_func(
            fanout_pipeline(chain, parallelism), arguments={"n": items}, enable_caching=False
        )
        run = wait_final(server.url, result.run_id)
        cpu = server.cpu_seconds() - cpu_before
        peak = server.peak_rss_mib()
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its file and exits
            profiler.wait(60)
    wall = (parse_rfc3339(run["finished_at"]) - parse_rfc3339(run["created_at"])) / 1e6
    return Result(items, items * chain, str(run["state"]), wall, cpu, peak)


def wait_final(url: str, run_id: str, timeout: float = 7200) -> dict[str, Any]:
    """Poll ListRuns (a run without its tasks) once a second until the run is final.

    Not GetRun, as ``kfp.Client.wait_for_run_completion`` does: GetRun carries every task's
    details (as upstream's), so each poll of a 10,000-task run costs the server ~0.5 s of CPU
    and the bench would measure its own polling."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        reply = httpx.get(f"{url}/apis/v2beta1/runs", params={"page_size": 100}, timeout=60)
        reply.raise_for_status()
        run = next((r for r in reply.json().get("runs", []) if r["run_id"] == run_id), None)
        if run is not None and run.get("state") in FINAL:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} not final after {timeout:.0f} s")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument("--executor", choices=("local", "noop"), default="local")
    parser.add_argument("--chain", type=int, default=1, help="noop tasks in a row per iteration")
    parser.add_argument(
        "--parallelism", type=int, default=0, help="ParallelFor's parallelism (0: no limit)"
    )
    parser.add_argument(
        "--max-parallel", type=int, default=0, help="tasks at once (0: CPU count, the default)"
    )
    parser.add_argument("--py-spy", type=Path, default=None, help="profile each server into DIR")
    args = parser.parse_args()
    sizes = [int(s) for s in args.items.split(",") if s.strip()]
    print(
        f"executor: {args.executor}, cpus: {os.cpu_count()}, sizes: {sizes}, "
        f"tasks per iteration: {args.chain}, parallelism: {args.parallelism or 'no limit'}"
    )
    results = []
    for items in sizes:
        load = _load()
        started = time.perf_counter()
        res = run_size(
            items, args.chain, args.parallelism, args.executor, args.max_parallel, args.py_spy
        )
        results.append(res)
        print(
            f"items {res.items:>6}: {res.state}, wall {res.wall:7.1f} s, "
            f"{res.rate:6.1f} tasks/s, server CPU {res.cpu_ms_per_task:5.1f} ms/task, "
            f"peak RSS {res.peak_mib:4.0f} MiB (load before {load}; "
            f"{time.perf_counter() - started:.0f} s with start-up)",
            flush=True,
        )
    ok = all(r.state == "SUCCEEDED" and r.peak_mib < RSS_LIMIT_MIB for r in results)
    by_size: dict[int, list[Result]] = {}
    for res in results:
        by_size.setdefault(res.items, []).append(res)
    if len(by_size) >= 2:
        # A size given twice (1000,10000,1000) counts by its mean: it brackets the big run.
        small, large = min(by_size), max(by_size)
        rate = {n: statistics.mean(r.rate for r in by_size[n]) for n in (small, large)}
        cpu = {n: statistics.mean(r.cpu_ms_per_task for r in by_size[n]) for n in (small, large)}
        ratio = rate[large] / rate[small]
        ok = ok and ratio >= FLAT_RATIO
        print(
            f"tasks/s at {large} / at {small}: {rate[large]:.1f} / {rate[small]:.1f} = "
            f"{ratio:.2f} (target >= {FLAT_RATIO}); server CPU per task "
            f"{cpu[small]:.1f} -> {cpu[large]:.1f} ms (x{cpu[large] / cpu[small]:.2f})"
        )
    print(f"verdict: {'met' if ok else 'MISSED'} (all SUCCEEDED, peak RSS < {RSS_LIMIT_MIB} MiB"
          f"{', flat per-task rate' if len(by_size) >= 2 else ''})")  # fmt: skip


if __name__ == "__main__":
    main()
