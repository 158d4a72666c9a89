"""Recurring-run schedules: when slots fall, which ones fire now, parameter macros.

Everything here is pure: time comes in as an argument (microseconds since the epoch), so the
scheduler's decisions are unit-tested with a controllable clock.

Semantics follow upstream's ScheduledWorkflow controller (robfig/cron v1):

- A cron string has a leading **seconds** field: ``sec min hour dom month [dow]``. A 5-field
  string is read the way upstream reads it, as ``sec min hour dom month`` (day-of-week ``*``),
  so ``0 */5 * * *`` fires every 5 minutes, not at minute 0 of every 5th hour. The API answers
  with the next fire times so the user sees what a string means.
- ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight`` ``@hourly`` and
  ``@every <Go duration>`` (whole seconds, at least 1 s) are accepted.
- Slots fall strictly after the schedule's anchor (start_time, else its creation time) and at
  or before end_time. Periodic slots are ``anchor + k * interval`` (k >= 1); ``@every`` is
  periodic too. Cron slots are computed in the schedule's timezone (kfpd extension, default UTC;
  upstream has one timezone per controller).
- Catch-up (upstream's default): every missed slot fires, oldest first, at most
  ``max_concurrency`` runs active at once; the rest wait (deferred, never dropped).
  ``no_catchup``: only the latest missed slot fires.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from kfpd.domain.errors import InvalidArgument

SECOND_US = 1_000_000
MAX_CONCURRENCY = 10

_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``1h30m`` or ``2s``."""
    rest = text.strip()
    if not rest:
        raise InvalidArgument("@every needs a duration, e.g. '@every 1h30m'")
    total = 0.0
    while rest:
        match = _GO_DURATION_PART.match(rest)
        if match is None:
            raise InvalidArgument(f"invalid duration {text.strip()!r}; use e.g. 90s, 15m or 1h30m")
        total += float(match.group(1)) * _GO_UNIT_SECONDS[match.group(2)]
        rest = rest[match.end() :]
    return total


@dataclass(frozen=True)
class CronSpec:
    """A cron string as kfpd evaluates it: six fields (seconds first) or a fixed interval."""

    fields: str = ""  # six fields for croniter with second_at_beginning=True
    every_seconds: int = 0  # @every


@functools.lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronSpec:
    """Read a cron string the way robfig/cron v1 ``Parse`` does (see the module doc)."""
    text = " ".join((expression or "").split())
    if not text:
        raise InvalidArgument("cron_schedule.cron is required")
    lowered = text.lower()
    if lowered.startswith("@every"):
        seconds = int(parse_go_duration(text[len("@every") :]))  # robfig drops the fraction
        return CronSpec(every_seconds=max(seconds, 1))
    if text.startswith("@"):
        fields = _DESCRIPTORS.get(lowered)
        if fields is None:
            known = ", ".join([*_DESCRIPTORS, "@every <duration>"])
            raise InvalidArgument(f"unknown cron descriptor {text!r}; known: {known}")
        return CronSpec(fields=fields)
    parts = text.split(" ")
    if len(parts) == 5:
        parts.append("*")  # robfig v1: day-of-week is optional
    if len(parts) != 6:
        raise InvalidArgument(
            f"cron {text!r} has {len(parts)} fields; kfpd (like upstream) expects 6 "
            "'sec min hour day-of-month month day-of-week' or 5 (day-of-week omitted)"
        )
    fields = " ".join(parts)
    if not croniter.is_valid(fields, second_at_beginning=True):
        raise InvalidArgument(f"invalid cron expression {text!r}")
    return CronSpec(fields=fields)


def parse_timezone(name: str | None) -> str:
    """An IANA timezone name (empty = UTC)."""
    if not name:
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"unknown timezone {name!r}; use an IANA name") from exc
    return name


@dataclass(frozen=True)
class Trigger:
    """A schedule's trigger with its times resolved (0 = not set)."""

    cron: str = ""
    interval_second: int = 0
    start_us: int = 0
    end_us: int = 0
    timezone: str = "UTC"

    def validate(self) -> None:
        if bool(self.cron) == bool(self.interval_second):
            raise InvalidArgument(
                "trigger needs exactly one of cron_schedule.cron or "
                "periodic_schedule.interval_second"
            )
        if not self.cron and self.interval_second < 1:
            raise InvalidArgument("periodic_schedule.interval_second must be at least 1")
        if self.cron:
            parse_cron(self.cron)
        parse_timezone(self.timezone)
        if self.start_us and self.end_us and self.end_us < self.start_us:
            raise InvalidArgument("end_time is before start_time")


