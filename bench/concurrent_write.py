"""Concurrent launchers of one run: does the run's row lock, not the server's CPU, limit a fan-out?

Usage::

    .venv/bin/python bench/concurrent_write.py sqlite|mariadb|postgresql [--tasks 600]
        [--launchers 1,4,16] [--mariadb-url URL] [--postgresql-url URL]

Every write of a run takes the run's lock (its row's ``FOR UPDATE`` on PostgreSQL/MariaDB,
SQLite's one write lock), so concurrent launchers of one run queue there, each holding it
through its own commit. Issue 17 asks for group commit (the queued writes of one run in one
transaction) "where it helps": it helps only if that queue, not the server's CPU, is what
bounds a fan-out. This bench records a fan-out of N tasks of one run (each: CreateTask with an
input link to one seed artifact, then ``:finish`` with 2 outputs and SUCCEEDED — the
metadata_write workload without the chain) from K launchers at once, each on its own keep-alive
connection, for each K on a fresh kfpd server and database, and prints tasks/s next to the
server process's CPU per task and its CPU use (CPU seconds / wall seconds; one kfpd process
runs Python on one core at a time, so ~1.0 means its CPU is the limit). All tasks must end
SUCCEEDED, and the run with them.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from typing import Any

import metadata_write as mw
from bench_db import chain_spec
from write_cpu import SERVERS, cpu_seconds, server_on_fresh_database

from kfpd.domain.tokens import issue_run_token


def fan_out(base_url: str, token_key: Path, n: int, launchers: int) -> float:
    """Record the fan-out; return the timed seconds. Asserts every task and the run ended."""
    http = mw.RawCaller(base_url)
    exp = mw.call(http, "POST", "/experiments", {"display_name": f"bench-cw-{time.time_ns()}"})
    spec = chain_spec(n, "bench-concurrent-write")
    run = mw.call(
        http,
        "POST",
        "/runs",
        {"experiment_id": exp["experiment_id"], "display_name": "bench", "pipeline_spec": spec},
    )
    rid = run["run_id"]
    auth = {"authorization": f"Bearer {issue_run_token(token_key.read_bytes(), rid)}"}
    uri = f"minio://mlpipeline/v2/artifacts/bench-concurrent-write/{rid}"
    root = mw.call(
        http,
        "POST",
        f"/runs/{rid}/tasks",
        {"name": "ROOT", "type": "ROOT", "scope_path": "root", "state": "RUNNING"},
        _auth=auth,
    )
    seed = mw.call(
        http,
        "POST",
        "/artifacts:batchCreate",
        {
            "artifacts": [
                {
                    "artifact": {"name": "seed", "type": "Dataset", "uri": f"{uri}/seed"},
                    "run_id": rid,
                    "task_id": root["task_id"],
                    "producer_key": "seed",
                }
            ]
        },
        _auth=auth,
    )["artifacts"][0]["artifact_id"]

    def one_task(caller: mw.RawCaller, i: int) -> None:
        name = f"step-{i}"
        body: dict[str, Any] = {
            "name": name,
            "type": "RUNTIME",
            "state": "RUNNING",
            "parent_task_id": root["task_id"],
            "scope_path": f"root.{name}",
            "cache_fingerprint": f"{i:064x}",
            "pods": [{"name": f"{name}-pod", "uid": f"uid-{i}", "type": "EXECUTOR"}],
            "inputs": {
                "parameters": [{"value": i, "type": "COMPONENT_INPUT", "parameter_key": "n"}],
                "artifacts": [
                    {
                        "artifacts": [{"artifact_id": seed}],
                        "type": "TASK_OUTPUT_INPUT",
                        "artifact_key": "in",
                        "producer": {"task_name": "ROOT"},
                    }
                ],
            },
        }
        tid = mw.call(caller, "POST", f"/runs/{rid}/tasks", body, _auth=auth)["task_id"]
        outputs = [
            {"key": k, "name": k, "uri": f"{uri}/{k}-{i}", "schema_title": "system.Dataset"}
            for k in ("out-a", "out-b")
        ]
        finish = {"state": "SUCCEEDED", "output_artifacts": outputs}
        done = mw.call(caller, "POST", f"/runs/{rid}/tasks/{tid}:finish", finish, _auth=auth)
        assert done["state"] == "SUCCEEDED", done

    next_index = iter(range(n))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def launcher() -> None:
        caller = mw.RawCaller(base_url)
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                one_task(caller, i)
        except BaseException as error:  # reported after the join
            errors.append(error)
        finally:
            caller.close()

    threads = [threading.Thread(target=launcher) for _ in range(launchers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    http.close()  # idle for longer than the server keeps a connection alive
    http = mw.RawCaller(base_url)
    listed = mw.call(http, "GET", f"/runs/{rid}/tasks", page_size=1)["total_size"]
    assert listed == n + 1, listed
    state = mw.call(http, "GET", f"/runs/{rid}")["state"]
    assert state == "SUCCEEDED", f"run is {state}, expected SUCCEEDED"
    http.close()
    return seconds


def one(database: str, server: str | None, n: int, launchers: int) -> str:
    with server_on_fresh_database(server, f"cw_{os.getpid()}_{launchers}") as srv:
        cpu0 = cpu_seconds(srv.process.pid)
        seconds = fan_out(srv.url, srv.data_dir / "run-token.key", n, launchers)
        cpu = cpu_seconds(srv.process.pid) - cpu0
    return (
        f"{database:10} launchers {launchers:3}  {n / seconds:7.1f} tasks/s"
        f"  server cpu {cpu / n * 1e3:5.2f} ms/task  cpu use {cpu / seconds:4.2f}"
        f"  load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("database", choices=["sqlite", "mariadb", "postgresql"])
    ap.add_argument("--tasks", type=int, default=600)
    ap.add_argument("--launchers", default="1,4,16")
    ap.add_argument("--mariadb-url", default=SERVERS["mariadb"])
    ap.add_argument("--postgresql-url", default=SERVERS["postgresql"])
    args = ap.parse_args()
    server = {"sqlite": None, "mariadb": args.mariadb_url, "postgresql": args.postgresql_url}
    for k in (int(x) for x in args.launchers.split(",")):
        time.sleep(1)
        print(one(args.database, server[args.database], args.tasks, k), flush=True)


if __name__ == "__main__":
    main()
