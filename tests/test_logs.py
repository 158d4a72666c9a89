"""Console log lines: kfpd's quick path for plain lines gives structlog's ConsoleRenderer text
exactly, and lines it does not handle (extra keys, exceptions) still go through structlog."""

from __future__ import annotations

import itertools
import logging
import sys

import structlog

from kfpd.logs import ConsoleLines, formatter


def test_plain_lines_match_structlogs_console_renderer() -> None:
    quick = ConsoleLines()
    reference = structlog.dev.ConsoleRenderer(colors=False)
    events = ["", "x", "started", "e" * 29, "e" * 30, "e" * 31, 'a "quoted" = line', "trail  "]
    levels = ["debug", "info", "warning", "error", "critical", "exception", "notset", "custom"]
    for event, level, logger in itertools.product(events, levels, ["uvicorn.access", ""]):
        plain = {
            "timestamp": "2026-12-03T22:53:40.527594Z",
            "level": level,
            "event": event,
            "logger": logger,
        }
        assert quick(None, "info", dict(plain)) == reference(None, "info", dict(plain))
    # Not plain: an extra key, no timestamp, a non-text event — rendered by structlog itself.
    for other in (
        {**plain, "run_id": "r-1"},
        {"level": "info", "event": "e", "logger": "l"},
        {**plain, "timestamp": ""},
        {**plain, "event": {"a": 1}},
    ):
        assert quick(None, "info", dict(other)) == reference(None, "info", dict(other))


def test_access_and_error_records_through_the_console_formatter() -> None:
    console = formatter("console")
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/apis/v2beta1/runs/r/tasks/t:finish", "1.1", 200),
        None,
    )
    line = console.format(access)
    assert line.endswith(
        ' [info     ] 127.0.0.1:5 - "POST /apis/v2beta1/runs/r/tasks/t:finish HTTP/1.1" 200'
        " [uvicorn.access]"
    )
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "kfpd.engine", logging.ERROR, "", 0, "step failed", (), sys.exc_info()
        )
    text = console.format(failed)
    assert "[error    ] step failed" in text and "ValueError: boom" in text


def test_private_record_attributes_of_libraries_stay_out_of_the_line() -> None:
    """Ray's log setup stamps ``_ray_timestamp_ns`` on every record once ``ray`` is imported."""
    record = logging.LogRecord("kfpd.engine", logging.INFO, "", 0, "step", (), None)
    record._ray_timestamp_ns = 1  # type: ignore[attr-defined]
    record.run_id = "r-1"  # type: ignore[attr-defined]
    for log_format in ("console", "json"):
        line = formatter(log_format).format(record)
        assert "_ray_timestamp_ns" not in line
        assert "r-1" in line