def _to_us(moment: datetime) -> int:
    return int(moment.timestamp()) * SECOND_US


def _floor_second(us: int) -> int:
    return us - us % SECOND_US


class Timeline:
    """The slots of one trigger: strictly after ``anchor_us``, at or before the end time."""

    def __init__(self, trigger: Trigger, created_us: int) -> None:
        self.trigger = trigger
        self.anchor_us = _floor_second(trigger.start_us or created_us)
        self.end_us = trigger.end_us
        self.interval_us = trigger.interval_second * SECOND_US
        self.cron_fields = ""
        if trigger.cron:
            spec = parse_cron(trigger.cron)
            self.interval_us = spec.every_seconds * SECOND_US
            self.cron_fields = spec.fields
        self.zone = ZoneInfo(parse_timezone(trigger.timezone))

    def _within_end(self, slot: int | None) -> int | None:
        if slot is None or (self.end_us and slot > self.end_us):
            return None
        return slot

    def next_after(self, after_us: int) -> int | None:
        """The first slot strictly after ``after_us``."""
        after = max(after_us, self.anchor_us)
        if self.interval_us:
            k = (after - self.anchor_us) // self.interval_us + 1
            return self._within_end(self.anchor_us + k * self.interval_us)
        base = datetime.fromtimestamp(after // SECOND_US, self.zone)
        it = croniter(self.cron_fields, base, second_at_beginning=True)
        return self._within_end(_to_us(it.get_next(datetime)))

    def latest_at_or_before(self, at_us: int) -> int | None:
        """The last slot at or before ``at_us`` (and before the end time), if any."""
        limit = min(at_us, self.end_us) if self.end_us else at_us
        if limit <= self.anchor_us:
            return None
        if self.interval_us:
            k = (limit - self.anchor_us) // self.interval_us
            return self.anchor_us + k * self.interval_us if k >= 1 else None
        base = datetime.fromtimestamp(_floor_second(limit) // SECOND_US + 1, self.zone)
        slot = _to_us(croniter(self.cron_fields, base, second_at_beginning=True).get_prev(datetime))
        return slot if slot > self.anchor_us else None

    def upcoming(self, after_us: int, count: int) -> list[int]:
        """The next ``count`` slots strictly after ``after_us``."""
        slots: list[int] = []
        cursor = after_us
        while len(slots) < count:
            slot = self.next_after(cursor)
            if slot is None:
                break
            slots.append(slot)
            cursor = slot
        return slots


# A scheduler pass looks at every enabled schedule each second: what it asks again and again
# (the timeline of a trigger, the first slot after a cursor that only moves when a slot fires)
# is remembered. 1000 schedules: ~900 ms per pass without, a few ms with (docs/benchmarks.md).
@functools.lru_cache(maxsize=4096)
def timeline(trigger: Trigger, created_us: int) -> Timeline:
    return Timeline(trigger, created_us)


@functools.lru_cache(maxsize=16384)
def first_slot_after(trigger: Trigger, created_us: int, after_us: int) -> int | None:
    return timeline(trigger, created_us).next_after(after_us)


@dataclass(frozen=True)
class ScheduleState:
    """What the scheduler knows about one enabled schedule at a moment."""

    timeline: Timeline
    after_us: int  # slots at or before this are settled: claimed, skipped or disabled-window
    active_runs: int
    max_concurrency: int
    no_catchup: bool


@dataclass(frozen=True)
class Decision:
    fire: list[int] = field(default_factory=list)  # slot times to fire now, oldest first
    deferred: bool = False  # due slots wait for active runs to finish
    wake_at_us: int | None = None  # the next slot to come, if none is due now


def decide(state: ScheduleState, now_us: int) -> Decision:
    """Which slots of a schedule fire at ``now_us`` (pure)."""
    capacity = max(state.max_concurrency - state.active_runs, 0)
    timeline = state.timeline
    if state.no_catchup:
        latest = timeline.latest_at_or_before(now_us)
        due = [latest] if latest is not None and latest > state.after_us else []
    else:
        due = []
        cursor = state.after_us
        while len(due) <= capacity:  # one more than fits tells whether slots wait
            slot = timeline.next_after(cursor)
            if slot is None or slot > now_us:
                break
            due.append(slot)
            cursor = slot
    fire = due[:capacity]
    deferred = len(due) > len(fire)
    wake = None
    if not due:
        wake = timeline.next_after(max(state.after_us, now_us))
    return Decision(fire=fire, deferred=deferred, wake_at_us=wake)


# -- parameter macros ([[ScheduledTime]], [[CurrentTime]], [[Index]], with Go time layouts)

_MACRO = re.compile(r"\[\[(.*?)\]\]")
_DEFAULT_LAYOUT = "20060102150405"
# Go reference-time tokens, longest first, and how to render each.
_GO_TOKENS: list[tuple[str, Callable[[datetime], str]]] = [
    ("January", lambda t: t.strftime("%B")),
    ("Monday", lambda t: t.strftime("%A")),
    ("Z07:00", lambda t: "Z" if not t.utcoffset() else _offset(t, ":")),
    ("-07:00", lambda t: _offset(t, ":")),
    ("-0700", lambda t: _offset(t, "")),
    ("2006", lambda t: f"{t.year:04d}"),
    (".000000", lambda t: f".{t.microsecond:06d}"),
    (".000", lambda t: f".{t.microsecond // 1000:03d}"),
    ("Jan", lambda t: t.strftime("%b")),
    ("Mon", lambda t: t.strftime("%a")),
    ("MST", lambda t: t.tzname() or "UTC"),
    ("01", lambda t: f"{t.month:02d}"),
    ("02", lambda t: f"{t.day:02d}"),
    ("_2", lambda t: f"{t.day:2d}"),
    ("15", lambda t: f"{t.hour:02d}"),
    ("03", lambda t: f"{(t.hour % 12) or 12:02d}"),
    ("04", lambda t: f"{t.minute:02d}"),
    ("05", lambda t: f"{t.second:02d}"),
    ("06", lambda t: f"{t.year % 100:02d}"),
    ("PM", lambda t: "PM" if t.hour >= 12 else "AM"),
    ("pm", lambda t: "pm" if t.hour >= 12 else "am"),
    ("1", lambda t: str(t.month)),
    ("2", lambda t: str(t.day)),
    ("3", lambda t: str((t.hour % 12) or 12)),
    ("4", lambda t: str(t.minute)),
    ("5", lambda t: str(t.second)),
]


def _offset(moment: datetime, sep: str) -> str:
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{sep}{mins:02d}"


def format_go_time(moment: datetime, layout: str) -> str:
    """Render ``moment`` with a Go time layout (``2006-01-02T15:04:05Z07:00``)."""
    out: list[str] = []
    i = 0
    while i < len(layout):
        for token, render in _GO_TOKENS:
            if layout.startswith(token, i):
                out.append(render(moment))
                i += len(token)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class MacroValues:
    scheduled_us: int
    now_us: int
    index: int


def _macro(match: re.Match[str], values: MacroValues) -> str:
    name = match.group(1)
    for prefix, us in (("ScheduledTime", values.scheduled_us), ("CurrentTime", values.now_us)):
        if name == prefix or name.startswith(prefix + "."):
            moment = datetime.fromtimestamp(us // SECOND_US, UTC)
            layout = name[len(prefix) + 1 :] or _DEFAULT_LAYOUT
            return format_go_time(moment, layout)
    if name == "Index":
        return str(values.index)
    return match.group(0)  # unknown macros stay as written, as upstream


def expand_macros(value: Any, values: MacroValues) -> Any:
    """Substitute [[...]] macros in every string of a parameter value (as upstream's
    ParameterFormatter does, now also in v2 runs: upstream issue #12494)."""
    if isinstance(value, str):
        return _MACRO.sub(lambda m: _macro(m, values), value) if "[[" in value else value
    if isinstance(value, list):
        return [expand_macros(v, values) for v in value]
    if isinstance(value, dict):
        return {k: expand_macros(v, values) for k, v in value.items()}
    return value
