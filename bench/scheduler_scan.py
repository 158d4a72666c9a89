"""The recurring-run scheduler's pass over N enabled schedules (no slot due), on SQLite.

Anchor: the same pass deciding every schedule from scratch (build its timeline, find the
first slot after its cursor with croniter) — what the scheduler did before it remembered
timelines and cursors (functools caches in domain/schedule.py). The scheduler runs one pass
per second (``scheduler_poll_seconds``), so a pass must stay far below a second.

    .venv/bin/python bench/scheduler_scan.py [--schedules 1000] [--repeats 10]

Half the schedules are hourly crons, half hourly periodic; timezones UTC.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.db.models import Experiment, RecurringRun
from kfpd.domain.schedule import Timeline
from kfpd.domain.timeutil import now_us
from kfpd.services import recurring_runs as svc


def seed(db: Database, count: int) -> None:
    now = now_us()
    with db.write_session() as s:
        s.add(
            Experiment(
                id="e",
                namespace="",
                display_name="bench",
                description="",
                created_at=now,
                storage_state=1,
                last_run_created_at=0,
            )
        )
        s.flush()
        for i in range(count):
            s.add(
                RecurringRun(
                    id=f"r{i}",
                    namespace="",
                    experiment_id="e",
                    display_name=f"schedule {i}",
                    description="",
                    runtime_config={},
                    service_account="",
                    max_concurrency=1,
                    cron="0 0 * * * *" if i % 2 else "",
                    interval_second=0 if i % 2 else 3600,
                    start_time=0,
                    end_time=0,
                    timezone="UTC",
                    status=1,
                    no_catchup=0,
                    created_at=now,
                    updated_at=now,
                    settled_until=now,
                    last_index=0,
                    pipeline_spec={"pipelineInfo": {"name": "bench"}},
                )
            )


def timed(work: Callable[[], None], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        upgrade(url)
        db = Database(url)
        seed(db, args.schedules)

        def scan() -> None:
            with db.read_session() as s:
                assert not any(d.fire for _, d in svc.scan(s, now_us()))

        def from_scratch() -> None:
            with db.read_session() as s:
                for row in s.scalars(select(RecurringRun).where(RecurringRun.status == 1)):
                    first = Timeline(svc.trigger_of(row), row.created_at).next_after(
                        row.settled_until
                    )
                    assert first is not None and first > now_us()

        scan()  # the first pass fills the caches
        anchor = timed(from_scratch, args.repeats)
        ours = timed(scan, args.repeats)
        db.dispose()
    print(f"scheduler pass over {args.schedules} enabled schedules (ms, {args.repeats} passes)")
    for label, times in (("from scratch (anchor)", anchor), ("kfpd scan", ours)):
        print(f"  {label:22} median {statistics.median(times):8.1f}  max {max(times):8.1f}")
    print(f"  ratio: {statistics.median(anchor) / statistics.median(ours):.1f}x")


if __name__ == "__main__":
    main()
