"""Benchmark database toolbox: engines for seeding, database admin on PostgreSQL/MariaDB
(exists, drop, create), settling after a bulk seed, and a kfpd server on a seeded database.
Shared by the benchmarks beside it (list_runs, lineage, ...); they import only from here and
from kfpd_server, never from each other."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kfpd_server import kfpd_server as start_kfpd
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL


def bench_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=OFF")
            cur.close()

        return engine
    return create_engine(url)


def admin_url(url: URL) -> URL:
    database = "postgres" if url.get_backend_name() == "postgresql" else None
    # URL.set(database=None) would keep the database, so build the URL afresh.
    return URL.create(
        url.drivername, url.username, url.password, url.host, url.port, database, url.query
    )


def server_db_exists(url: URL) -> bool:
    admin = create_engine(admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if url.get_backend_name() == "postgresql":
                q = text("SELECT 1 FROM pg_database WHERE datname = :n")
            else:
                q = text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n")
            return conn.execute(q, {"n": url.database}).first() is not None
    finally:
        admin.dispose()


def recreate_server_db(url: URL, *, drop_only: bool = False) -> None:
    name = url.database
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing database name {name!r}: use letters, digits and _")
    admin = create_engine(admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if url.get_backend_name() == "postgresql":
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                if not drop_only:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
                if not drop_only:
                    conn.exec_driver_sql(
                        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
                    )
    finally:
        admin.dispose()


def settle_seeded(engine: Engine, tables: list[str], *, sqlite_analyze: bool = False) -> None:
    """After bulk seeding, what a database reaches by itself anyway: the WAL folded back
    (SQLite; ANALYZE only when asked, kfpd never runs one), VACUUM ANALYZE (PostgreSQL, as
    autovacuum would), ANALYZE TABLE (MySQL/MariaDB, as InnoDB's auto-stats would)."""
    backend = engine.dialect.name
    if backend == "sqlite":
        with engine.connect() as conn:
            if sqlite_analyze:
                conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.commit()
    elif backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ANALYZE TABLE {', '.join(tables)}")


@contextmanager
def seeded_server(url: URL, data_dir: Path) -> Iterator[str]:
    """The server on the seeded database; the seeded runs are data to list, not to run."""
    db_url = url.render_as_string(hide_password=False)
    with start_kfpd("--no-orchestrate", data_dir=data_dir, db_url=db_url) as server:
        print(
            f"kfpd server up at {server.url} (pid {server.process.pid})",
            file=sys.stderr,
            flush=True,
        )
        yield server.url


def chain_spec(n: int, name: str) -> dict[str, Any]:
    """A valid KFP IR (2.1.0): root DAG of n container tasks, step-i depends on step-(i-1)
    (the launcher write-path benches' workload)."""
    tasks: dict[str, Any] = {}
    for i in range(n):
        task: dict[str, Any] = {
            "componentRef": {"name": "comp-step"},
            "taskInfo": {"name": f"step-{i}"},
        }
        if i:
            task["dependentTasks"] = [f"step-{i - 1}"]
        tasks[f"step-{i}"] = task
    container = {"image": "python:3.11", "command": ["python", "-c"], "args": ["print('hi')"]}
    return {
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.0",
        "pipelineInfo": {"name": name},
        "deploymentSpec": {"executors": {"exec-step": {"container": container}}},
        "components": {"comp-step": {"executorLabel": "exec-step"}},
        "root": {"dag": {"tasks": tasks}},
    }
