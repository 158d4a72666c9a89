"""Prometheus ``/metrics``: request latency by route, runs/tasks by state, engine and pool.

Each app has its own registry (tests build many apps in one process). Request latency is
labelled by the route's path template (``/apis/v2beta1/runs/{run_id}``), never the raw path,
so label cardinality stays bounded. Runs and tasks by state are counted by the database at
scrape time (one GROUP BY each), cached for ``STATE_COUNT_TTL`` seconds so a busy scraper
cannot turn into a load on the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kfpd.db.engine import Database
from kfpd.domain.enums import RunState, TaskState
from kfpd.services.metrics_queries import runs_by_state, tasks_by_state

STATE_COUNT_TTL = 2.0

# Metric names, documented in docs/operations.md.
REQUEST_SECONDS = "kfpd_http_request_duration_seconds"


class StoreCollector(Collector):
    """Runs and tasks by state, from the database (cached briefly)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[int, int], dict[int, int]] | None = None

    def _counts(self) -> tuple[dict[int, int], dict[int, int]]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > STATE_COUNT_TTL:
                with self._database.read_session() as session:
                    self._cached = (now, runs_by_state(session), tasks_by_state(session))
            return self._cached[1], self._cached[2]

    def collect(self) -> Iterator[Metric]:
        runs, tasks = self._counts()
        run_family = GaugeMetricFamily("kfpd_runs", "Runs by state.", labels=["state"])
        for state in RunState:
            run_family.add_metric([state.name], runs.get(int(state), 0))
        yield run_family
        task_family = GaugeMetricFamily("kfpd_tasks", "Tasks by state.", labels=["state"])
        for task_state in TaskState:
            task_family.add_metric([task_state.name], tasks.get(int(task_state), 0))
        yield task_family


class CallbackCollector(Collector):
    """Gauges read from live objects at scrape time (engine queue, executor slots, pool)."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float | None]]]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, read) in self._gauges.items():
            value = read()
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)


class Metrics:
    """One app's registry and the instruments other parts of the server record into."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            REQUEST_SECONDS,
            "HTTP request latency by route template, method and status class.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.task_seconds = Histogram(
            "kfpd_task_duration_seconds",
            "Wall time of task processes, from launch to exit.",
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
        )

    def watch_store(self, database: Database) -> None:
        self.registry.register(StoreCollector(database))

    def watch(self, gauges: dict[str, tuple[str, Callable[[], float | None]]]) -> None:
        self.registry.register(CallbackCollector(gauges))

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The matched route's path template (the router leaves the route in the scope), or
    "unmatched", so 404s for arbitrary paths add no label values."""
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class RequestTimer:
    """ASGI middleware timing every HTTP request into :attr:`Metrics.request_seconds`."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The histogram's child per (method, route template, status class): as bounded as
        # the labels themselves (templates, not paths).
        self._children: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            key = (scope.get("method", ""), route_template(scope), status // 100)
            child = self._children.get(key)
            if child is None:  # prometheus_client's labels() validates and locks every time
                child = self.metrics.request_seconds.labels(key[0], key[1], f"{key[2]}xx")
                self._children[key] = child
            child.observe(time.perf_counter() - started)
