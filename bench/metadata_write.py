"""Metadata write throughput: kfpd over HTTP vs ML Metadata 1.17.1, same machine, same N.

Usage::

    .venv/bin/python bench/metadata_write.py [--tasks 1000] [--rounds 3] [--json]
        [--sqlite-synchronous full]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/kfpd_bench]

``--sqlite-synchronous full`` runs kfpd's SQLite with an fsync per commit, the durability MLMD's
SQLite (rollback journal, synchronous FULL) has; kfpd's default is NORMAL (see db/engine.py).

The workload is a run of N container tasks in a chain (task i reads task i-1's first output).
Per task, both sides record the same facts: the task with its name, parent, fingerprint, pod
and three input parameters, RUNNING; one input artifact link; two Dataset output artifacts
(URI + metadata) with their output links; then the final state COMPLETE/SUCCEEDED with two
output parameters.

* kfpd: a real ``kfpd server --no-orchestrate`` subprocess (SQLite in a fresh data dir under
  /tmp unless ``--db-url``), driven over one keep-alive connection with sequential requests,
  like one launcher; JSON bodies are plain dicts. The client is bare HTTP/1.1 framing on a
  socket (``--client raw``, as cheap per request as a Go launcher's net/http) or httpx
  (``--client httpx``, kfpd's own Python client). Untimed: experiment, run with an inline IR
  of N chained tasks ``step-i``. Timed: the ROOT task and a seed artifact, then per task
  (``--protocol launcher``, the default) two requests:

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
  events, plus their type/read calls — on a fresh SQLite file under /tmp).

kfpd and MLMD run one after the other, never at the same time, each after ``sync`` and a short
pause; with ``--rounds R`` they alternate R times and the medians are compared. Target: kfpd
>= 3x MLMD on SQLite.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import httpx
from kfpd_server import kfpd_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kfpd.domain.tokens import issue_run_token

BENCH = Path(__file__).resolve().parent
KFPD = Path(sys.executable).with_name("kfpd")
API = "/apis/v2beta1"
TARGET = 3.0


@dataclass
class Result:
    system: str
    tasks: int
    seconds: float
    tasks_per_s: float
    backend: str


def pipeline_spec(n: int) -> dict[str, Any]:
    """A valid KFP IR (2.1.0): root DAG of n container tasks, step-i depends on step-(i-1)."""
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
        "pipelineInfo": {"name": "bench-metadata-write"},
        "deploymentSpec": {"executors": {"exec-step": {"container": container}}},
        "components": {"comp-step": {"executorLabel": "exec-step"}},
        "root": {"dag": {"tasks": tasks}},
    }


def ensure_database(url: str) -> None:
    """Create the PostgreSQL/MariaDB database named in ``url`` if it does not exist."""
    parsed = make_url(url)
    name, backend = parsed.database, parsed.get_backend_name()
    if backend == "sqlite" or not name:
        return
    admin = parsed.set(database="postgres" if backend == "postgresql" else "mysql")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                found = conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
                if not found:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    finally:
        engine.dispose()


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


CLIENTS = {"raw": RawCaller, "httpx": HttpxCaller}


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
            "pipeline_spec": pipeline_spec(n),
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


def run_kfpd(
    n: int,
    db_url: str | None,
    synchronous: str | None = None,
    protocol: str = "launcher",
    client: str = "raw",
) -> Result:
    if db_url:
        ensure_database(db_url)
    with tempfile.TemporaryDirectory(prefix="kfpd-bench-", dir="/tmp") as tmp:
        url = db_url
        if synchronous and not db_url:
            url = f"sqlite:///{Path(tmp) / 'kfpd.sqlite'}?synchronous={synchronous}"
        # The benchmark plays the launcher: the server must not run the pipeline itself.
        with kfpd_server("--no-orchestrate", data_dir=Path(tmp), db_url=url) as server:
            http = CLIENTS[client](server.url)
            try:
                seconds = kfpd_workload(http, n, protocol, Path(tmp) / "run-token.key")
            finally:
                http.close()
    backend = make_url(db_url).get_backend_name() if db_url else "sqlite"
    if synchronous and not db_url:
        backend += f", {synchronous.upper()}"
    return Result("kfpd", n, round(seconds, 4), round(n / seconds, 2), backend)


def run_mlmd(n: int) -> Result:
    env = [sys.executable, str(BENCH / "mlmd_env.py")]
    python = subprocess.run(env, check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="mlmd-bench-", dir="/tmp") as tmp:
        cmd = [python, str(BENCH / "mlmd_workload.py"), "--tasks", str(n), "--json"]
        cmd += ["--db", str(Path(tmp) / "mlmd.sqlite")]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return Result("mlmd", n, data["seconds"], data["tasks_per_s"], "sqlite")


def settle(seconds: float = 2.0) -> None:
    """Start each system on a quiet machine: the previous one's files are written back and
    deleted (left alone, their writeback slowed whichever system ran next)."""
    os.sync()
    time.sleep(seconds)


def median_result(results: list[Result]) -> Result:
    seconds = statistics.median(r.seconds for r in results)
    first = results[0]
    return Result(
        first.system, first.tasks, seconds, round(first.tasks / seconds, 2), first.backend
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1, help="alternate kfpd/MLMD this many times")
    ap.add_argument("--db-url", help="run kfpd against this PostgreSQL/MariaDB URL instead")
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
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    kfpd_runs: list[Result] = []
    mlmd_runs: list[Result] = []
    for r in range(args.rounds):
        settle()
        kfpd_runs.append(
            run_kfpd(args.tasks, args.db_url, args.sqlite_synchronous, args.protocol, args.client)
        )
        settle()
        mlmd_runs.append(run_mlmd(args.tasks))
        if not args.json and args.rounds > 1:
            k, m = kfpd_runs[-1], mlmd_runs[-1]
            print(
                f"round {r + 1}: kfpd {k.tasks_per_s:.1f} tasks/s, mlmd {m.tasks_per_s:.1f}"
                f" tasks/s, ratio {k.tasks_per_s / m.tasks_per_s:.2f}x"
            )
    kfpd, mlmd = median_result(kfpd_runs), median_result(mlmd_runs)
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    ratio = kfpd.tasks_per_s / mlmd.tasks_per_s
    verdict = "PASS" if ratio >= TARGET else "BELOW"
    if args.json:
        print(
            json.dumps(
                {
                    "kfpd": asdict(kfpd),
                    "mlmd": asdict(mlmd),
                    "rounds": args.rounds,
                    "ratio": round(ratio, 2),
                    "target": TARGET,
                    "verdict": verdict,
                    "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                }
            )
        )
        return
    if args.protocol == "launcher":
        print("per task: kfpd = 2 HTTP requests (CreateTask with its input link; :finish with")
        print("          2 outputs, parameters, SUCCEEDED); mlmd = 13 in-process MLMD calls")
    else:
        print("per task: kfpd = 3 HTTP requests (CreateTask with its input link,")
        print("          CreateArtifactsBulk of 2 outputs, UpdateTask); mlmd = 13 MLMD calls")
    print(f"{'system':<24}{'tasks':>7}{'seconds':>10}{'tasks/s':>10}")
    for r in (kfpd, mlmd):
        label = f"{r.system} ({r.backend})"
        print(f"{label:<24}{r.tasks:>7}{r.seconds:>10.2f}{r.tasks_per_s:>10.1f}")
    median = " (medians)" if args.rounds > 1 else ""
    target = f"target >= {TARGET:g}x on SQLite"
    print(f"ratio kfpd/mlmd{median}: {ratio:.2f}x ({target}): {verdict}; {load}")


if __name__ == "__main__":
    main()
