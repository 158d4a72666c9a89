"""/metrics (Prometheus), /readyz, on every database; a scrape while a pipeline runs."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan
from prometheus_client.parser import text_string_to_metric_families

from kfpd.api.app import create_app
from kfpd.api.metrics import STATE_COUNT_TTL
from kfpd.config import Settings
from kfpd.db.engine import Database
from tests.helpers import compiled, ok


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_by_route_template(api: TestClient) -> None:
    for _ in range(3):
        assert api.get("/apis/v2beta1/runs/no-such-run").status_code == 404
    api.get("/definitely/not/a/route")
    text = api.get("/metrics").text
    samples = _samples(text)
    key = (
        "kfpd_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/apis/v2beta1/runs/{run_id}"), ("status", "4xx")),
    )
    assert samples[key] == 3
    # The same route with another status class is its own series.
    run_id = ok(api.post("/apis/v2beta1/runs", json={"pipeline_spec": compiled("graph_demo")}))
    assert api.get(f"/apis/v2beta1/runs/{run_id['run_id']}").status_code == 200
    samples = _samples(api.get("/metrics").text)
    assert samples[key] == 3
    ok_key = (
        key[0],
        (("method", "GET"), ("route", "/apis/v2beta1/runs/{run_id}"), ("status", "2xx")),
    )
    assert samples[ok_key] == 1
    # Raw paths never become label values (bounded cardinality).
    assert "no-such-run" not in text and "definitely" not in text
    assert ("kfpd_runs", (("state", "RUNNING"),)) in samples
    assert ("kfpd_db_pool_checked_out", ()) in samples


def test_readyz_reports_each_check(api: TestClient) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["ok"] is True
    assert re.match(r"at \S+, head \S+", body["checks"]["migrations"]["detail"])
    assert "orchestrator" not in body["checks"]  # this test app does not orchestrate


def test_readyz_is_503_when_the_orchestrator_died(orchestrated_server: Any) -> None:
    url = orchestrated_server()
    assert httpx.get(f"{url}/readyz").json()["checks"]["orchestrator"]["ok"] is True
    # Stop the engine thread as a crash would; the server itself keeps answering.
    app_engine = _engine_of(url)
    app_engine.stop()
    response = httpx.get(f"{url}/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["orchestrator"]["detail"] == "engine thread stopped"


def _engine_of(url: str) -> Any:
    import gc

    from kfpd.engine.engine import Engine

    port = url.rsplit(":", 1)[1]
    for obj in gc.get_objects():
        if isinstance(obj, Engine) and obj.config.server_url.endswith(f":{port}"):
            return obj
    raise AssertionError("no engine for " + url)


def test_scrape_while_a_pipeline_runs(orchestrated_server: Any, tmp_path: Path) -> None:
    import kfp

    url = orchestrated_server()
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(compiled("lifecycle:slow_pipeline")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = kfp.Client(host=url)
    run_id = client.create_run_from_pipeline_package(str(path), arguments={"seconds": 4}).run_id
    seen_running = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        samples = _samples(httpx.get(f"{url}/metrics").text)
        if samples.get(("kfpd_runs", (("state", "RUNNING"),)), 0) >= 1:
            seen_running = True
        state = httpx.get(f"{url}/apis/v2beta1/runs/{run_id}").json()["state"]
        if state in {"SUCCEEDED", "FAILED"}:
            break
        time.sleep(0.05)
    assert state == "SUCCEEDED"
    assert seen_running, "no scrape saw the run RUNNING"
    time.sleep(STATE_COUNT_TTL + 0.5)  # state counts are cached briefly
    samples = _samples(httpx.get(f"{url}/metrics").text)
    assert samples[("kfpd_runs", (("state", "SUCCEEDED"),))] == 1
    assert samples[("kfpd_tasks", (("state", "SUCCEEDED"),))] >= 2  # root + slow
    assert samples[("kfpd_task_duration_seconds_count", ())] == 1
    assert samples[("kfpd_task_duration_seconds_sum", ())] >= 4
    assert ("kfpd_engine_queue_depth", ()) in samples
    assert samples[("kfpd_scheduler_runs_fired", ())] == 0  # no recurring run here
    assert samples[("kfpd_scheduler_seconds_since_tick", ())] < 30
    assert samples[("kfpd_executor_slots", ())] >= 1


_SPANS_STARTED: list[str] = []


class _RecordingTracer(trace.NoOpTracer):
    def start_span(self, name: str, *_args: Any, **_kwargs: Any) -> trace.Span:
        _SPANS_STARTED.append(name)
        return NonRecordingSpan(INVALID_SPAN_CONTEXT)


class _RecordingProvider(trace.TracerProvider):
    def get_tracer(self, *_args: Any, **_kwargs: Any) -> trace.Tracer:
        return _RecordingTracer()


def test_opentelemetry_spans_only_when_asked(db: Database, tmp_path: Path) -> None:
    """FastAPI's native telemetry follows ``opentelemetry``: with a tracer provider set in the
    process, a request makes a server span only when the setting is on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trace.set_tracer_provider(_RecordingProvider())  # once per process: no other test sets one
    assert isinstance(trace.get_tracer_provider(), _RecordingProvider)
    for enabled, spans in ((False, 0), (True, 1)):
        _SPANS_STARTED.clear()
        settings = Settings(data_dir=tmp_path, orchestrate=False, opentelemetry=enabled)
        with TestClient(create_app(settings, database=db), base_url="http://127.0.0.1") as client:
            assert client.get("/apis/v2beta1/healthz").status_code == 200
        assert _SPANS_STARTED.count("GET") == spans, _SPANS_STARTED
