"""Soak: mixed submissions for a bounded time while the server is restarted at random
(SIGTERM and SIGKILL) and task launchers are killed; then every acknowledged run must end.

Usage::

    .venv/bin/python bench/soak.py [--minutes 30] [--db-url URL] [--seed N]

One ``kfpd server`` process at a time, always on the same port, data dir and database (the
launchers' reports find the next server). Submissions (a quick run, a slow task with
retries, a small fan-out) go on during the whole time; a submission the server did not
acknowledge (it was down) is tried again. At the end the chaos stops and the script waits for
every run to finish (up to ``--settle`` minutes).

Reports: runs submitted (acknowledged), completed (SUCCEEDED), failed because an injected
task kill used up the task's retries (explained), lost (goal 0: not final after the settle
time, FAILED/CANCELED with no injected kill, or missing), restarts of each kind, task kills,
and the server's RSS over time (VmRSS sampled every 10 s; per-minute maximum).
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kfp import compiler, dsl
from kfpd_server import KFPD, free_port

API = "/apis/v2beta1"
FINAL = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


@dsl.component(base_image="python:3.11")
def sleep_for(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@dsl.component(base_image="python:3.11")
def add(a: float, b: float) -> float:
    return a + b


@dsl.pipeline(name="soak-quick")
def quick() -> float:
    return add(a=1.0, b=2.0).set_caching_options(False).output


@dsl.pipeline(name="soak-slow")
def slow(seconds: float = 5.0) -> float:
    slept = sleep_for(seconds=seconds).set_caching_options(False)
    slept.set_retry(num_retries=3, backoff_duration="1s")
    return add(a=slept.output, b=1.0).set_caching_options(False).output


@dsl.pipeline(name="soak-fanout")
def fanout() -> None:
    with dsl.ParallelFor([0.5, 1.0, 1.5, 2.0]) as seconds:
        task = sleep_for(seconds=seconds).set_caching_options(False)
        task.set_retry(num_retries=3, backoff_duration="1s")


PIPELINES = {"quick": quick, "slow": slow, "fanout": fanout}


@dataclass
class Server:
    port: int
    data_dir: Path
    db_url: str
    extra: list[str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        cmd = [str(KFPD), "server", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        cmd += ["--log-level", "warning", *self.extra]
        if self.db_url:
            cmd += ["--db-url", self.db_url]
        with (self.data_dir / "server.log").open("ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError("kfpd server did not come up; see server.log in " + str(self.data_dir))

    def stop(self, sig: signal.Signals) -> float:
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(sig)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - began

    def rss_mib(self) -> float | None:
        if self.process is None or self.process.poll() is not None:
            return None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None


@dataclass
class Soak:
    server: Server
    rng: random.Random
    versions: dict[str, tuple[str, str]] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)  # run id -> pipeline kind
    killed_runs: set[str] = field(default_factory=set)  # runs one of whose launchers we killed
    rss: list[tuple[float, float]] = field(default_factory=list)  # (minute, MiB)
    restarts: dict[str, int] = field(default_factory=lambda: {"SIGTERM": 0, "SIGKILL": 0})
    stop_seconds: list[float] = field(default_factory=list)
    task_kills: int = 0
    refused: int = 0

    def upload(self, tmp: Path) -> None:
        for kind, pipeline in PIPELINES.items():
            path = tmp / f"{kind}.yaml"
            compiler.Compiler().compile(pipeline, str(path))
            body = yaml.safe_load(path.read_text())
            response = httpx.post(
                f"{self.server.url}{API}/pipelines/upload",
                files={"uploadfile": (f"{kind}.yaml", yaml.safe_dump(body))},
                params={"name": f"soak-{kind}-{os.getpid()}"},
                timeout=60,
            )
            response.raise_for_status()
            pipeline_id = response.json()["pipeline_id"]
            listed = httpx.get(f"{self.server.url}{API}/pipelines/{pipeline_id}/versions")
            version = listed.json()["pipeline_versions"][0]["pipeline_version_id"]
            self.versions[kind] = (pipeline_id, version)

    def submit(self) -> None:
        kind = self.rng.choice(["quick", "slow", "slow", "fanout"])
        pipeline_id, version_id = self.versions[kind]
        parameters: dict[str, Any] = {}
        if kind == "slow":
            parameters["seconds"] = round(self.rng.uniform(2.0, 20.0), 1)
        body = {
            "display_name": f"soak {kind} {len(self.runs)}",
            "pipeline_version_reference": {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": version_id,
            },
            "runtime_config": {"parameters": parameters},
        }
        try:
            response = httpx.post(f"{self.server.url}{API}/runs", json=body, timeout=30)
        except httpx.HTTPError:
            self.refused += 1  # the server is down: not acknowledged, not counted
            return
        if response.status_code == 200:
            self.runs[response.json()["run_id"]] = kind
        else:
            self.refused += 1

    def restart(self) -> None:
        sig = self.rng.choice([signal.SIGTERM, signal.SIGKILL])
        self.stop_seconds.append(self.server.stop(sig))
        self.restarts[sig.name] += 1
        time.sleep(self.rng.uniform(0.0, 3.0))  # launchers finishing meanwhile must retry
        self.server.start()

    def kill_a_task(self) -> None:
        from kfpd.executors import pidfile

        candidates = []
        for pid_file in (self.server.data_dir / "work").glob(f"*/*/{pidfile.PID_FILE}"):
            identity = pidfile.read(pid_file.parent)
            if identity is not None and pidfile.is_running(identity):
                candidates.append((pid_file.parent.parent.name, identity.pid))
        if not candidates:
            return
        run_id, pid = self.rng.choice(candidates)
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        self.killed_runs.add(run_id)
        self.task_kills += 1

    def sample_rss(self, began: float) -> None:
        rss = self.server.rss_mib()
        if rss is not None:
            self.rss.append(((time.monotonic() - began) / 60, rss))

    def states(self) -> dict[str, tuple[str, str]]:
        """run id -> (state, error message) of every run in the server."""
        found: dict[str, tuple[str, str]] = {}
        token = ""
        while True:
            params: dict[str, Any] = {"page_size": 200}
            if token:
                params["page_token"] = token
            body = httpx.get(f"{self.server.url}{API}/runs", params=params, timeout=60).json()
            for run in body.get("runs") or []:
                message = (run.get("error") or {}).get("message", "")
                found[run["run_id"]] = (run.get("state", ""), message)
            token = body.get("next_page_token") or ""
            if not token:
                return found


def _chaos(soak: Soak, seconds: float, args: argparse.Namespace) -> None:
    began = time.monotonic()
    next_submit = began
    next_restart = began + soak.rng.uniform(*args.restart_every)
    next_kill = began + soak.rng.uniform(*args.kill_every)
    next_sample = began
    next_progress = began + 60
    while (now := time.monotonic()) < began + seconds:
        if now >= next_submit:
            soak.submit()
            next_submit = now + soak.rng.uniform(0.5, 2.0) * args.submit_every
        if now >= next_restart:
            soak.restart()
            next_restart = time.monotonic() + soak.rng.uniform(*args.restart_every)
        if now >= next_kill:
            soak.kill_a_task()
            next_kill = now + soak.rng.uniform(*args.kill_every)
        if now >= next_sample:
            soak.sample_rss(began)
            next_sample = now + 10
        if now >= next_progress:
            next_progress = now + 60
            rss = soak.rss[-1][1] if soak.rss else float("nan")
            print(
                f"  {(now - began) / 60:5.1f} min: {len(soak.runs)} submitted, restarts "
                f"{soak.restarts}, task kills {soak.task_kills}, RSS {rss:.0f} MiB",
                flush=True,
            )
        time.sleep(0.2)


def _report(soak: Soak, settle_s: float) -> int:
    deadline = time.monotonic() + settle_s
    while True:
        states = soak.states()
        pending = [r for r in soak.runs if states.get(r, ("", ""))[0] not in FINAL]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(5)
    succeeded = [r for r in soak.runs if states.get(r, ("", ""))[0] == "SUCCEEDED"]
    explained, lost = [], []
    for run_id in soak.runs:
        state, message = states.get(run_id, ("MISSING", ""))
        if state == "SUCCEEDED":
            continue
        if state in ("FAILED", "CANCELED") and run_id in soak.killed_runs:
            explained.append(run_id)
        else:
            lost.append((run_id, state, message))
    unacknowledged = len(set(states) - set(soak.runs))
    print(f"runs submitted (acknowledged): {len(soak.runs)}")
    print(f"completed (SUCCEEDED): {len(succeeded)}")
    print(f"failed after an injected task kill used up its retries: {len(explained)}")
    print(f"lost: {len(lost)} (goal 0)")
    for run_id, state, message in lost[:20]:
        print(f"  {run_id} ({soak.runs[run_id]}): {state} {message[:200]}")
    print(f"runs created but not acknowledged (server killed mid-request): {unacknowledged}")
    print(f"submissions refused while the server was down: {soak.refused}")
    print(f"server restarts: {soak.restarts}; task launchers killed: {soak.task_kills}")
    if soak.stop_seconds:
        print(f"server stop time: max {max(soak.stop_seconds):.1f} s")
    per_minute: dict[int, float] = {}
    for minute, mib in soak.rss:
        per_minute[int(minute)] = max(per_minute.get(int(minute), 0.0), mib)
    print("server RSS (MiB), max per minute:")
    print("  " + " ".join(f"{m}:{v:.0f}" for m, v in sorted(per_minute.items())))
    if soak.rss:
        print(f"server RSS: max {max(v for _, v in soak.rss):.0f} MiB")
    return 1 if lost else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="chaos time (30)")
    parser.add_argument("--settle", type=float, default=5.0, help="minutes to wait at the end")
    parser.add_argument("--db-url", default="", help="default: SQLite in the data dir")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--submit-every", type=float, default=4.0, help="mean seconds")
    parser.add_argument("--restart-every", type=float, nargs=2, default=(45.0, 120.0))
    parser.add_argument("--kill-every", type=float, nargs=2, default=(20.0, 60.0))
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kfpd-soak-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        extra = ["--max-parallel", str(args.max_parallel)]
        server = Server(free_port(), data_dir, args.db_url, extra)
        soak = Soak(server, random.Random(args.seed))
        print(f"soak: {args.minutes:g} min on {args.db_url or 'SQLite'}, data in {data_dir}")
        server.start()
        try:
            soak.upload(Path(tmp))
            _chaos(soak, args.minutes * 60, args)
            return _report(soak, args.settle * 60)
        finally:
            if server.process is not None and server.process.poll() is None:
                server.stop(signal.SIGTERM)
            _kill_leftovers(data_dir)


def _kill_leftovers(data_dir: Path) -> None:
    from kfpd.executors import pidfile

    for pid_file in (data_dir / "work").glob(f"*/*/{pidfile.PID_FILE}"):
        identity = pidfile.read(pid_file.parent)
        if identity is not None and pidfile.is_running(identity):
            os.killpg(identity.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
