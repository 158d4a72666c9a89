"""kfpd's server CPU and wall time per task for bench/metadata_write.py's kfpd workload, on
SQLite, MariaDB or PostgreSQL (bench/server_cpu.py does SQLite only, with more options).

Usage::

    .venv/bin/python bench/write_cpu.py sqlite|mariadb|postgresql [--tasks 500] [--rounds 1]
        [--mariadb-url URL] [--postgresql-url URL]

Each round starts a fresh ``kfpd server --no-orchestrate`` on a fresh database (a SQLite file,
or ``<prefix>_cpu_<pid>_<round>`` on the server, dropped after) and reads the server process's
CPU time (user + system, /proc) around the timed workload: on a busy machine the CPU per task
moves far less than the wall time. To compare two trees, run it alternately with
``PYTHONPATH=<other checkout>/src`` (the kfpd it imports is the one the server runs).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import metadata_write as mw
from bench_db import recreate_server_db
from kfpd_server import Server, kfpd_server
from sqlalchemy.engine import make_url

import kfpd

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/kfpd_bench",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/kfpd_bench",
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_on_fresh_database(server: str | None, tag: str) -> Iterator[Server]:
    """A ``kfpd server --no-orchestrate`` on a fresh database: a SQLite file in a temporary
    data dir, or ``<database>_<tag>`` created empty on ``server`` and dropped after. When the
    block fails, the tail of the server's log is printed first."""
    with tempfile.TemporaryDirectory(prefix="kfpd-bench-", dir="/tmp") as tmp:
        url = fresh = None
        if server is not None:
            base = make_url(server)
            fresh = base.set(database=f"{base.database}_{tag}")
            recreate_server_db(fresh)
            url = fresh.render_as_string(hide_password=False)
        try:
            with kfpd_server("--no-orchestrate", data_dir=Path(tmp), db_url=url) as srv:
                try:
                    yield srv
                except BaseException:
                    print((Path(tmp) / "server.log").read_text(errors="replace")[-3000:])
                    raise
        finally:
            if fresh is not None:
                recreate_server_db(fresh, drop_only=True)


def one_round(database: str, server: str | None, n: int, round_no: int) -> str:
    with server_on_fresh_database(server, f"cpu_{os.getpid()}_{round_no}") as srv:
        http = mw.RawCaller(srv.url)
        cpu0 = cpu_seconds(srv.process.pid)
        seconds = mw.kfpd_workload(http, n, "launcher", srv.data_dir / "run-token.key")
        cpu1 = cpu_seconds(srv.process.pid)
        http.close()
    return (
        f"{database:10} {n / seconds:7.1f} tasks/s  wall {seconds / n * 1e3:5.2f} ms/task"
        f"  server cpu {(cpu1 - cpu0) / n * 1e3:5.2f} ms/task  load {os.getloadavg()[0]:.2f}"
        f"  ({Path(kfpd.__file__).parents[1]})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("database", choices=["sqlite", "mariadb", "postgresql"])
    ap.add_argument("--tasks", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--mariadb-url", default=SERVERS["mariadb"])
    ap.add_argument("--postgresql-url", default=SERVERS["postgresql"])
    args = ap.parse_args()
    server = {"sqlite": None, "mariadb": args.mariadb_url, "postgresql": args.postgresql_url}
    for r in range(args.rounds):
        time.sleep(1)
        print(one_round(args.database, server[args.database], args.tasks, r), flush=True)


if __name__ == "__main__":
    main()
