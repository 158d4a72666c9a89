"""RecurringRunService over HTTP, and firing with a controllable clock (services + Scheduler)."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from kfpd.db.engine import Database
from kfpd.db.models import RecurringRunSlot, Run
from kfpd.domain.enums import RunState
from kfpd.domain.timeutil import now_us, parse_rfc3339, to_rfc3339
from kfpd.engine.scheduler import Scheduler
from kfpd.services import recurring_runs as svc
from tests.helpers import compiled, ok

S = 1_000_000
URL = "/apis/v2beta1/recurringruns"


def body(**over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "display_name": "nightly",
        "pipeline_spec": compiled("scheduled"),
        "runtime_config": {"parameters": {"when": "[[ScheduledTime]]"}},
        "max_concurrency": "2",
        "trigger": {"periodic_schedule": {"interval_second": "60"}},
        "mode": "ENABLE",
    }
    out.update(over)
    return out


def create(api: TestClient, **over: Any) -> dict[str, Any]:
    return ok(api.post(URL, json=body(**over)))


def test_create_get_list_enable_disable_delete(api: TestClient) -> None:
    created = create(api, description="d")
    rid = created["recurring_run_id"]
    assert created["status"] == "ENABLED" and created["mode"] == "ENABLE"
    assert created["max_concurrency"] == "2"
    assert created["trigger"] == {"periodic_schedule": {"interval_second": "60"}}
    assert len(created["next_fire_times"]) == 5
    assert (
        created["experiment_id"] and created["pipeline_spec"]["pipelineInfo"]["name"] == "scheduled"
    )
    got = ok(api.get(f"{URL}/{rid}"))
    assert got["display_name"] == "nightly" and got["description"] == "d"

    ok(api.post(f"{URL}/{rid}:disable"))
    assert ok(api.get(f"{URL}/{rid}"))["status"] == "DISABLED"
    ok(api.post(f"{URL}/{rid}:enable"))
    assert ok(api.get(f"{URL}/{rid}"))["status"] == "ENABLED"

    create(api, display_name="b", trigger={"cron_schedule": {"cron": "0 0 * * * *"}})
    listed = ok(api.get(URL, params={"page_size": 1, "sort_by": "display_name"}))
    assert listed["total_size"] == 2 and listed["next_page_token"]
    assert [r["display_name"] for r in listed["recurringRuns"]] == ["b"]
    rest = ok(api.get(URL, params={"page_token": listed["next_page_token"]}))
    assert [r["display_name"] for r in rest["recurringRuns"]] == ["nightly"]
    flt = '{"predicates":[{"key":"status","operation":"EQUALS","string_value":"ENABLED"}]}'
    assert ok(api.get(URL, params={"filter": flt}))["total_size"] == 2
    by_exp = ok(api.get(URL, params={"experiment_id": created["experiment_id"]}))
    assert by_exp["total_size"] == 2
    assert ok(api.get(URL, params={"experiment_id": "nope"})).get("recurringRuns", []) == []

    ok(api.delete(f"{URL}/{rid}"))
    assert api.get(f"{URL}/{rid}").status_code == 404
    assert api.post(f"{URL}/{rid}:enable").status_code == 404
    assert api.delete(f"{URL}/{rid}").status_code == 404


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"display_name": ""}, "display_name"),
        ({"trigger": None}, "trigger"),
        ({"trigger": {"cron_schedule": {"cron": "* * *"}}}, "fields"),
        ({"trigger": {"periodic_schedule": {"interval_second": 0}}}, "interval_second"),
        ({"max_concurrency": 11}, "max_concurrency"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"runtime_config": {"parameters": {"nope": 1}}}, "nope"),
        ({"runtime_config": {"parameters": {"pause": "[[ScheduledTime]]x"}}}, "pause"),
        ({"experiment_id": "missing"}, "experiment"),
        ({"pipeline_spec": None}, "pipeline_spec"),
        (
            {"trigger": {"cron_schedule": {"cron": "@daily", "timezone": "Nowhere/City"}}},
            "timezone",
        ),
        (
            {
                "trigger": {
                    "periodic_schedule": {
                        "interval_second": 5,
                        "start_time": "2026-02-01T00:00:00Z",
                        "end_time": "2026-01-01T00:00:00Z",
                    }
                }
            },
            "end_time",
        ),
    ],
)
def test_bad_bodies_are_refused_and_store_nothing(
    api: TestClient, over: dict[str, Any], words: str
) -> None:
    response = api.post(URL, json=body(**over))
    assert response.status_code in (400, 404), response.text
    assert words in response.json()["message"]
    assert ok(api.get(URL))["total_size"] == 0


def test_five_field_cron_shows_what_it_means(api: TestClient) -> None:
    created = create(
        api,
        trigger={"cron_schedule": {"cron": "0 */5 * * *", "start_time": "2026-01-01T00:00:00Z"}},
        mode="DISABLE",
    )
    times = [parse_rfc3339(t) // S for t in created["next_fire_times"]]
    assert {b - a for a, b in itertools.pairwise(times)} == {300}


def test_update_in_place(api: TestClient) -> None:
    rid = create(api)["recurring_run_id"]
    patched = ok(
        api.patch(
            f"{URL}/{rid}",
            json={
                "trigger": {"cron_schedule": {"cron": "0 0 9 * * *", "timezone": "Europe/Paris"}},
                "max_concurrency": 3,
                "runtime_config": {"parameters": {"when": "x", "pause": 1}},
                "display_name": "renamed",
            },
        )
    )
    assert patched["trigger"]["cron_schedule"] == {
        "cron": "0 0 9 * * *",
        "timezone": "Europe/Paris",
    }
    assert patched["max_concurrency"] == "3" and patched["display_name"] == "renamed"
    assert patched["runtime_config"]["parameters"] == {"when": "x", "pause": 1}
    assert all(t.endswith(("T08:00:00Z", "T07:00:00Z")) for t in patched["next_fire_times"])
    bad = api.patch(f"{URL}/{rid}", json={"max_concurrency": 50})
    assert bad.status_code == 400
    assert ok(api.get(f"{URL}/{rid}"))["max_concurrency"] == "3"
    assert api.patch(f"{URL}/missing", json={}).status_code == 404


# -- firing, with the clock in the test's hands


def fire(db: Database, rid: str, now: int) -> list[str]:
    with db.write_session() as s:
        return svc.fire_due(s, rid, now).run_ids


def runs_of(db: Database, rid: str) -> list[Run]:
    with db.read_session() as s:
        return list(
            s.scalars(select(Run).where(Run.recurring_run_id == rid).order_by(Run.scheduled_at))
        )


def finish_all(db: Database) -> None:
    with db.write_session() as s:
        s.execute(update(Run).values(state=int(RunState.SUCCEEDED)))


def _rfc(us: int) -> str:
    return to_rfc3339(us) or ""


def periodic(api: TestClient, start: int, **over: Any) -> str:
    """A schedule firing every minute after ``start``."""
    trigger = {"periodic_schedule": {"interval_second": 60, "start_time": _rfc(start)}}
    return str(create(api, trigger=trigger, **over)["recurring_run_id"])


def test_catch_up_oldest_first_within_max_concurrency(api: TestClient, db: Database) -> None:
    start = (now_us() // S - 3600) * S  # an hour ago: 60 slots missed
    rid = periodic(api, start, max_concurrency=2)
    first = fire(db, rid, now_us())
    assert len(first) == 2
    runs = runs_of(db, rid)
    assert [r.scheduled_at for r in runs] == [start + 60 * S, start + 120 * S]
    assert runs[0].display_name.startswith("nightly #1 (")
    assert runs[0].runtime_config["parameters"]["when"] != "[[ScheduledTime]]"
    assert fire(db, rid, now_us()) == [], "two runs active: the next slots wait"
    finish_all(db)
    assert len(fire(db, rid, now_us())) == 2
    assert [r.scheduled_at for r in runs_of(db, rid)][2] == start + 180 * S


def test_no_catchup_fires_only_the_latest(api: TestClient, db: Database) -> None:
    start = (now_us() // S - 3600) * S
    rid = periodic(api, start, no_catchup=True, max_concurrency=5)
    now = now_us()
    assert len(fire(db, rid, now)) == 1
    (run,) = runs_of(db, rid)
    assert now - 60 * S < run.scheduled_at <= now
    assert fire(db, rid, now) == []


def test_enable_never_backfills(api: TestClient, db: Database) -> None:
    start = (now_us() // S - 600) * S
    rid = periodic(api, start, mode="DISABLE", max_concurrency=10)
    t0 = now_us()
    assert fire(db, rid, t0) == [], "disabled"
    ok(api.post(f"{URL}/{rid}:enable"))
    assert fire(db, rid, now_us()) == [], "the slots before enabling never fire"
    later = fire(db, rid, now_us() + 61 * S)
    assert len(later) == 1
    assert runs_of(db, rid)[0].scheduled_at > t0


def test_latest_version_at_fire_time(api: TestClient, db: Database) -> None:
    import json

    spec = json.dumps(compiled("scheduled")).encode()
    pipeline = ok(
        api.post(
            "/apis/v2beta1/pipelines/upload",
            params={"name": "sched-pipe"},
            files={"uploadfile": ("p.json", spec)},
        )
    )
    start = (now_us() // S - 70) * S
    rid = create(
        api,
        pipeline_spec=None,
        pipeline_version_reference={"pipeline_id": pipeline["pipeline_id"]},
        trigger={"periodic_schedule": {"interval_second": 60, "start_time": _rfc(start)}},
    )["recurring_run_id"]
    newer = ok(
        api.post(
            "/apis/v2beta1/pipelines/upload_version",
            params={"pipelineid": pipeline["pipeline_id"], "name": "v2"},
            files={"uploadfile": ("p.json", spec)},
        )
    )
    fire(db, rid, now_us())
    (run,) = runs_of(db, rid)
    assert run.pipeline_version_id == newer["pipeline_version_id"]


def test_delete_leaves_its_runs(api: TestClient, db: Database) -> None:
    rid = periodic(api, (now_us() // S - 70) * S)
    fire(db, rid, now_us())
    ok(api.delete(f"{URL}/{rid}"))
    assert len(runs_of(db, rid)) == 1
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(RecurringRunSlot)) == 0


def test_concurrent_firing_claims_each_slot_once(api: TestClient, db: Database) -> None:
    """Two schedulers (as two servers would) fire the same schedule at once."""
    start = (now_us() // S - 600) * S
    rid = periodic(api, start, max_concurrency=10)
    now = now_us()
    fired: list[str] = []
    schedulers = [
        Scheduler(db, fired.append, clock=lambda: now, poll_seconds=0.1) for _ in range(2)
    ]
    barrier = threading.Barrier(2)

    def go(scheduler: Scheduler) -> None:
        barrier.wait()
        for _ in range(3):
            scheduler.tick()

    threads = [threading.Thread(target=go, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = runs_of(db, rid)
    slots = [r.scheduled_at for r in runs]
    assert len(slots) == len(set(slots)) == 10 == len(fired)
    assert sum(s.runs_fired for s in schedulers) == 10
    assert slots == [start + k * 60 * S for k in range(1, 11)]


def test_firing_errors_are_recorded_then_cleared(api: TestClient, db: Database) -> None:
    import json

    spec = json.dumps(compiled("scheduled")).encode()
    pipeline = ok(
        api.post(
            "/apis/v2beta1/pipelines/upload",
            params={"name": "emptied"},
            files={"uploadfile": ("p.json", spec)},
        )
    )
    pid = pipeline["pipeline_id"]
    start = (now_us() // S - 70) * S
    rid = create(
        api,
        pipeline_spec=None,
        pipeline_version_reference={"pipeline_id": pid},  # its latest version at fire time
        trigger={"periodic_schedule": {"interval_second": 60, "start_time": _rfc(start)}},
    )["recurring_run_id"]
    versions = ok(api.get(f"/apis/v2beta1/pipelines/{pid}/versions"))["pipeline_versions"]
    ok(api.delete(f"/apis/v2beta1/pipelines/{pid}/versions/{versions[0]['pipeline_version_id']}"))
    fired: list[str] = []
    scheduler = Scheduler(db, fired.append)
    scheduler.tick()
    assert fired == [] and scheduler.fire_errors == 1
    error = ok(api.get(f"{URL}/{rid}"))["error"]
    assert "no versions" in error["message"] and error["code"] == 5
    scheduler.tick()
    assert scheduler.fire_errors == 1, "retried later, not on every pass"
    ok(
        api.post(
            "/apis/v2beta1/pipelines/upload_version",
            params={"pipelineid": pid, "name": "v2"},
            files={"uploadfile": ("p.json", spec)},
        )
    )
    scheduler.wake()  # as a change through the API does
    scheduler.tick()
    assert len(fired) == 1 == scheduler.runs_fired
    assert "error" not in ok(api.get(f"{URL}/{rid}"))


def test_archiving_the_experiment_disables_its_schedules(api: TestClient, db: Database) -> None:
    rid = periodic(api, (now_us() // S - 70) * S)
    exp = ok(api.get(f"{URL}/{rid}"))["experiment_id"]
    ok(api.post(f"/apis/v2beta1/experiments/{exp}:archive"))
    assert ok(api.get(f"{URL}/{rid}"))["status"] == "DISABLED"
    assert fire(db, rid, now_us()) == []
    ok(api.post(f"/apis/v2beta1/experiments/{exp}:unarchive"))
    assert ok(api.get(f"{URL}/{rid}"))["status"] == "DISABLED", "as upstream: stays disabled"
    ok(api.post(f"{URL}/{rid}:enable"))
    fired: list[str] = []
    scheduler = Scheduler(db, fired.append)
    scheduler.tick()
    assert fired == [], "enabling never backfills the slot that passed while disabled"
    assert (scheduler.seconds_since_tick() or 0) >= 0


def test_update_leaves_runs_in_flight_alone(api: TestClient, db: Database) -> None:
    start = (now_us() // S - 70) * S
    rid = periodic(api, start, max_concurrency=1)
    (first,) = fire(db, rid, now_us())
    ok(
        api.patch(
            f"{URL}/{rid}",
            json={
                "runtime_config": {"parameters": {"when": "v2-[[Index]]"}},
                "max_concurrency": 2,
                "trigger": {
                    "periodic_schedule": {"interval_second": 30, "start_time": _rfc(start)}
                },
            },
        )
    )
    (run,) = runs_of(db, rid)
    assert run.id == first and run.state == int(RunState.PENDING), "the run in flight is untouched"
    assert run.runtime_config["parameters"]["when"] != "v2-[[Index]]"
    # The new trigger counts from the update: its first slot comes after it, with the new
    # parameters, beside the run still active (max_concurrency 2 now).
    assert fire(db, rid, now_us()) == []
    second = fire(db, rid, now_us() + 31 * S)
    assert len(second) == 1
    newest = runs_of(db, rid)[-1]
    assert newest.runtime_config["parameters"]["when"] == "v2-2"


def test_scan_decides_only_what_is_due(api: TestClient, db: Database) -> None:
    start = (now_us() // S - 90) * S
    due = periodic(api, start)  # one slot came 30 s ago
    later = periodic(api, start + 80 * S)  # its first slot is 50 s away
    ended = create(
        api,
        trigger={
            "periodic_schedule": {
                "interval_second": 60,
                "start_time": _rfc(start - 3600 * S),
                "end_time": _rfc(start - 3500 * S),
            }
        },
    )["recurring_run_id"]
    ok(api.post(f"{URL}/{ended}:enable"))
    with db.write_session() as s:  # its only slot fired long ago
        svc.fire_due(s, ended, now_us())
    now = now_us()
    with db.read_session() as s:
        decisions = dict(svc.scan(s, now))
    assert decisions[due].fire == [start + 60 * S]
    assert decisions[later].fire == [] and decisions[later].wake_at_us == start + 140 * S
    assert decisions[ended].fire == [] and decisions[ended].wake_at_us is None
