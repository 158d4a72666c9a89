"""Metadata write throughput: kfpd over HTTP vs ML Metadata 1.17.1, same machine, same database.

Usage::

    .venv/bin/python bench/metadata_write.py [--tasks 1000] [--rounds 3] [--json]
        [--databases sqlite,mariadb,postgresql]
        [--mariadb-url mysql+pymysql://root@127.0.0.1:3306/kfpd_bench]
        [--postgresql-url postgresql+psycopg://postgres@127.0.0.1:5432/kfpd_bench]
        [--sqlite-synchronous full] [--db-url URL] [--protocol upstream] [--client httpx]

Like with like: kfpd on SQLite vs MLMD on SQLite, kfpd on MariaDB vs MLMD on MariaDB (ml-metadata's
MySQL connection config, on the same server), and kfpd on PostgreSQL vs the better of those two
MLMD figures measured in the same round (MLMD has no maintained PostgreSQL backend). Every round
uses fresh databases: a SQLite file under /tmp, or a database created empty on the server
(``<prefix>_<pid>_r<round>`` for kfpd, ``mlmd_bench_<pid>_r<round>`` for MLMD, dropped after).
``--db-url`` keeps its old meaning: kfpd on that database (a SQLite URL is used as is; a server
URL names the server and the prefix) and, unless ``--databases`` says otherwise, that one only.

``--sqlite-synchronous full`` runs kfpd's SQLite with an fsync per commit, the durability MLMD's
SQLite (rollback journal, synchronous FULL) has; kfpd's default is NORMAL (see db/engine.py).
On MariaDB both sides get the server's own durability (innodb_flush_log_at_trx_commit).

The workload is a run of N container tasks in a chain (task i reads task i-1's first output).
Per task, both sides record the same facts: the task with its name, parent, fingerprint, pod
and three input parameters, RUNNING; one input artifact link; two Dataset output artifacts
(URI + metadata) with their output links; then the final state COMPLETE/SUCCEEDED with two
output parameters.

* kfpd: a real ``kfpd server --no-orchestrate`` subprocess, driven over one keep-alive
  connection with sequential requests, like one launcher; JSON bodies are plain dicts. The
  client is bare HTTP/1.1 framing on a socket (``--client raw``, as cheap per request as a Go
  launcher's net/http) or httpx (``--client httpx``, kfpd's own Python client). Untimed:
  server start (and schema creation), experiment, run with an inline IR of N chained tasks
  ``step-i``. Timed: the ROOT task and a seed artifact, then per task (``--protocol launcher``,
  the default) two requests:

  1. CreateTask (RUNNING, pod, 3 input parameters, and the input link to the previous task's
     ``out-a`` in ``inputs.artifacts`` — a kfpd extension; upstream sends it separately);
  2. ``:finish`` (two Dataset outputs with their OUTPUT links, 2 output parameters and
     SUCCEEDED, in one transaction);

  or (``--protocol upstream``) three: CreateTask, CreateArtifactsBulk, UpdateTask.

  After the last task the server's roll-up must have made the run SUCCEEDED; that and the
  task, artifact and link counts are asserted.
* MLMD: ``bench/mlmd_workload.py`` with the same N in the side venv of ``bench/mlmd_env.py``
  (the 13 in-process MLMD calls per task of KFP's Go MLMD client — driver PutExecution with
  the INPUT event, launcher PutExecution, 2x PutArtifacts, PublishExecution with the OUTPUT
  events, plus their type/read calls). Untimed: opening the store (and MLMD's schema).

Systems run one after the other, never at the same time, each after ``sync``, the database
servers' dirty pages written back, and a short pause. Each round measures, in this order, kfpd
and MLMD on SQLite, kfpd and MLMD on MariaDB, kfpd on PostgreSQL (those asked for, plus both
MLMD anchors when PostgreSQL is); kfpd goes first in odd rounds, MLMD in even ones.
Every round and the medians are printed; the verdict per database is PASS only when kfpd is
>= 3x its MLMD anchor in every round.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpx
from bench_db import admin_url, chain_spec, recreate_server_db, server_db_exists
from kfpd_server import kfpd_server
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, make_url

from kfpd.domain.tokens import issue_run_token

BENCH = Path(__file__).resolve().parent
KFPD = Path(sys.executable).with_name("kfpd")
API = "/apis/v2beta1"
TARGET = 3.0
DATABASES = ("sqlite", "mariadb", "postgresql")
ALIASES = {"mysql": "mariadb", "postgres": "postgresql", "pg": "postgresql"}
DEFAULT_SERVERS = {
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/kfpd_bench",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/kfpd_bench",
}


@dataclass
class Result:
    system: str
    tasks: int
    seconds: float
    tasks_per_s: float
    backend: str


class Caller(Protocol):
    """One keep-alive HTTP connection to the server, sending JSON and reading JSON."""

    def call(
        self, method: str, path: str, body: Any, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]: ...


class HttpxCaller:
    """httpx.Client, as kfpd's own Python client and launcher use."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120)

    def call(
        self, method: str, path: str, body: Any, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        response = self.http.request(
            method, path, json=body, params=params or None, headers=headers or None
        )
        return response.status_code, response.content

    def close(self) -> None:
        self.http.close()


class RawCaller:
    """HTTP/1.1 over one socket with nothing but the framing: as cheap per request as a Go
    launcher's net/http, so that the figure is the server's and not the Python client's."""

    def __init__(self, base_url: str) -> None:
        parsed = urlsplit(base_url)
        self.host = f"{parsed.hostname}:{parsed.port}"
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(
        self, method: str, path: str, body: Any, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if params:
            path += "?" + urlencode(params)
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        self.sock.sendall(head.encode() + data)
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head_raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head_raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding":
                raise RuntimeError("the bench client reads Content-Length bodies only")
        while len(self.buf) < length:
            self._recv()
        content, self.buf = self.buf[:length], self.buf[length:]
        return status, content

    def _recv(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


CLIENTS: dict[str, type[RawCaller] | type[HttpxCaller]] = {"raw": RawCaller, "httpx": HttpxCaller}


def call(
    http: Caller,
    method: str,
    path: str,
    body: Any = None,
    _auth: dict[str, str] | None = None,
    **params: Any,
) -> Any:
    status, content = http.call(method, API + path, body, params, _auth or {})
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {content.decode(errors='replace')}")
    return json.loads(content)


def kfpd_workload(
    http: Caller, n: int, protocol: str = "launcher", token_key: Path | None = None
) -> float:
    """Run the workload once; return the timed seconds. Asserts the end state.

    ``launcher``: kfpd's launcher protocol, 2 requests per task — CreateTask (RUNNING, with its
    input link) and ``:finish`` (2 output artifacts + links, output parameters and the final
    state in one transaction). ``upstream``: 3 requests like upstream's launcher —
    CreateTask, CreateArtifactsBulk, UpdateTask.
    """
    artifacts_before = call(http, "GET", "/artifacts", page_size=1).get("total_size", 0)
    exp = call(http, "POST", "/experiments", {"display_name": f"bench-mw-{time.time_ns()}"})
    run = call(
        http,
        "POST",
        "/runs",
        {
            "experiment_id": exp["experiment_id"],
            "display_name": "bench",
            "pipeline_spec": chain_spec(n, "bench-metadata-write"),
        },
    )
    rid = run["run_id"]
    uri = f"minio://mlpipeline/v2/artifacts/bench-metadata-write/{rid}"
    # Every write a launcher makes shows its run's token (both protocols).
    assert token_key is not None
    auth = {"authorization": f"Bearer {issue_run_token(token_key.read_bytes(), rid)}"}

    def output(task_id: str, key: str, i: int) -> dict[str, Any]:
        artifact = {
            "name": key,
            "type": "Dataset",
            "uri": f"{uri}/{key}-{i}",
            "metadata": {"rows": i},
        }
        return {"artifact": artifact, "run_id": rid, "task_id": task_id, "producer_key": key}

    t0 = time.perf_counter()
    root = call(
        http,
        "POST",
        f"/runs/{rid}/tasks",
        {"name": "ROOT", "type": "ROOT", "scope_path": "root", "state": "RUNNING"},
        _auth=auth,
    )
    seed_body = {"artifacts": [output(root["task_id"], "seed", 0)]}
    seed = call(http, "POST", "/artifacts:batchCreate", seed_body, _auth=auth)
    upstream, producer = seed["artifacts"][0]["artifact_id"], "ROOT"
    for i in range(n):
        name = f"step-{i}"
        inputs = [
            {"value": i, "type": "COMPONENT_INPUT", "parameter_key": "n"},
            {"value": f"hello from {name}", "type": "COMPONENT_INPUT", "parameter_key": "message"},
            {"value": 0.01, "type": "COMPONENT_INPUT", "parameter_key": "lr"},
        ]
        link = {
            "artifacts": [{"artifact_id": upstream}],
            "type": "TASK_OUTPUT_INPUT",
            "artifact_key": "in",
            "producer": {"task_name": producer},
        }
        task = call(
            http,
            "POST",
            f"/runs/{rid}/tasks",
            {
                "name": name,
                "display_name": name,
                "type": "RUNTIME",
                "state": "RUNNING",
                "parent_task_id": root["task_id"],
                "scope_path": f"root.{name}",
                "cache_fingerprint": f"{i:064x}",
                "pods": [{"name": f"{name}-pod", "uid": f"uid-{i}", "type": "EXECUTOR"}],
                "inputs": {"parameters": inputs, "artifacts": [link]},
            },
            _auth=auth,
        )
        tid = task["task_id"]
        if protocol == "launcher":
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
            done = call(http, "POST", f"/runs/{rid}/tasks/{tid}:finish", finish, _auth=auth)
            assert done["state"] == "SUCCEEDED", done
            out_a = next(io for io in done["outputs"]["artifacts"] if io["artifact_key"] == "out-a")
            upstream, producer = out_a["artifacts"][0]["artifact_id"], name
            continue
        outs = [output(tid, "out-a", i), output(tid, "out-b", i)]
        made = call(http, "POST", "/artifacts:batchCreate", {"artifacts": outs}, _auth=auth)
        results = [
            {"value": 0.5 + i / 1e6, "type": "OUTPUT", "parameter_key": "accuracy"},
            {"value": name, "type": "OUTPUT", "parameter_key": "msg"},
        ]
        done = call(
            http,
            "PATCH",
            f"/runs/{rid}/tasks/{tid}",
            {"state": "SUCCEEDED", "outputs": {"parameters": results}},
            _auth=auth,
        )
        assert done["state"] == "SUCCEEDED", done
        upstream, producer = made["artifacts"][0]["artifact_id"], name
    seconds = time.perf_counter() - t0

    final = call(http, "GET", f"/runs/{rid}")
    assert final["state"] == "SUCCEEDED", f"run is {final['state']}, expected SUCCEEDED"
    assert final["task_count"] == n + 1, final["task_count"]
    listed = call(http, "GET", f"/runs/{rid}/tasks", page_size=1)
    assert listed["total_size"] == n + 1, listed["total_size"]
    links = call(http, "GET", "/artifact_tasks", run_ids=rid, page_size=1)["total_size"]
    assert links == 3 * n + 1, links  # 2n + 1 outputs, n inputs
    made_total = call(http, "GET", "/artifacts", page_size=1)["total_size"] - artifacts_before
    assert made_total == 2 * n + 1, made_total
    return seconds


def round_database(server: URL, system: str, round_no: int) -> URL:
    """A per-round database name on ``server``: ``<prefix>_<pid>_r<round>`` for kfpd (the
    prefix is the URL's database, default kfpd_bench), ``mlmd_bench_<pid>_r<round>`` for MLMD.
    The pid keeps two benches on one database server apart."""
    prefix = (server.database or "kfpd_bench") if system == "kfpd" else "mlmd_bench"
    return server.set(database=f"{prefix}_{os.getpid()}_r{round_no}")


@contextmanager
def fresh_database(url: URL) -> Iterator[URL]:
    """Create ``url``'s database empty, drop it afterwards."""
    recreate_server_db(url)
    try:
        yield url
    finally:
        recreate_server_db(url, drop_only=True)


def run_kfpd(
    n: int,
    database: str,
    server: URL | None,
    round_no: int,
    *,
    sqlite_url: str | None = None,
    synchronous: str | None = None,
    protocol: str = "launcher",
    client: str = "raw",
) -> Result:
    """kfpd on ``database``: a fresh SQLite file, or a fresh database on ``server``."""
    with tempfile.TemporaryDirectory(prefix="kfpd-bench-", dir="/tmp") as tmp, ExitStack() as st:
        backend = database
        url = sqlite_url
        if database != "sqlite":
            assert server is not None
            fresh = st.enter_context(fresh_database(round_database(server, "kfpd", round_no)))
            url = fresh.render_as_string(hide_password=False)
        elif synchronous and not sqlite_url:
            url = f"sqlite:///{Path(tmp) / 'kfpd.sqlite'}?synchronous={synchronous}"
            backend += f", {synchronous.upper()}"
        # The benchmark plays the launcher: the server must not run the pipeline itself.
        with kfpd_server("--no-orchestrate", data_dir=Path(tmp), db_url=url) as srv:
            http = CLIENTS[client](srv.url)
            try:
                seconds = kfpd_workload(http, n, protocol, Path(tmp) / "run-token.key")
            finally:
                http.close()
    return Result("kfpd", n, round(seconds, 4), round(n / seconds, 2), backend)


def run_mlmd(n: int, database: str, server: URL | None, round_no: int) -> Result:
    """MLMD 1.17.1 in-process on a fresh SQLite file, or on a fresh MariaDB database through
    ml-metadata's own MySQL connection config (MLMD creates its schema itself)."""
    env = [sys.executable, str(BENCH / "mlmd_env.py")]
    python = subprocess.run(env, check=True, capture_output=True, text=True).stdout.strip()
    cmd = [python, str(BENCH / "mlmd_workload.py"), "--tasks", str(n), "--json"]
    with tempfile.TemporaryDirectory(prefix="mlmd-bench-", dir="/tmp") as tmp, ExitStack() as st:
        if database == "sqlite":
            cmd += ["--db", str(Path(tmp) / "mlmd.sqlite")]
        else:
            assert server is not None
            fresh = st.enter_context(fresh_database(round_database(server, "mlmd", round_no)))
            cmd += ["--mysql-database", str(fresh.database)]
            cmd += [
                "--mysql-host",
                fresh.host or "127.0.0.1",
                "--mysql-port",
                str(fresh.port or 3306),
            ]
            cmd += ["--mysql-user", fresh.username or "root"]
            cmd += ["--mysql-password", fresh.password or ""]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return Result("mlmd", n, data["seconds"], data["tasks_per_s"], database)


def settle(servers: dict[str, URL], seconds: float = 2.0) -> None:
    """Start each system on a quiet machine: the previous one's files are written back and
    deleted (left alone, their writeback slowed whichever system ran next), and so are the
    database servers' dirty pages (a PostgreSQL CHECKPOINT; MariaDB: wait, at most 10 s,
    until InnoDB has few dirty pages left)."""
    os.sync()
    started = time.monotonic()
    for db, url in servers.items():
        engine = create_engine(admin_url(url), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if db == "postgresql":
                    conn.exec_driver_sql("CHECKPOINT")
                    continue
                while time.monotonic() - started < 10:
                    row = conn.exec_driver_sql(
                        "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'"
                    ).first()
                    if row is None or int(row[1]) < 64:
                        break
                    time.sleep(0.2)
        finally:
            engine.dispose()
    time.sleep(seconds)


def median_result(results: list[Result]) -> Result:
    seconds = statistics.median(r.seconds for r in results)
    first = results[0]
    return Result(
        first.system, first.tasks, seconds, round(first.tasks / seconds, 2), first.backend
    )


@dataclass
class Round:
    """One database's figures in one round: kfpd, and the MLMD figure it is compared with
    (on PostgreSQL the better of MLMD on SQLite and on MariaDB in the same round)."""

    round: int
    kfpd: Result
    mlmd: Result
    ratio: float
    load: float


def verdict(rounds: list[Round]) -> str:
    failed = [r for r in rounds if r.ratio < TARGET]
    if not failed:
        return f"PASS (>= {TARGET:g}x in every round)"
    which = ", ".join(f"{r.round} ({r.ratio:.2f}x)" for r in failed)
    return f"BELOW {TARGET:g}x in round{'s' if len(failed) > 1 else ''} {which}"


def parse_databases(text_: str) -> list[str]:
    names = [ALIASES.get(d.strip(), d.strip()) for d in text_.split(",") if d.strip()]
    unknown = sorted(set(names) - set(DATABASES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"databases are {', '.join(DATABASES)}; got {text_!r}")
    return [d for d in DATABASES if d in names]  # always in this order


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1, help="alternate kfpd/MLMD this many times")
    ap.add_argument(
        "--databases",
        type=parse_databases,
        help="comma-separated, of sqlite,mariadb,postgresql (default: all three, or the one "
        "--db-url names)",
    )
    ap.add_argument(
        "--mariadb-url",
        default=DEFAULT_SERVERS["mariadb"],
        help="MariaDB server for kfpd and MLMD; its database name prefixes kfpd's per-round "
        "databases (default %(default)s)",
    )
    ap.add_argument(
        "--postgresql-url",
        default=DEFAULT_SERVERS["postgresql"],
        help="PostgreSQL server for kfpd, as --mariadb-url (default %(default)s)",
    )
    ap.add_argument(
        "--db-url",
        help="kfpd's database: a SQLite URL (used as is), or a PostgreSQL/MariaDB URL (its "
        "server and prefix, instead of --postgresql-url/--mariadb-url); alone, it measures "
        "that database only",
    )
    ap.add_argument(
        "--sqlite-synchronous",
        choices=["normal", "full"],
        help="kfpd's SQLite synchronous level (default normal; full = fsync per commit, as MLMD)",
    )
    ap.add_argument(
        "--protocol",
        choices=["launcher", "upstream"],
        default="launcher",
        help="kfpd's launcher calls (CreateTask + :finish, 2 per task) or upstream's 3",
    )
    ap.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="raw",
        help="the bench's HTTP client: bare HTTP/1.1 framing (default) or httpx",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    return ap.parse_args()


@dataclass
class Plan:
    """What to measure: kfpd on ``databases``, MLMD on ``mlmd_on``, on these servers."""

    databases: list[str]
    mlmd_on: list[str]
    servers: dict[str, URL]
    sqlite_url: str | None


def make_plan(args: argparse.Namespace) -> Plan:
    servers = {"mariadb": make_url(args.mariadb_url), "postgresql": make_url(args.postgresql_url)}
    sqlite_url: str | None = None
    databases: list[str] = args.databases or list(DATABASES)
    if args.db_url:
        given = make_url(args.db_url)
        named = ALIASES.get(given.get_backend_name(), given.get_backend_name())
        if named == "sqlite":
            sqlite_url = args.db_url
        else:
            servers[named] = given
        databases = args.databases or [named]
    # MLMD has no maintained PostgreSQL backend: kfpd on PostgreSQL is held against the
    # better of MLMD on SQLite and on MariaDB, so both are measured whenever it runs.
    pg = "postgresql" in databases
    mlmd_on = [d for d in ("sqlite", "mariadb") if d in databases or pg]
    for db in {*databases, *mlmd_on} - {"sqlite"}:
        check_server(db, servers[db])
    return Plan(databases, mlmd_on, servers, sqlite_url)


def check_server(db: str, url: URL) -> None:
    """Fail at once, and clearly, when a database server the plan needs is not there."""
    try:
        server_db_exists(url)
    except Exception as exc:
        where = url.render_as_string(hide_password=True)
        raise SystemExit(
            f"{db} is not reachable at {where} ({type(exc).__name__}); start it, point "
            f"--{db}-url at it, or leave it out with --databases"
        ) from exc


def measure_round(
    args: argparse.Namespace, plan: Plan, r: int
) -> tuple[dict[str, Result], dict[str, Result]]:
    """One round: per database kfpd and MLMD, each after ``settle``; kfpd goes first in odd
    rounds, MLMD in even ones (whichever runs second may inherit the first one's writeback)."""
    kfpd_now: dict[str, Result] = {}
    mlmd_now: dict[str, Result] = {}
    servers = {d: plan.servers[d] for d in {*plan.databases, *plan.mlmd_on} - {"sqlite"}}

    def kfpd(db: str) -> None:
        settle(servers)
        kfpd_now[db] = run_kfpd(
            args.tasks,
            db,
            plan.servers.get(db),
            r,
            sqlite_url=plan.sqlite_url,
            synchronous=args.sqlite_synchronous,
            protocol=args.protocol,
            client=args.client,
        )

    def mlmd(db: str) -> None:
        settle(servers)
        mlmd_now[db] = run_mlmd(args.tasks, db, plan.servers.get(db), r)

    for db in DATABASES:
        steps = [kfpd] if db in plan.databases else []
        if db in plan.mlmd_on:
            steps.append(mlmd)
        for step in steps if r % 2 else reversed(steps):
            step(db)
    return kfpd_now, mlmd_now


def best(results: list[Result]) -> Result:
    return max(results, key=lambda x: x.tasks_per_s)


def summarize(table: dict[str, list[Round]], mlmd_all: dict[str, list[Result]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for db, rounds in table.items():
        kfpd = median_result([x.kfpd for x in rounds])
        if db == "postgresql":
            mlmd = best([median_result(results) for results in mlmd_all.values()])
        else:
            mlmd = median_result(mlmd_all[db])
        summary[db] = {
            "kfpd": asdict(kfpd),
            "mlmd": asdict(mlmd),
            "ratio": round(kfpd.tasks_per_s / mlmd.tasks_per_s, 2),
            "rounds": [asdict(x) for x in rounds],
            "failed_rounds": [x.round for x in rounds if x.ratio < TARGET],
            "verdict": verdict(rounds),
        }
    return summary


def print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.protocol == "launcher":
        print("per task: kfpd = 2 HTTP requests (CreateTask with its input link; :finish with")
        print("          2 outputs, parameters, SUCCEEDED); mlmd = 13 in-process MLMD calls")
    else:
        print("per task: kfpd = 3 HTTP requests (CreateTask with its input link,")
        print("          CreateArtifactsBulk of 2 outputs, UpdateTask); mlmd = 13 MLMD calls")
    median = "median " if args.rounds > 1 else ""
    print(
        f"{'database':<12}{'kfpd ' + median + 'tasks/s':>20}{'mlmd ' + median + 'tasks/s':>30}"
        f"{'ratio':>8}  verdict (every round)"
    )
    for db, v in summary.items():
        k, m = v["kfpd"], v["mlmd"]
        anchor = f"{m['tasks_per_s']:.1f} ({'best: ' if db == 'postgresql' else ''}{m['backend']})"
        ratio = f"{v['ratio']:.2f}x"
        print(f"{k['backend']:<12}{k['tasks_per_s']:>20.1f}{anchor:>30}{ratio:>8}  {v['verdict']}")
    if "postgresql" in summary:
        print("MLMD has no maintained PostgreSQL backend: kfpd on PostgreSQL is compared with the")
        print("better of MLMD on SQLite and MLMD on MariaDB, measured in the same round.")


def main() -> None:
    args = parse_args()
    plan = make_plan(args)
    load_before = os.getloadavg()[0]
    table: dict[str, list[Round]] = {d: [] for d in plan.databases}
    mlmd_all: dict[str, list[Result]] = {d: [] for d in plan.mlmd_on}
    for r in range(1, args.rounds + 1):
        load = os.getloadavg()[0]
        kfpd_now, mlmd_now = measure_round(args, plan, r)
        for db, result in mlmd_now.items():
            mlmd_all[db].append(result)
        for db in plan.databases:
            k = kfpd_now[db]
            m = best(list(mlmd_now.values())) if db == "postgresql" else mlmd_now[db]
            table[db].append(
                Round(r, k, m, round(k.tasks_per_s / m.tasks_per_s, 2), round(load, 2))
            )
            if not args.json:
                anchor = f"{'best ' if db == 'postgresql' else ''}mlmd ({m.backend})"
                print(
                    f"round {r}  {db:<11} kfpd {k.tasks_per_s:6.1f}  {anchor} "
                    f"{m.tasks_per_s:6.1f} tasks/s  {table[db][-1].ratio:.2f}x  (load {load:.2f})",
                    flush=True,
                )
    load_after = os.getloadavg()[0]
    summary = summarize(table, mlmd_all)
    passed = all(not v["failed_rounds"] for v in summary.values())
    if args.json:
        out: dict[str, Any] = {
            "tasks": args.tasks,
            "rounds": args.rounds,
            "target": TARGET,
            "databases": summary,
            "verdict": "PASS" if passed else "BELOW",
            "load": [round(load_before, 2), round(load_after, 2)],
        }
        if len(summary) == 1:  # the single-database shape of earlier versions
            (only,) = summary.values()
            out.update(kfpd=only["kfpd"], mlmd=only["mlmd"], ratio=only["ratio"])
        print(json.dumps(out))
        return
    print_summary(args, summary)
    print(
        f"target >= {TARGET:g}x on every database in every round: "
        f"{'PASS' if passed else 'BELOW'}; load average {load_before:.2f} before, "
        f"{load_after:.2f} after"
    )


if __name__ == "__main__":
    main()
