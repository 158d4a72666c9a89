"""Server logging: structlog over the standard library, JSON lines or console text.

Every ``logging`` call in kfpd (and uvicorn's) goes through one structlog formatter, so a log
shipper sees one JSON object per line with ``event``, ``level``, ``logger``, ``timestamp`` and
whatever context is bound: the engine binds ``run_id`` / ``task_id`` around each orchestration
step (:func:`bound`). The access log of the launchers' log appends (a third of all requests
while tasks run) is logged at debug level, so it shows only with ``--log-level debug``.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

# structlog's own keys in a foreign record's event dict, removed later by its formatter.
_FORMATTER_META = frozenset({"_record", "_from_structlog"})


def _drop_private_attributes(_logger: Any, _name: str, event_dict: dict[str, Any]) -> Any:
    """Keep libraries' private LogRecord attributes out of the line: once ``ray`` is imported
    (``--executor ray``) every record carries ``_ray_timestamp_ns``, which ExtraAdder would
    print on every line (and which sent every access line down the slow console path)."""
    for key in [k for k in event_dict if k[:1] == "_" and k not in _FORMATTER_META]:
        del event_dict[key]
    return event_dict


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_private_attributes,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

# Requests a launcher makes continuously while its task runs: not worth an info line each.
_CHATTY_PATHS = ("/logs ", ":heartbeat ")


_EVENT_PAD = 30  # structlog's default event column width, passed explicitly to both renderers
_PLAIN_KEYS = frozenset({"timestamp", "level", "event", "logger"})


class ConsoleLines:
    """structlog's ``ConsoleRenderer(colors=False)``, with its exact layout written directly
    for the common line (timestamp, level, event and logger, all text: every access line).
    The general renderer took ~30 us of server CPU per line, ~0.1 ms per task at the default
    ``info`` level; anything else (extra keys, exceptions) still goes through it.
    tests/test_logs.py checks both give the same text."""

    def __init__(self) -> None:
        self.full = structlog.dev.ConsoleRenderer(colors=False, pad_event_to=_EVENT_PAD)
        levels = structlog.dev.ConsoleRenderer.get_default_level_styles(colors=False)
        self._level_width = max(len(name) for name in levels)

    def __call__(self, logger: Any, name: str, event_dict: dict[str, Any]) -> str:
        plain = event_dict.keys() == _PLAIN_KEYS and event_dict["timestamp"]
        if plain and all(type(v) is str for v in event_dict.values()):
            level = event_dict["level"].ljust(self._level_width)
            line = (
                f"{event_dict['timestamp']} [{level}] {event_dict['event'].ljust(_EVENT_PAD)}"
                f" [{event_dict['logger']}]"
            )
            return line.rstrip(" ")
        text: str = self.full(logger, name, event_dict)
        return text


def _renderer(log_format: str) -> Any:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    return ConsoleLines()


def formatter(log_format: str) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
        ],
    )


class DemoteChattyAccess(logging.Filter):
    """Log uvicorn's access lines for launcher log appends at DEBUG instead of INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and any(p in record.getMessage() for p in _CHATTY_PATHS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def uvicorn_log_config(level: str, log_format: str) -> dict[str, Any]:
    """A ``logging.config`` dict for uvicorn: its loggers share kfpd's formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"demote_chatty": {"()": DemoteChattyAccess}},
        "formatters": {"kfpd": {"()": formatter, "log_format": log_format}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "kfpd"},
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "kfpd",
                "filters": ["demote_chatty"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["access"], "level": level.upper(), "propagate": False},
        },
    }


def configure_logging(level: str = "info", log_format: str = "console") -> None:
    """Route the root logger (and so every kfpd module logger) through structlog."""
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@contextmanager
def bound(**context: str | None) -> Iterator[None]:
    """Attach ``context`` (e.g. run_id, task_id) to every log line inside the block."""
    values = {k: v for k, v in context.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**values):
        yield
