"""Count the database round trips of a launcher's two calls (CreateTask, ``:finish``).

Usage::

    .venv/bin/python bench/write_roundtrips.py [--db-url URL] [--tasks 3] [--verbose]

The app runs in-process (FastAPI's TestClient) on the given database (a fresh SQLite file by
default) with the bench's per-task bodies (bench/metadata_write.py). Counted per request, at
the driver, everything that crosses to the database server: PostgreSQL (psycopg) frontend
messages that wait for a reply (each ``Sync`` of the extended protocol and each simple
``Query``, BEGIN and COMMIT included); MariaDB/MySQL (PyMySQL) commands (queries, COMMIT,
ROLLBACK, pings); SQLite statements (no network: the figure is the statement count). Also the
SQL statements SQLAlchemy issued. The figures are the last but one task's (earlier ones warm
caches and let psycopg prepare its statements), and the last ``:finish`` (its roll-up
ends the run) apart.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pymysql.connections
from bench_db import chain_spec, recreate_server_db
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.domain.tokens import issue_run_token

API = "/apis/v2beta1"


class Wire:
    """Driver-level counts of what crossed to the server (round trips) and why."""

    def __init__(self, trace_dir: Path) -> None:
        self.trips: list[str] = []
        self.statements: list[str] = []
        self._traces: list[Path] = []
        self._trace_dir = trace_dir  # libpq traces (PostgreSQL), removed with it

    def reset(self) -> None:
        self.trips.clear()
        self.statements.clear()
        for path in self._traces:
            path.write_bytes(b"")

    def pg_trips(self) -> list[str]:
        trips = []
        for path in self._traces:
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split("\t")
                # libpq trace (no timestamps): direction (F = to the server), length, message
                if len(parts) >= 3 and parts[0] == "F" and parts[2] in ("Sync", "Query"):
                    trips.append(" ".join(parts[2:])[:100])
        return trips

    def install(self, db: Database) -> None:
        engines = {id(db.engine): db.engine, id(db.write_engine): db.write_engine}
        for engine in engines.values():
            event.listen(engine, "before_cursor_execute", self._statement)
            if db.dialect == "postgresql":
                event.listen(engine, "connect", self._pg_connect)
            if db.dialect == "sqlite":
                event.listen(engine, "connect", self._sqlite_connect)
        if db.dialect in {"mysql", "mariadb"}:
            original = pymysql.connections.Connection._execute_command
            wire = self

            def counted(conn: Any, command: int, sql: Any) -> Any:
                text = sql.decode(errors="replace") if isinstance(sql, bytes) else str(sql)
                wire.trips.append(f"cmd{command} {text[:100]}")
                return original(conn, command, sql)

            pymysql.connections.Connection._execute_command = counted  # type: ignore[method-assign]

    def _statement(self, *args: Any) -> None:
        sql, many = args[2], args[5]  # conn, cursor, statement, parameters, context, executemany
        self.statements.append(("MANY " if many else "") + re.sub(r"\s+", " ", sql)[:100])

    def _pg_connect(self, dbapi_conn: Any, _record: Any) -> None:
        path = self._trace_dir / f"pg-{len(self._traces)}.trace"
        path.touch()
        self._traces.append(path)
        handle = path.open("ab", buffering=0)
        dbapi_conn.pgconn.trace(handle.fileno())
        dbapi_conn.pgconn.set_trace_flags(1 | 2)  # no timestamps, regress mode
        dbapi_conn._kfpd_trace = handle  # keep the file open with the connection

    def _sqlite_connect(self, dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(lambda sql: self.trips.append(sql[:100]))

    def report(self, dialect: str) -> tuple[list[str], list[str]]:
        trips = self.pg_trips() if dialect == "postgresql" else list(self.trips)
        return trips, list(self.statements)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-url")
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfpd-rt-") as tmp:
        url = args.db_url or f"sqlite:///{tmp}/kfpd.sqlite"
        if make_url(url).get_backend_name() != "sqlite":
            recreate_server_db(make_url(url))
        settings = Settings(data_dir=Path(tmp), orchestrate=False, db_url=url)
        app = create_app(settings)
        db: Database = app.state.db
        wire = Wire(Path(tmp))
        wire.install(db)
        db.engine.dispose()  # reconnect through the counting hooks
        db.write_engine.dispose()
        secret = settings.run_token_secret()
        with TestClient(app, base_url="http://127.0.0.1") as http:
            counts = _workload(http, secret, args.tasks, wire, db.dialect, args.verbose)
    print(f"{db.dialect}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))


def _workload(
    http: TestClient, secret: bytes, n: int, wire: Wire, dialect: str, verbose: bool
) -> dict[str, str]:
    exp = http.post(f"{API}/experiments", json={"display_name": f"rt-{os.getpid()}"}).json()
    run = http.post(
        f"{API}/runs",
        json={
            "experiment_id": exp["experiment_id"],
            "display_name": "rt",
            "pipeline_spec": chain_spec(n, "bench-write-roundtrips"),
        },
    ).json()
    rid = run["run_id"]
    auth = {"authorization": f"Bearer {issue_run_token(secret, rid)}"}
    root = http.post(
        f"{API}/runs/{rid}/tasks",
        json={"name": "ROOT", "type": "ROOT", "scope_path": "root", "state": "RUNNING"},
        headers=auth,
    ).json()
    uri = f"minio://mlpipeline/v2/artifacts/rt/{rid}"
    seed = http.post(
        f"{API}/artifacts:batchCreate",
        json={
            "artifacts": [
                {
                    "artifact": {"name": "seed", "type": "Dataset", "uri": f"{uri}/seed"},
                    "run_id": rid,
                    "task_id": root["task_id"],
                    "producer_key": "seed",
                }
            ]
        },
        headers=auth,
    ).json()
    upstream, producer = seed["artifacts"][0]["artifact_id"], "ROOT"
    counts: dict[str, str] = {}
    for i in range(n):
        name = f"step-{i}"
        body = {
            "name": name,
            "display_name": name,
            "type": "RUNTIME",
            "state": "RUNNING",
            "parent_task_id": root["task_id"],
            "scope_path": f"root.{name}",
            "cache_fingerprint": f"{i:064x}",
            "pods": [{"name": f"{name}-pod", "uid": f"uid-{i}", "type": "EXECUTOR"}],
            "inputs": {
                "parameters": [
                    {"value": i, "type": "COMPONENT_INPUT", "parameter_key": "n"},
                    {"value": name, "type": "COMPONENT_INPUT", "parameter_key": "message"},
                    {"value": 0.01, "type": "COMPONENT_INPUT", "parameter_key": "lr"},
                ],
                "artifacts": [
                    {
                        "artifacts": [{"artifact_id": upstream}],
                        "type": "TASK_OUTPUT_INPUT",
                        "artifact_key": "in",
                        "producer": {"task_name": producer},
                    }
                ],
            },
        }
        wire.reset()
        created = http.post(f"{API}/runs/{rid}/tasks", json=body, headers=auth)
        assert created.status_code == 200, created.text
        if i == n - 2:
            _record(counts, "CreateTask", wire, dialect, verbose)
        tid = created.json()["task_id"]
        finish = {
            "state": "SUCCEEDED",
            "output_parameters": {"accuracy": 0.5 + i / 1e6, "msg": name},
            "output_artifacts": [
                {
                    "key": key,
                    "name": key,
                    "uri": f"{uri}/{key}-{i}",
                    "schema_title": "system.Dataset",
                    "metadata": {"rows": i},
                }
                for key in ("out-a", "out-b")
            ],
        }
        wire.reset()
        done = http.post(f"{API}/runs/{rid}/tasks/{tid}:finish", json=finish, headers=auth)
        assert done.status_code == 200, done.text
        if i >= n - 2:
            what = ":finish" if i == n - 2 else "last :finish (run ends)"
            _record(counts, what, wire, dialect, verbose)
        out_a = next(
            io for io in done.json()["outputs"]["artifacts"] if io["artifact_key"] == "out-a"
        )
        upstream, producer = out_a["artifacts"][0]["artifact_id"], name
    final = http.get(f"{API}/runs/{rid}").json()
    assert final["state"] == "SUCCEEDED", final["state"]
    return counts


def _record(counts: dict[str, str], what: str, wire: Wire, dialect: str, verbose: bool) -> None:
    trips, statements = wire.report(dialect)
    label = "statements" if dialect == "sqlite" else "round trips"
    counts[what] = f"{len(trips)} {label} ({len(statements)} SQLAlchemy statements)"
    if verbose:
        print(f"--- {what}: {label}")
        for line, n in Counter(trips).items():
            print(f"  {n}x {line}")
        print(f"--- {what}: SQLAlchemy statements")
        for line in statements:
            print(f"  {line}")


if __name__ == "__main__":
    main()
