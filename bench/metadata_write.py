"""Metadata write throughput: kfpd over HTTP vs ML Metadata 1.17.1, same machine, same N.

Usage::

    .venv/bin/python bench/metadata_write.py [--tasks 1000] [--json]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/kfpd_bench]

What is measured (wall clock, tasks/s = N / seconds):

* kfpd: a real ``kfpd server --log-level warning`` subprocess (SQLite in a fresh data dir
  under /tmp unless ``--db-url``), driven by one ``KfpdClient`` (one keep-alive connection,
  sequential requests, like one launcher). Untimed: experiment, run with an inline IR of N
  chained tasks ``step-i`` (which the server validates). Timed: the ROOT task and a seed
  artifact, then per task the launcher's four calls: CreateTask (RUNNING, one input
  parameter), CreateArtifactsBulk (two Dataset outputs), CreateArtifactTask (input link to
  the previous task's ``out-a``) and UpdateTask (SUCCEEDED, one output parameter). After the
  last task the server's roll-up must have made the run SUCCEEDED; that and the task,
  artifact and link counts are asserted.
* MLMD: ``bench/mlmd_workload.py`` with the same N in the side venv of ``bench/mlmd_env.py``
  (13 in-process MLMD calls per task on a fresh SQLite file under /tmp).

The two run one after the other, never at the same time. Target: kfpd >= 3x MLMD on SQLite.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kfpd.client.http import KfpdClient
from kfpd.domain.enums import ArtifactType, IOType, RunState, TaskState, TaskType
from kfpd.schemas.artifacts import Artifact, ArtifactTask, CreateArtifactRequest, IOProducer
from kfpd.schemas.runs import RunCreate
from kfpd.schemas.tasks import InputOutputs, IOParameter, PipelineTask

BENCH = Path(__file__).resolve().parent
KFPD = Path(sys.executable).with_name("kfpd")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def start_server(data_dir: Path, port: int, db_url: str | None) -> subprocess.Popen[bytes]:
    cmd = [str(KFPD), "server", "--data-dir", str(data_dir), "--port", str(port)]
    cmd += ["--log-level", "warning"]  # no per-request access log line
    if db_url:
        cmd += ["--db-url", db_url]
    log = data_dir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/apis/v2beta1/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    proc.wait(timeout=30)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"kfpd server did not become healthy (exit {proc.returncode}):\n{tail}")


def kfpd_workload(client: KfpdClient, n: int) -> float:
    """Run the workload once; return the timed seconds. Asserts the end state."""
    artifacts_before = client.list_artifacts(page_size=1).total_size
    exp = client.create_experiment(f"bench-metadata-write-{time.time_ns()}")
    run = client.create_run(
        RunCreate(
            experiment_id=exp.experiment_id, display_name="bench", pipeline_spec=pipeline_spec(n)
        )
    )
    rid = run.run_id
    uri = f"minio://mlpipeline/v2/artifacts/bench/{rid}"

    def output(task_id: str, key: str, i: int) -> CreateArtifactRequest:
        art = Artifact(
            name=key, type=ArtifactType.Dataset, uri=f"{uri}/{key}-{i}", metadata={"rows": i}
        )
        return CreateArtifactRequest(artifact=art, run_id=rid, task_id=task_id, producer_key=key)

    t0 = time.perf_counter()
    root = client.create_task(
        rid,
        PipelineTask(name="ROOT", type=TaskType.ROOT, scope_path="root", state=TaskState.RUNNING),
    )
    assert root.task_id
    (upstream,) = client.create_artifacts_bulk([output(root.task_id, "seed", 0)])
    producer = "ROOT"
    for i in range(n):
        name = f"step-{i}"
        param = IOParameter(value=i, type=IOType.RUNTIME_VALUE_INPUT, parameter_key="n")
        task = client.create_task(
            rid,
            PipelineTask(
                name=name,
                type=TaskType.RUNTIME,
                state=TaskState.RUNNING,
                parent_task_id=root.task_id,
                scope_path=f"root.{name}",
                cache_fingerprint=f"{i:064x}",
                inputs=InputOutputs(parameters=[param]),
            ),
        )
        tid = task.task_id
        assert tid
        out_a, _ = client.create_artifacts_bulk([output(tid, "out-a", i), output(tid, "out-b", i)])
        assert upstream.artifact_id
        client.create_artifact_task(
            ArtifactTask(
                artifact_id=upstream.artifact_id,
                run_id=rid,
                task_id=tid,
                type=IOType.TASK_OUTPUT_INPUT,
                producer=IOProducer(task_name=producer),
                key="in",
            )
        )
        result = IOParameter(value=0.5 + i / 1e6, type=IOType.OUTPUT, parameter_key="accuracy")
        client.update_task(
            rid,
            tid,
            PipelineTask(state=TaskState.SUCCEEDED, outputs=InputOutputs(parameters=[result])),
        )
        upstream, producer = out_a, name
    seconds = time.perf_counter() - t0

    done = client.get_run(rid)
    assert done.state == RunState.SUCCEEDED, f"run is {done.state}, expected SUCCEEDED"
    assert done.task_count == n + 1, done.task_count
    listed = client.list_tasks(rid, page_size=1)
    assert listed.total_size == n + 1, listed.total_size
    links = client.list_artifact_tasks(run_ids=[rid], page_size=1).total_size
    assert links == 3 * n + 1, links  # 2n + 1 outputs, n inputs
    made = client.list_artifacts(page_size=1).total_size - artifacts_before
    assert made == 2 * n + 1, made
    return seconds


def run_kfpd(n: int, db_url: str | None) -> Result:
    if db_url:
        ensure_database(db_url)
    with tempfile.TemporaryDirectory(prefix="kfpd-bench-", dir="/tmp") as tmp:
        port = free_port()
        server = start_server(Path(tmp), port, db_url)
        try:
            with KfpdClient(f"http://127.0.0.1:{port}", timeout=120) as client:
                seconds = kfpd_workload(client, n)
        finally:
            server.terminate()
            server.wait(timeout=30)
    backend = make_url(db_url).get_backend_name() if db_url else "sqlite"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--db-url", help="run kfpd against this PostgreSQL/MariaDB URL instead")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()

    kfpd = run_kfpd(args.tasks, args.db_url)
    mlmd = run_mlmd(args.tasks)
    ratio = kfpd.tasks_per_s / mlmd.tasks_per_s
    verdict = "PASS" if ratio >= TARGET else "BELOW"
    if args.json:
        print(
            json.dumps(
                {
                    "kfpd": asdict(kfpd),
                    "mlmd": asdict(mlmd),
                    "ratio": round(ratio, 2),
                    "target": TARGET,
                    "verdict": verdict,
                }
            )
        )
        return
    print(f"{'system':<20}{'tasks':>7}{'seconds':>10}{'tasks/s':>10}")
    for r in (kfpd, mlmd):
        label = f"{r.system} ({r.backend})"
        print(f"{label:<20}{r.tasks:>7}{r.seconds:>10.2f}{r.tasks_per_s:>10.1f}")
    target = f"target >= {TARGET:g}x on SQLite"
    print(f"ratio kfpd/mlmd: {ratio:.2f}x ({target}): {verdict}")


if __name__ == "__main__":
    main()
