"""Schedule semantics, pure: cron as upstream reads it, slots, catch-up, macros."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kfpd.domain.errors import InvalidArgument
from kfpd.domain.schedule import (
    MacroValues,
    ScheduleState,
    Timeline,
    Trigger,
    decide,
    expand_macros,
    format_go_time,
    parse_cron,
    parse_go_duration,
)

S = 1_000_000


def at(text: str) -> int:
    """Microseconds of a UTC time written 'YYYY-MM-DD HH:MM:SS'."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * S


def iso(us: int) -> str:
    return datetime.fromtimestamp(us // S, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_five_fields_are_read_seconds_first_as_upstream() -> None:
    # robfig/cron v1: '0 */5 * * *' is sec=0 min=*/5: every five minutes.
    timeline = Timeline(Trigger(cron="0 */5 * * *"), at("2026-01-01 00:00:00"))
    assert [iso(t) for t in timeline.upcoming(at("2026-01-01 00:00:00"), 3)] == [
        "2026-01-01 00:05:00",
        "2026-01-01 00:10:00",
        "2026-01-01 00:15:00",
    ]
    assert parse_cron("0 0 9 ? * 2-6").fields == "0 0 9 ? * 2-6"
    assert parse_cron("1 2 3 4 5").fields == "1 2 3 4 5 *"


@pytest.mark.parametrize(
    ("expression", "first", "second"),
    [
        ("@daily", "2026-01-02 00:00:00", "2026-01-03 00:00:00"),
        ("@hourly", "2026-01-01 11:00:00", "2026-01-01 12:00:00"),
        ("@weekly", "2026-01-04 00:00:00", "2026-01-11 00:00:00"),  # Sundays
        ("@every 1h30m", "2026-01-01 11:30:00", "2026-01-01 13:00:00"),
        ("@every 2s", "2026-01-01 10:00:02", "2026-01-01 10:00:04"),
        ("*/20 * * * * *", "2026-01-01 10:00:20", "2026-01-01 10:00:40"),
    ],
)
def test_descriptors_and_every(expression: str, first: str, second: str) -> None:
    timeline = Timeline(Trigger(cron=expression), at("2026-01-01 10:00:00"))
    assert [iso(t) for t in timeline.upcoming(0, 2)] == [first, second]


@pytest.mark.parametrize(
    "bad", ["", "* * * *", "1 2 3 4 5 6 7", "@fortnightly", "@every", "@every 5x", "61 * * * * *"]
)
def test_bad_cron_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Trigger(cron=bad).validate()


def test_go_durations() -> None:
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5s") == 1.5
    assert parse_cron("@every 300ms").every_seconds == 1  # robfig: at least one second


def test_timezone_per_schedule() -> None:
    trigger = Trigger(cron="0 0 9 * * *", timezone="America/New_York")
    timeline = Timeline(trigger, at("2026-01-01 00:00:00"))
    assert iso(timeline.upcoming(0, 1)[0]) == "2026-01-01 14:00:00"  # 09:00 EST
    with pytest.raises(InvalidArgument):
        Trigger(cron="@daily", timezone="Mars/Olympus").validate()


def test_periodic_slots_start_end() -> None:
    trigger = Trigger(
        interval_second=60, start_us=at("2026-01-01 10:00:00"), end_us=at("2026-01-01 10:03:00")
    )
    timeline = Timeline(trigger, at("2025-12-01 00:00:00"))
    assert [iso(t) for t in timeline.upcoming(0, 10)] == [
        "2026-01-01 10:01:00",
        "2026-01-01 10:02:00",
        "2026-01-01 10:03:00",
    ]
    assert (
        iso(timeline.latest_at_or_before(at("2026-01-01 10:02:30")) or 0) == "2026-01-01 10:02:00"
    )
    assert (
        iso(timeline.latest_at_or_before(at("2026-02-01 00:00:00")) or 0) == "2026-01-01 10:03:00"
    )
    assert timeline.latest_at_or_before(at("2026-01-01 10:00:59")) is None
    with pytest.raises(InvalidArgument):
        Trigger(interval_second=0).validate()
    with pytest.raises(InvalidArgument):
        Trigger(
            interval_second=5, start_us=at("2026-01-02 00:00:00"), end_us=at("2026-01-01 00:00:00")
        ).validate()


def state(
    timeline: Timeline, after: int, active: int = 0, cap: int = 1, no_catchup: bool = False
) -> ScheduleState:
    return ScheduleState(timeline, after, active, cap, no_catchup)


MINUTELY = Timeline(Trigger(interval_second=60), at("2026-01-01 00:00:00"))


def test_nothing_due_sleeps_until_the_next_slot() -> None:
    decision = decide(state(MINUTELY, 0), at("2026-01-01 00:00:30"))
    assert decision.fire == [] and not decision.deferred
    assert decision.wake_at_us == at("2026-01-01 00:01:00")


def test_catch_up_fires_oldest_first_within_max_concurrency() -> None:
    now = at("2026-01-01 00:10:30")  # ten slots missed
    decision = decide(state(MINUTELY, 0, active=1, cap=4), now)
    assert [iso(t) for t in decision.fire] == [
        "2026-01-01 00:01:00",
        "2026-01-01 00:02:00",
        "2026-01-01 00:03:00",
    ]
    assert decision.deferred
    # Those runs finished: the next ones, from where the cursor stands.
    later = decide(state(MINUTELY, decision.fire[-1], active=0, cap=4), now)
    assert next(iso(t) for t in later.fire) == "2026-01-01 00:04:00"


def test_max_concurrency_defers_not_drops() -> None:
    now = at("2026-01-01 00:01:10")
    busy = decide(state(MINUTELY, 0, active=1, cap=1), now)
    assert busy.fire == [] and busy.deferred
    # Minutes later, the run finished: the deferred slot fires first, then the rest in turn.
    free = decide(state(MINUTELY, 0, active=0, cap=1), at("2026-01-01 00:03:10"))
    assert [iso(t) for t in free.fire] == ["2026-01-01 00:01:00"] and free.deferred


def test_no_catchup_fires_only_the_latest_missed_slot() -> None:
    now = at("2026-01-01 00:10:30")
    decision = decide(state(MINUTELY, at("2026-01-01 00:02:00"), cap=3, no_catchup=True), now)
    assert [iso(t) for t in decision.fire] == ["2026-01-01 00:10:00"]
    settled = decide(state(MINUTELY, decision.fire[0], no_catchup=True), now)
    assert settled.fire == [] and settled.wake_at_us == at("2026-01-01 00:11:00")


def test_cursor_after_reenable_skips_the_disabled_window() -> None:
    # Re-enabled at 00:10:30: the cursor moved there, nothing before it fires.
    decision = decide(state(MINUTELY, at("2026-01-01 00:10:30"), cap=5), at("2026-01-01 00:10:31"))
    assert decision.fire == [] and decision.wake_at_us == at("2026-01-01 00:11:00")


def test_cron_catch_up_and_no_catchup() -> None:
    timeline = Timeline(Trigger(cron="0 0 * * * *"), at("2026-01-01 00:00:00"))
    now = at("2026-01-01 05:30:00")
    assert [iso(t) for t in decide(state(timeline, 0, cap=2), now).fire] == [
        "2026-01-01 01:00:00",
        "2026-01-01 02:00:00",
    ]
    assert [iso(t) for t in decide(state(timeline, 0, no_catchup=True), now).fire] == [
        "2026-01-01 05:00:00"
    ]


def test_end_time_stops_the_schedule() -> None:
    timeline = Timeline(
        Trigger(interval_second=60, end_us=at("2026-01-01 00:02:00")), at("2026-01-01 00:00:00")
    )
    done = decide(state(timeline, at("2026-01-01 00:02:00")), at("2026-01-01 01:00:00"))
    assert done.fire == [] and done.wake_at_us is None


def test_macros() -> None:
    values = MacroValues(at("2026-03-04 05:06:07"), at("2026-03-04 05:07:00"), 12)
    params = {
        "when": "[[ScheduledTime]]",
        "now": "run-[[CurrentTime]]",
        "day": "[[ScheduledTime.2006-01-02]]",
        "n": "[[Index]]",
        "keep": "[[Unknown]]",
        "nested": ["[[Index]]", {"x": "[[ScheduledTime.15:04:05Z07:00]]"}],
        "number": 3,
    }
    assert expand_macros(params, values) == {
        "when": "20260304050607",
        "now": "run-20260304050700",
        "day": "2026-03-04",
        "n": "12",
        "keep": "[[Unknown]]",
        "nested": ["12", {"x": "05:06:07Z"}],
        "number": 3,
    }
    moment = datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert format_go_time(moment, "Mon Jan _2 03:04:05PM 2006") == "Fri Jan  2 03:04:05PM 2026"
