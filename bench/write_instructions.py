"""Instructions per task of bench/metadata_write.py's kfpd workload (SQLite), counted by
valgrind's callgrind: a figure that does not move with the machine's load.

Usage::

    .venv/bin/python bench/write_instructions.py [--tasks 300] [--src DIR ...]

On a shared machine the wall rate and even the server's CPU time per task swing 2x between
runs of the same code (other tenants' load changes how fast each instruction goes); the count
of instructions the server executes does not (repeat runs agree within ~0.2 %). Use it to
compare trees: ``--src /work/other/src --src src`` runs the server from each ``src`` directory
in turn (``PYTHONPATH``) and prints M instructions per task for each; the rate itself still
needs bench/metadata_write.py on a quiet machine.

The server runs under callgrind with instrumentation off (start-up, schema, a 30-task warm-up
run) and on only for the measured run of ``--tasks`` chained tasks (CreateTask + ``:finish``
each, bare HTTP/1.1 client). The count includes the end-of-run reads that the workload asserts
with (GET run, list tasks and artifacts), so it is per task of a whole run. Needs ``valgrind``
(Debian package); ~30 s per 300 tasks.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import metadata_write as mw
from kfpd_server import kfpd_server

BENCH = Path(__file__).resolve().parent
SERVER = "import sys; from kfpd.cli.main import app; sys.argv[0] = 'kfpd'; app()"


def tokens_of(src: Path) -> ModuleType:
    """The tree's own run-token module: its server checks tokens in its own format."""
    spec = importlib.util.spec_from_file_location(
        f"tokens_{abs(hash(src))}", src / "kfpd/domain/tokens.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def instructions_per_task(src: Path, tasks: int) -> float:
    mw.issue_run_token = tokens_of(src).issue_run_token
    with tempfile.TemporaryDirectory(prefix="kfpd-ir-", dir="/tmp") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            SERVER,
        ]
        env = {"PYTHONPATH": str(src), "PYTHONMALLOC": "malloc"}
        data = Path(tmp) / "data"
        with kfpd_server(
            "--no-orchestrate", data_dir=data, env=env, command=command, timeout_s=600
        ) as srv:
            http = mw.RawCaller(srv.url)
            key = data / "run-token.key"
            mw.kfpd_workload(http, 30, "launcher", key)  # warm-up, not counted
            pid = str(srv.process.pid)
            subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
            mw.kfpd_workload(http, tasks, "launcher", key)
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            http.close()
        total = 0
        for dump in Path(tmp).glob("callgrind.out*"):
            for line in dump.read_text().splitlines():
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
    if total == 0:
        raise RuntimeError("callgrind wrote no counts")
    return total / tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--src", type=Path, action="append", help="a src dir (default: this tree's)")
    args = ap.parse_args()
    for src in args.src or [BENCH.parent / "src"]:
        per_task = instructions_per_task(src.resolve(), args.tasks)
        print(f"{per_task / 1e6:6.2f} M instructions per task  ({args.tasks} tasks, {src})")


if __name__ == "__main__":
    main()
