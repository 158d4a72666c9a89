"""``kfpd gc --dry-run`` over 100,000 finished runs: the issue's target is < 10 s.

Seeds a fresh database (100 experiments x 1,000 runs, 2 tasks and 1 artifact each, every
10th run reads the previous run's artifact) with Core bulk inserts, then times the real
command as a subprocess, several rounds, beside a plain ``SELECT count(*)`` over the same
runs as the floor. The policy expires about half the runs (older than 30 days, the newest 50
of each experiment kept).

    .venv/bin/python bench/gc.py [--runs-per-experiment 1000] [--db-url URL] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.db.models import Run
from tests.retention_seed import seed

KFPD = Path(sys.executable).with_name("kfpd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--runs-per-experiment", type=int, default=1000)
    parser.add_argument("--db-url", default=None, help="an EMPTY database (default: SQLite)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'kfpd.sqlite'}"
        upgrade(url)
        db = Database(url)
        total = args.experiments * args.runs_per_experiment
        started = time.perf_counter()
        seed(
            db,
            experiments=args.experiments,
            runs_per_experiment=args.runs_per_experiment,
            age_days=lambda i: 59.95 * (1 - i / args.runs_per_experiment),
            share_every=10,
            chunk=5_000,
        )
        print(f"seeded {total} runs in {time.perf_counter() - started:.1f} s ({db.dialect})")
        floor: list[float] = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            with db.read_session() as s:
                s.scalar(select(func.count()).select_from(Run))
            floor.append(time.perf_counter() - t0)
        db.dispose()
        command = [
            str(KFPD),
            "gc",
            "--dry-run",
            "--db-url",
            url,
            "--data-dir",
            tmp,
            "--max-age-days",
            "30",
            "--keep-last",
            "50",
        ]
        times: list[float] = []
        for round_no in range(args.rounds):
            t0 = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - t0)
            if round_no == 0:
                print(done.stdout)
        print(f"{'':34}{'min':>8}{'median':>8}{'max':>8}")
        for label, values in (
            ("kfpd gc --dry-run (whole command)", times),
            ("SELECT count(*) FROM runs (floor)", floor),
        ):
            low, mid, high = min(values), statistics.median(values), max(values)
            print(f"{label:34}{low:8.3f}{mid:8.3f}{high:8.3f} s")
        verdict = "met" if max(times) < 10 else "MISSED"
        print(f"target: < 10 s for {total} runs -> {verdict} (worst round {max(times):.2f} s)")


if __name__ == "__main__":
    main()
