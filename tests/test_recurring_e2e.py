"""Recurring runs in real time through the kfp SDK, on SQLite, PostgreSQL and MariaDB: schedules
fire and their runs succeed, disable stops, enable does not backfill, delete 404s,
max_concurrency holds with long tasks, two servers on one database fire each slot once, and
servers killed with SIGKILL catch up (or not, with no_catchup) without any slot firing twice."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kfp_server_api.exceptions import ApiException

from kfpd.db.engine import Database
from kfpd.domain.timeutil import now_us, parse_rfc3339, to_rfc3339
from tests.conftest import _free_port
from tests.helpers import compiled

S = 1_000_000


def _client(url: str) -> Any:
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=url)


@pytest.fixture
def package(tmp_path: Path) -> str:
    path = tmp_path / "scheduled.yaml"
    path.write_text(yaml.safe_dump(compiled("scheduled")))
    return str(path)


def _runs(url: str, recurring_run_id: str) -> list[dict[str, Any]]:
    flt = (
        '{"predicates":[{"key":"recurring_run_id","operation":"EQUALS",'
        f'"string_value":"{recurring_run_id}"}}]}}'
    )
    body = httpx.get(
        f"{url}/apis/v2beta1/runs",
        params={"filter": flt, "page_size": 200, "sort_by": "scheduled_at"},
        timeout=10,
    ).json()
    runs: list[dict[str, Any]] = body.get("runs", [])
    return runs


def _wait(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _start(seconds_from_now: int = 0) -> tuple[int, str]:
    start = (now_us() // S + seconds_from_now) * S
    return start, to_rfc3339(start) or ""


def test_schedules_fire_disable_enable_delete_max_concurrency(
    orchestrated_server: Any, package: str
) -> None:
    url = orchestrated_server()
    client = _client(url)
    exp = client.create_experiment("e2e").experiment_id
    start_us, start = _start()
    periodic = client.create_recurring_run(
        experiment_id=exp,
        job_name="every-second",
        start_time=start,
        interval_second=1,
        max_concurrency=2,
        params={"when": "[[ScheduledTime]]"},
        pipeline_package_path=package,
    ).recurring_run_id
    long = client.create_recurring_run(
        experiment_id=exp,
        job_name="long",
        start_time=start,
        interval_second=1,
        max_concurrency=1,
        params={"when": "[[ScheduledTime]]", "pause": 2},
        pipeline_package_path=package,
    ).recurring_run_id
    cron = client.create_recurring_run(
        experiment_id=exp,
        job_name="cron",
        cron_expression="*/2 * * * * *",
        max_concurrency=2,
        params={"when": "[[Index]]"},
        pipeline_package_path=package,
    ).recurring_run_id

    def succeeded(rid: str, n: int) -> bool:
        return sum(r["state"] == "SUCCEEDED" for r in _runs(url, rid)) >= n

    _wait(
        "two successful runs of each schedule",
        lambda: succeeded(periodic, 2) and succeeded(cron, 2),
    )
    first = _runs(url, periodic)[0]
    assert parse_rfc3339(first["scheduled_at"]) == start_us + S
    assert first["display_name"].startswith("every-second #1 (")
    slot_text = time.strftime("%Y%m%d%H%M%S", time.gmtime(start_us // S + 1))
    assert first["runtime_config"]["parameters"]["when"] == slot_text  # [[ScheduledTime]]
    cron_runs = _runs(url, cron)
    assert all(parse_rfc3339(r["scheduled_at"]) // S % 2 == 0 for r in cron_runs)

    _wait("three runs of the long schedule", lambda: len(_runs(url, long)) >= 3, timeout=40)
    client.disable_recurring_run(long)
    runs = _runs(url, long)
    # Slots that came while its run was active waited their turn: none was dropped, and
    # never two ran at once.
    slots = [parse_rfc3339(r["scheduled_at"]) for r in runs]
    assert slots == [start_us + k * S for k in range(1, len(runs) + 1)]
    for before, after in itertools.pairwise(runs):
        assert before["state"] == "SUCCEEDED"
        assert parse_rfc3339(after["created_at"]) >= parse_rfc3339(before["finished_at"])

    client.disable_recurring_run(periodic)
    disabled_at = now_us()
    count = len(_runs(url, periodic))
    time.sleep(2.5)
    assert len(_runs(url, periodic)) == count, "a disabled schedule does not fire"

    enabled_at = now_us()
    client.enable_recurring_run(periodic)
    _wait("a run after enabling", lambda: len(_runs(url, periodic)) > count)
    later = [parse_rfc3339(r["scheduled_at"]) for r in _runs(url, periodic)[count:]]
    assert min(later) > enabled_at - S, "the disabled window is not backfilled"
    assert disabled_at < enabled_at

    for rid in (periodic, cron, long):
        client.delete_recurring_run(rid)
        with pytest.raises(ApiException) as err:
            client.get_recurring_run(rid)
        assert err.value.status == 404
    kept = len(_runs(url, periodic))
    time.sleep(1.5)
    assert len(_runs(url, periodic)) == kept > 0, "its runs stay, and no new ones come"


# -- a server killed with SIGKILL


@pytest.fixture
def kfpd_process(
    database_url: str, db: Database, tmp_path: Path
) -> Iterator[Callable[[], tuple[str, int]]]:
    """Start `kfpd server` processes on the test database, each leading its own process group:
    ``url, pid = kfpd_process()``."""
    assert db is not None  # emptied before the test
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, int]:
        port = _free_port()
        from tests.conftest import _RESERVED

        _RESERVED.pop(port).close()
        env = {**os.environ, "KFPD_SCHEDULER_POLL_SECONDS": "0.2"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kfpd.cli.main",
                "server",
                "--port",
                str(port),
                "--db-url",
                database_url,
                "--data-dir",
                str(tmp_path),
                "--log-level",
                "warning",
            ],
            env=env,
            start_new_session=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, "kfpd server exited"
            try:
                return httpx.get(f"{url}/apis/v2beta1/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("kfpd server", up, timeout=60)
        return url, proc.pid

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing to keep: quicker than a clean stop
            proc.wait(timeout=20)


def test_sigkill_and_restart_catch_up_without_double_firing(
    database_url: str, kfpd_process: Callable[[], tuple[str, int]], package: str
) -> None:
    """Two servers share the database (PostgreSQL/MariaDB; SQLite takes one process per file)
    and both fire the schedules; both are killed with SIGKILL; one comes back and catches up."""
    url, pid = kfpd_process()
    pids = [pid]
    if not database_url.startswith("sqlite"):
        pids.append(kfpd_process()[1])
    client = _client(url)
    exp = client.create_experiment("crash").experiment_id
    start_us, start = _start()
    common: dict[str, Any] = {
        "experiment_id": exp,
        "start_time": start,
        "interval_second": 1,
        "max_concurrency": 10,
        "params": {"when": "[[ScheduledTime]]"},
        "pipeline_package_path": package,
    }
    catchup = client.create_recurring_run(job_name="catchup", **common).recurring_run_id
    latest = client.create_recurring_run(
        job_name="latest", no_catchup=True, **common
    ).recurring_run_id
    _wait("runs before the crash", lambda: len(_runs(url, catchup)) >= 2)

    for pid in pids:
        os.killpg(pid, signal.SIGKILL)  # the server and every task process it started
    killed_at = now_us()
    time.sleep(1)  # slots pass with no server (and more while it starts again)

    url, _ = kfpd_process()
    restarted_at = now_us()
    _wait(
        "the restarted server to pass the downtime",
        lambda: (
            any(parse_rfc3339(r["scheduled_at"]) > restarted_at for r in _runs(url, catchup))
            and any(parse_rfc3339(r["scheduled_at"]) > restarted_at for r in _runs(url, latest))
        ),
    )
    client = _client(url)
    client.disable_recurring_run(catchup)
    client.disable_recurring_run(latest)

    slots = [parse_rfc3339(r["scheduled_at"]) for r in _runs(url, catchup)]
    assert len(slots) == len(set(slots)), "no slot fired twice"
    assert slots == [start_us + k * S for k in range(1, len(slots) + 1)], "every missed slot fired"
    assert any(killed_at < s < restarted_at for s in slots), "the downtime was caught up"

    latest_slots = [parse_rfc3339(r["scheduled_at"]) for r in _runs(url, latest)]
    assert len(latest_slots) == len(set(latest_slots)), "no slot fired twice"
    # no_catchup: after the restart only the latest missed slot fired: the slots jump over
    # the downtime (the server was down 1 s plus its start-up).
    across = [(a, b) for a, b in itertools.pairwise(latest_slots) if a <= killed_at < b]
    assert len(across) == 1 and across[0][1] - across[0][0] >= 2 * S, latest_slots
    assert killed_at < across[0][1] <= restarted_at, "the one it fired is a missed slot"
