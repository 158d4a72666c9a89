"""ListRuns latency at 200,000 runs in one namespace, over HTTP against a real ``kfpd server``.

Anchor: upstream Kubeflow Pipelines took 1 min 46 s (106,000 ms) for one ListRuns query
with 200,000 runs in one namespace. kfpd's target is p95 < 50 ms on SQLite and PostgreSQL.

What it does:

1. Seeds a fresh database (SQLite file under /tmp by default, or ``--db-url`` for
   PostgreSQL/MariaDB; the bench creates and drops that database itself), migrated with
   ``kfpd.db.migrate.upgrade``, with ``--runs`` runs in namespace ``team-a`` (plus a few in
   ``team-b``), under five experiments: KFP-style display names, mostly SUCCEEDED with some
   FAILED/RUNNING/CANCELED/PENDING/SKIPPED, ``created_at`` spread over six months (with some
   exact ties), a small pipeline_spec, runtime_config and state_history. Seeding uses bulk
   Core inserts (not measured). Then ``VACUUM ANALYZE`` on PostgreSQL and ``ANALYZE TABLE`` on
   MariaDB (what autovacuum / InnoDB auto-stats reach anyway); SQLite gets no ANALYZE, as
   kfpd never runs one (``--sqlite-analyze`` to try it).
2. Starts ``kfpd server`` as a subprocess on that database, waits for /apis/v2beta1/healthz.
3. Over HTTP (httpx, keep-alive), ``namespace=team-a``, ``sort_by=created_at desc``, for
   page_size 20 and 100, and for four filters: none, ``state EQUALS SUCCEEDED``,
   ``display_name IS_SUBSTRING "etl"`` (case-insensitive, about 10 % of runs) and
   ``storage_state NOT_EQUALS ARCHIVED`` (what the KFP UI's run list sends): times page 1,
   and page 100 (reached by following next_page_token 99 times; its token is then
   replayed). Each case runs ``--warmup`` times untimed, then ``--repeats`` times;
   p50/p95/max in ms, client-side, so HTTP and JSON are included. Every ListRuns response
   carries ``total_size``, i.e. a COUNT(*) over all the matches; ``--skip-count`` sends
   ``skip_count=true`` as the current KFP UI does (kfpd then skips the COUNT: total_size 0).
4. Checks correctness against ground truth computed in Python from the table's rows:
   pages don't overlap, order is (created_at, run_id) descending, every run matches the
   filter, pages 1 and 100 hold exactly the expected ids, total_size == number of matches.

``--explain`` also runs ``kfpd.services.runs.list_runs`` in-process, captures the SQL it
issues and prints each statement's plan (SQLite EXPLAIN QUERY PLAN, PostgreSQL EXPLAIN
(ANALYZE, BUFFERS), MariaDB ANALYZE) with its median execution time.

Usage::

    .venv/bin/python bench/list_runs.py                       # SQLite, 200k runs
    .venv/bin/python bench/list_runs.py --reuse               # reuse the seeded SQLite file
    .venv/bin/python bench/list_runs.py \\
        --db-url postgresql+psycopg://postgres@127.0.0.1:5432/kfpd_bench_runs
    .venv/bin/python bench/list_runs.py \\
        --db-url mariadb+pymysql://root@127.0.0.1:3306/kfpd_bench_runs
    .venv/bin/python bench/list_runs.py --reuse --json --explain
    .venv/bin/python bench/list_runs.py --runs 20000 --repeats 10   # quick smoke run

Exit status: 1 if a correctness check fails; with ``--strict`` also 2 if a case misses the
p95 target.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_db import (
    bench_engine,
    recreate_server_db,
    seeded_server,
    server_db_exists,
    settle_seeded,
)
from sqlalchemy import Engine, create_engine, event, func, insert, select
from sqlalchemy.engine import URL

from kfpd.db.engine import Database, normalize_url
from kfpd.db.listing import ListRequest
from kfpd.db.migrate import upgrade
from kfpd.db.models import Experiment, Run
from kfpd.domain.enums import RunState, StorageState
from kfpd.domain.timeutil import parse_rfc3339, to_rfc3339

UPSTREAM_ANCHOR_MS = 106_000.0  # upstream KFP: 1 min 46 s for one ListRuns at 200k runs
TARGET_P95_MS = 50.0
NAMESPACE = "team-a"
OTHER_NAMESPACE = "team-b"
SEED_VERSION = 1  # bump when the seeded data changes, so --reuse reseeds
CHUNK = 5_000
SORT_BY = "created_at desc"
DEEP_PAGE = 100
SUBSTRING = "etl"
API = "/apis/v2beta1"
ROOT = Path(__file__).resolve().parent.parent
KFPD_BIN = Path(sys.executable).with_name("kfpd")  # the venv's console script


def _pred(op: str, key: str, value: str) -> dict[str, str]:
    return {"operation": op, "key": key, "string_value": value}


@dataclass(frozen=True)
class Row:
    """One run of the namespace, as the ground truth sees it."""

    created_at: int
    id: str
    state: int
    storage_state: int
    display_name: str


@dataclass(frozen=True)
class ListFilter:
    """A KFP filter the bench sends, and the same predicate evaluated in Python."""

    name: str
    predicates: tuple[dict[str, str], ...]

    @property
    def json(self) -> str | None:
        return json.dumps({"predicates": list(self.predicates)}) if self.predicates else None

    def matches(self, row: Row) -> bool:
        for p in self.predicates:
            key, value = p["key"], p["string_value"]
            if key == "state" and row.state != int(RunState[value]):
                return False
            if key == "storage_state":
                equal = row.storage_state == int(StorageState[value])
                if equal != (p["operation"] == "EQUALS"):
                    return False
            if key == "display_name" and value.lower() not in row.display_name.lower():
                return False
        return True


FILTERS: dict[str, ListFilter] = {
    f.name: f
    for f in (
        ListFilter("none", ()),
        ListFilter("state=SUCCEEDED", (_pred("EQUALS", "state", "SUCCEEDED"),)),
        ListFilter(f"name~{SUBSTRING!r}", (_pred("IS_SUBSTRING", "display_name", SUBSTRING),)),
        # What the KFP UI's run list sends ("Active" runs tab).
        ListFilter("storage!=ARCHIVED", (_pred("NOT_EQUALS", "storage_state", "ARCHIVED"),)),
    )
}

# (pipeline name, weight, experiment); only "nightly-etl" contains SUBSTRING.
PIPELINES: list[tuple[str, float, str]] = [
    ("train-resnet50", 0.30, "resnet-baselines"),
    ("xgboost-tuning", 0.25, "hpo-sweeps"),
    ("eval-llm", 0.20, "llm-eval"),
    ("feature-backfill", 0.15, "data-pipelines"),
    ("nightly-etl", 0.10, "data-pipelines"),
]
EXPERIMENTS = ["default", "resnet-baselines", "hpo-sweeps", "data-pipelines", "llm-eval"]
STATES: list[tuple[RunState, float]] = [
    (RunState.SUCCEEDED, 0.86),
    (RunState.FAILED, 0.07),
    (RunState.RUNNING, 0.03),
    (RunState.CANCELED, 0.02),
    (RunState.PENDING, 0.01),
    (RunState.SKIPPED, 0.01),
]
CUSTOM_WORDS = ["baseline", "ablation", "lr-sweep", "smoke", "prod", "retry", "canary"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- seeding


def _spec(pipeline: str) -> dict[str, Any]:
    """A small but well-formed KFP v2 IR (two container tasks)."""
    comp = {
        "executorLabel": "exec-step",
        "inputDefinitions": {"parameters": {"x": {"parameterType": "NUMBER_INTEGER"}}},
        "outputDefinitions": {
            "artifacts": {
                "out": {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}
            }
        },
    }
    return {
        "pipelineInfo": {"name": pipeline},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.0",
        "components": {"comp-step": comp},
        "deploymentSpec": {
            "executors": {
                "exec-step": {
                    "container": {"image": "python:3.11", "command": ["python", "-c", "..."]}
                }
            }
        },
        "root": {
            "dag": {
                "tasks": {
                    "step-1": {
                        "componentRef": {"name": "comp-step"},
                        "taskInfo": {"name": "step-1"},
                    },
                    "step-2": {
                        "componentRef": {"name": "comp-step"},
                        "dependentTasks": ["step-1"],
                        "taskInfo": {"name": "step-2"},
                    },
                }
            },
            "inputDefinitions": {"parameters": {"x": {"parameterType": "NUMBER_INTEGER"}}},
        },
    }


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _run_rows(
    rng: random.Random, n: int, namespace: str, exp_ids: dict[str, str], start_us: int, end_us: int
) -> Iterator[dict[str, Any]]:
    specs = {p: _spec(p) for p, _, _ in PIPELINES}
    recurring = {p: _uuid(rng) for p, _, _ in PIPELINES}
    names = [p for p, _, _ in PIPELINES]
    weights = [w for _, w, _ in PIPELINES]
    exp_of = {p: e for p, _, e in PIPELINES}
    states = [s for s, _ in STATES]
    state_w = [w for _, w in STATES]
    step = max(1, (end_us - start_us) // max(n, 1))
    created = start_us
    for i in range(n):
        if i % 25 != 24:  # every 25th run shares created_at with the previous one
            created += rng.randint(step // 2, step + step // 2)
        pipeline = rng.choices(names, weights)[0]
        state = rng.choices(states, state_w)[0]
        if rng.random() < 0.7:  # the SDK's default name: "<pipeline> <date time>"
            stamp = time.strftime("%Y-%m-%d %H-%M-%S", time.gmtime(created / 1e6))
            display = f"{pipeline} {stamp}"
        else:
            display = f"{pipeline}-{rng.choice(CUSTOM_WORDS)}-{i}"
        started = created + rng.randint(1, 30) * 1_000_000
        history = [
            {"update_time": to_rfc3339(created), "state": "PENDING"},
        ]
        finished = 0
        error = None
        if state != RunState.PENDING:
            history.append({"update_time": to_rfc3339(started), "state": "RUNNING"})
        if state.is_terminal:
            finished = started + rng.randint(60, 4 * 3600) * 1_000_000
            entry: dict[str, Any] = {"update_time": to_rfc3339(finished), "state": state.name}
            if state == RunState.FAILED:
                error = {"code": 2, "message": "task step-2 failed: exit code 1"}
                entry["error"] = error
            history.append(entry)
        yield {
            "id": _uuid(rng),
            "namespace": namespace,
            "experiment_id": exp_ids[exp_of[pipeline]],
            "display_name": display,
            "description": "",
            "pipeline_id": None,
            "pipeline_version_id": None,
            "pipeline_name": pipeline,
            "pipeline_spec": specs[pipeline],
            "platform_spec": None,
            "spec_inline": 1,
            "runtime_config": {
                "parameters": {"x": rng.randint(1, 100), "learning_rate": 0.01},
                "pipeline_root": f"s3://ml-artifacts/{namespace}/{pipeline}",
            },
            "service_account": "pipeline-runner",
            "storage_state": int(
                StorageState.ARCHIVED if rng.random() < 0.02 else StorageState.AVAILABLE
            ),
            "state": int(state),
            "state_history": history,
            "error": error,
            "created_at": created,
            "scheduled_at": created,
            "finished_at": finished,
            "recurring_run_id": recurring[pipeline] if pipeline == "nightly-etl" else None,
        }


def _insert_namespace(
    engine: Engine, rng: random.Random, namespace: str, n: int, now_us: int
) -> None:
    exp_ids = {name: _uuid(rng) for name in EXPERIMENTS}
    start = now_us - 180 * 86_400 * 1_000_000
    with engine.begin() as conn:
        conn.execute(
            insert(Experiment.__table__),
            [
                {
                    "id": exp_ids[name],
                    "namespace": namespace,
                    "display_name": name,
                    "description": "",
                    "created_at": start - (len(EXPERIMENTS) - k) * 1_000_000,
                    "storage_state": int(StorageState.AVAILABLE),
                    "last_run_created_at": now_us,
                }
                for k, name in enumerate(EXPERIMENTS)
            ],
        )
    batch: list[dict[str, Any]] = []
    done = 0
    t0 = time.perf_counter()
    for row in _run_rows(rng, n, namespace, exp_ids, start, now_us - 3600 * 1_000_000):
        batch.append(row)
        if len(batch) == CHUNK:
            with engine.begin() as conn:
                conn.execute(insert(Run.__table__), batch)
            done += len(batch)
            batch = []
            if done % 50_000 == 0:
                log(f"  {namespace}: {done:,}/{n:,} runs ({time.perf_counter() - t0:.0f} s)")
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(Run.__table__), batch)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(Run.namespace, func.count()).group_by(Run.namespace))
        return {str(ns): int(c) for ns, c in rows}


def seed(url: URL, runs: int, other: int, *, reuse: bool, sqlite_analyze: bool) -> float:
    """Create, migrate and fill the database; return the seconds spent (0 when reused)."""
    backend = url.get_backend_name()
    want = {NAMESPACE: runs, **({OTHER_NAMESPACE: other} if other else {})}
    marker: Path | None = None
    if backend == "sqlite":
        assert url.database
        path = Path(url.database)
        marker = path.with_name(path.name + ".seeded.json")
        meta = {"runs": runs, "other": other, "version": SEED_VERSION}
        if reuse and path.exists() and marker.exists() and json.loads(marker.read_text()) == meta:
            log(f"reusing seeded {path}")
            return 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        for p in (path, marker, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
    else:
        if reuse and server_db_exists(url):
            engine = create_engine(url)
            try:
                if _counts(engine) == want:
                    log(f"reusing seeded database {url.database}")
                    return 0.0
            except Exception:  # any failure means: reseed
                pass
            finally:
                engine.dispose()
        recreate_server_db(url)

    t0 = time.perf_counter()
    upgrade(url.render_as_string(hide_password=False))
    engine = bench_engine(url)
    rng = random.Random(20240601)
    now_us = 1_735_689_600 * 1_000_000  # 2025-01-01T00:00:00Z, fixed for reproducibility
    log(f"seeding {runs:,} runs in {NAMESPACE!r} (+{other:,} in {OTHER_NAMESPACE!r}) ...")
    _insert_namespace(engine, rng, NAMESPACE, runs, now_us)
    if other:
        _insert_namespace(engine, rng, OTHER_NAMESPACE, other, now_us)
    settle_seeded(engine, ["runs", "experiments"], sqlite_analyze=sqlite_analyze)
    got = _counts(engine)
    engine.dispose()
    if got != want:
        raise SystemExit(f"seeding produced {got}, expected {want}")
    elapsed = time.perf_counter() - t0
    if marker is not None:
        marker.write_text(json.dumps({"runs": runs, "other": other, "version": SEED_VERSION}))
    log(f"seeded in {elapsed:.1f} s")
    return elapsed


# --------------------------------------------------------------------------- server


# --------------------------------------------------------------------------- measuring


@dataclass
class CaseResult:
    page_size: int
    filter: str
    page: int
    samples_ms: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"size {self.page_size:>3}  page {self.page:>3}  filter {self.filter}"

    def pct(self, q: float) -> float:
        s = sorted(self.samples_ms)
        return s[max(0, math.ceil(q * len(s)) - 1)]

    def summary(self) -> dict[str, Any]:
        p95 = self.pct(0.95)
        return {
            "page_size": self.page_size,
            "filter": self.filter,
            "page": self.page,
            "n": len(self.samples_ms),
            "p50_ms": round(statistics.median(self.samples_ms), 2),
            "p95_ms": round(p95, 2),
            "max_ms": round(max(self.samples_ms), 2),
            "target_p95_ms": TARGET_P95_MS,
            "meets_target": p95 < TARGET_P95_MS,
            "upstream_anchor_ms": UPSTREAM_ANCHOR_MS,
            "speedup_vs_upstream_p95": round(UPSTREAM_ANCHOR_MS / p95),
        }


@dataclass
class Truth:
    """The namespace's runs, newest first (created_at desc, id desc)."""

    rows: list[Row]

    def matching(self, flt: str) -> list[str]:
        f = FILTERS[flt]
        return [r.id for r in self.rows if f.matches(r)]

    def by_id(self) -> dict[str, Row]:
        return {r.id: r for r in self.rows}


def load_truth(url: URL) -> Truth:
    engine = create_engine(url)
    cols = (Run.created_at, Run.id, Run.state, Run.storage_state, Run.display_name)
    with engine.connect() as conn:
        rows = [
            Row(int(c), str(i), int(s), int(ss), str(d))
            for c, i, s, ss, d in conn.execute(select(*cols).where(Run.namespace == NAMESPACE))
        ]
    engine.dispose()
    rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return Truth(rows)


def _params(size: int, flt: str, token: str | None, skip_count: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": NAMESPACE, "page_size": size, "sort_by": SORT_BY}
    if FILTERS[flt].json:
        params["filter"] = FILTERS[flt].json
    if token:
        params["page_token"] = token
    if skip_count:
        params["skip_count"] = "true"
    return params


def _get(client: httpx.Client, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    resp = client.get(f"{API}/runs", params=params)
    elapsed = (time.perf_counter() - t0) * 1000
    if resp.status_code != 200:
        raise SystemExit(f"ListRuns {params} -> {resp.status_code}: {resp.text[:500]}")
    body: dict[str, Any] = resp.json()
    return elapsed, body


@dataclass
class Walk:
    pages: list[list[dict[str, Any]]]
    tokens: list[str | None]  # tokens[i] fetches page i+1
    totals: list[int]


def walk(client: httpx.Client, size: int, flt: str, depth: int, skip_count: bool) -> Walk:
    pages: list[list[dict[str, Any]]] = []
    tokens: list[str | None] = [None]
    totals: list[int] = []
    while len(pages) < depth:
        _, body = _get(client, _params(size, flt, tokens[-1], skip_count))
        pages.append(body.get("runs", []))
        totals.append(int(body.get("total_size", 0)))
        nxt = body.get("next_page_token")
        if not nxt:
            break
        tokens.append(nxt)
    return Walk(pages, tokens[: len(pages)], totals)


def check_walk(w: Walk, size: int, flt: str, truth: Truth, skip_count: bool) -> list[str]:
    """Return the failed checks of one walk (empty when all pass)."""
    errors: list[str] = []
    label = f"size {size} filter {flt}"
    expected = truth.matching(flt)
    ids = [r["run_id"] for p in w.pages for r in p]
    if len(ids) != len(set(ids)):
        errors.append(f"{label}: {len(ids) - len(set(ids))} runs appear on two pages")
    keys = [(parse_rfc3339(r["created_at"]), r["run_id"]) for p in w.pages for r in p]
    if any(a <= b for a, b in itertools.pairwise(keys)):
        errors.append(f"{label}: runs not in (created_at, run_id) descending order")
    known = truth.by_id()
    for r in (r for p in w.pages for r in p):
        row = known.get(r["run_id"])
        if row is None:
            errors.append(f"{label}: run {r['run_id']} is not in namespace {NAMESPACE!r}")
            break
        seen = Row(
            parse_rfc3339(r["created_at"]),
            r["run_id"],
            int(RunState[r["state"]]),
            int(StorageState[r["storage_state"]]),
            r["display_name"],
        )
        if seen != row or not FILTERS[flt].matches(seen):
            errors.append(f"{label}: run {r['run_id']} is {seen}, expected a match like {row}")
            break
    # skip_count=true: kfpd computes no total_size.
    ok_totals = {0} if skip_count else {len(expected)}
    if any(t not in ok_totals for t in w.totals):
        errors.append(f"{label}: total_size {sorted(set(w.totals))} != {len(expected)} matches")
    n = len(w.pages)
    want_pages = min(DEEP_PAGE, max(1, math.ceil(len(expected) / size)))
    if n != want_pages:
        errors.append(f"{label}: walked {n} pages, expected {want_pages}")
    for k, p in enumerate(w.pages[:-1]):
        if len(p) != size:
            errors.append(f"{label}: page {k + 1} has {len(p)} runs, expected {size}")
            break
    if ids != expected[: len(ids)]:
        errors.append(f"{label}: page contents differ from the expected order")
    last = [r["run_id"] for r in w.pages[-1]]
    if last != expected[(n - 1) * size : n * size]:
        errors.append(f"{label}: page {n} holds the wrong runs")
    return errors


def time_case(
    client: httpx.Client, params: dict[str, Any], warmup: int, repeats: int
) -> tuple[list[float], list[str]]:
    """Time one request; return the samples and whether every response held the same page.

    The client's own garbage collector is paused while timing, so that its pauses are not
    charged to the server.
    """
    for _ in range(warmup):
        _get(client, params)
    samples: list[float] = []
    first_ids: list[str] | None = None
    changed = False
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            ms, body = _get(client, params)
            samples.append(ms)
            ids = [r["run_id"] for r in body.get("runs", [])]
            if first_ids is None:
                first_ids = ids
            elif ids != first_ids:
                changed = True
    finally:
        gc.enable()
    return samples, ["response changed between repeats"] if changed else []


# --------------------------------------------------------------------------- explain


def explain(url: URL, walks: dict[tuple[int, str], Walk]) -> list[dict[str, Any]]:
    """Capture the SQL kfpd's list_runs issues for each case and return its plans."""
    from kfpd.services.runs import list_runs

    db = Database(url)
    backend = db.dialect
    captured: list[tuple[str, Any]] = []

    def _capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        captured.append((statement, params))

    out: list[dict[str, Any]] = []
    for (size, flt), w in walks.items():
        for page_no, token in ((1, None), (len(w.pages), w.tokens[-1])):
            captured.clear()
            event.listen(db.engine, "before_cursor_execute", _capture)
            try:
                with db.read_session() as s:
                    list_runs(
                        s,
                        namespace=NAMESPACE,
                        experiment_id=None,
                        request=ListRequest(size, token, SORT_BY, FILTERS[flt].json),
                    )
            finally:
                event.remove(db.engine, "before_cursor_execute", _capture)
            stmts = [
                (sql, p)
                for sql, p in captured
                if sql.lstrip().upper().startswith("SELECT") and "FROM runs" in sql
            ]
            for sql, p in stmts:
                kind = "count" if "count(" in sql.lower() else "page"
                if backend == "sqlite":
                    prefix = "EXPLAIN QUERY PLAN "
                elif backend == "postgresql":
                    prefix = "EXPLAIN (ANALYZE, BUFFERS) "
                else:
                    prefix = "ANALYZE "
                with db.engine.connect() as conn:
                    plan_rows = conn.exec_driver_sql(prefix + sql, p).fetchall()
                    times = []
                    for _ in range(5):
                        t0 = time.perf_counter()
                        conn.exec_driver_sql(sql, p).fetchall()
                        times.append((time.perf_counter() - t0) * 1000)
                if backend == "sqlite":
                    plan = [str(r[-1]) for r in plan_rows]
                elif backend == "postgresql":
                    plan = [str(r[0]) for r in plan_rows]
                else:
                    plan = [" | ".join(str(v) for v in r) for r in plan_rows]
                out.append(
                    {
                        "page_size": size,
                        "filter": flt,
                        "page": page_no,
                        "kind": kind,
                        "sql": " ".join(sql.split()),
                        "median_ms": round(statistics.median(times), 2),
                        "plan": plan,
                    }
                )
    db.dispose()
    return out


# --------------------------------------------------------------------------- main


def _default_sqlite_url(runs: int, other: int) -> str:
    base = Path(tempfile.gettempdir()) / "kfpd-bench-runs"
    return f"sqlite:///{base / f'runs-{runs}-{other}-v{SEED_VERSION}.sqlite'}"


def print_table(backend: str, runs: int, results: list[CaseResult], skip_count: bool) -> None:
    print()
    print(
        f"ListRuns over HTTP, {backend}, {runs:,} runs in namespace {NAMESPACE!r}, "
        f"sort_by={SORT_BY!r}" + (", skip_count=true" if skip_count else "")
    )
    print(
        f"upstream KFP anchor: {UPSTREAM_ANCHOR_MS:,.0f} ms (1 min 46 s) for one ListRuns at "
        f"200,000 runs; kfpd target: p95 < {TARGET_P95_MS:.0f} ms"
    )
    head = (
        f"{'page_size':>9} {'page':>4}  {'filter':<18} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'max ms':>8}  {'target':>8}  {'upstream':>10}  {'x faster':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        s = r.summary()
        ok = "ok" if s["meets_target"] else "MISS"
        print(
            f"{r.page_size:>9} {r.page:>4}  {r.filter:<18} {s['n']:>3} {s['p50_ms']:>8.1f} "
            f"{s['p95_ms']:>8.1f} {s['max_ms']:>8.1f}  <50 {ok:>4}  "
            f"{UPSTREAM_ANCHOR_MS:>10,.0f}  {s['speedup_vs_upstream_p95']:>8,}"
        )
    print("filters:")
    for name in dict.fromkeys(r.filter for r in results):
        print(f"  {name:<18} {FILTERS[name].json or '(none)'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200_000, help="runs in namespace team-a")
    ap.add_argument(
        "--other-runs", type=int, default=1_000, help="runs in team-b (must stay invisible)"
    )
    ap.add_argument("--db-url", help="SQLAlchemy URL (default: a SQLite file under /tmp)")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="reuse an already seeded database (and keep a server database afterwards)",
    )
    ap.add_argument("--keep", action="store_true", help="don't drop the server database")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--page-sizes", default="20,100")
    ap.add_argument(
        "--filters",
        default=",".join(FILTERS),
        help=f"comma-separated subset of: {', '.join(FILTERS)}",
    )
    ap.add_argument(
        "--skip-count",
        action="store_true",
        help="send skip_count=true, as the current KFP UI does (upstream PR #13951)",
    )
    ap.add_argument("--sqlite-analyze", action="store_true", help="run ANALYZE on SQLite too")
    ap.add_argument("--explain", action="store_true", help="print the plans of kfpd's SQL")
    ap.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a case misses p95")
    args = ap.parse_args()

    url = normalize_url(args.db_url or _default_sqlite_url(args.runs, args.other_runs))
    backend = url.get_backend_name()
    sizes = [int(x) for x in args.page_sizes.split(",") if x.strip()]
    filters = [x.strip() for x in args.filters.split(",") if x.strip()]
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        ap.error(f"unknown filters {unknown}; choose from {list(FILTERS)}")
    seed_s = seed(
        url, args.runs, args.other_runs, reuse=args.reuse, sqlite_analyze=args.sqlite_analyze
    )
    try:
        return _measure(args, url, sizes, filters, seed_s)
    finally:
        if backend != "sqlite" and not (args.keep or args.reuse):
            recreate_server_db(url, drop_only=True)
            log(f"dropped database {url.database}")


def _measure(
    args: argparse.Namespace, url: URL, sizes: list[int], filters: list[str], seed_s: float
) -> int:
    backend = url.get_backend_name()
    truth = load_truth(url)
    gc.collect()
    gc.freeze()  # the ground truth's 200k rows stay out of the client's GC passes
    results: list[CaseResult] = []
    errors: list[str] = []
    walks: dict[tuple[int, str], Walk] = {}
    load_before = [round(x, 2) for x in os.getloadavg()]
    data_dir = Path(tempfile.mkdtemp(prefix="kfpd-bench-runs-"))
    try:
        with (
            seeded_server(url, data_dir) as base,
            httpx.Client(base_url=base, timeout=600) as client,
        ):
            for size in sizes:
                for flt in filters:
                    t0 = time.perf_counter()
                    w = walk(client, size, flt, DEEP_PAGE, args.skip_count)
                    walks[(size, flt)] = w
                    errors += check_walk(w, size, flt, truth, args.skip_count)
                    log(
                        f"walked {len(w.pages)} pages of size {size} filter {flt} in "
                        f"{time.perf_counter() - t0:.1f} s"
                    )
                    for page_no, token in ((1, None), (len(w.pages), w.tokens[-1])):
                        res = CaseResult(size, flt, page_no)
                        res.samples_ms, errs = time_case(
                            client,
                            _params(size, flt, token, args.skip_count),
                            args.warmup,
                            args.repeats,
                        )
                        errors += [f"size {size} page {page_no} filter {flt}: {e}" for e in errs]
                        results.append(res)
                        s = res.summary()
                        log(f"  {res.name}: p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    plans = explain(url, walks) if args.explain else []
    missed = [r for r in results if not r.summary()["meets_target"]]
    load = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(
            json.dumps(
                {
                    "database": backend,
                    "url": url.render_as_string(hide_password=True),
                    "runs": args.runs,
                    "namespace": NAMESPACE,
                    "sort_by": SORT_BY,
                    "seed_seconds": round(seed_s, 1),
                    "skip_count": args.skip_count,
                    "filters": {n: FILTERS[n].json for n in filters},
                    "loadavg_before": load_before,
                    "loadavg_after": load,
                    "cpus": os.cpu_count(),
                    "upstream_anchor_ms": UPSTREAM_ANCHOR_MS,
                    "target_p95_ms": TARGET_P95_MS,
                    "cases": [r.summary() for r in results],
                    "correctness_errors": errors,
                    "all_meet_target": not missed,
                    "plans": plans,
                },
                indent=2,
            )
        )
    else:
        print_table(backend, args.runs, results, args.skip_count)
        print(
            f"host: {os.cpu_count()} CPUs, 1-min load average {load_before[0]} before, "
            f"{load[0]} after (client and server share the host)"
        )
        print()
        print("correctness: " + ("all checks passed" if not errors else "FAILED"))
        for e in errors:
            print(f"  - {e}")
        for p in plans:
            print()
            print(
                f"[{p['kind']}] size {p['page_size']} page {p['page']} filter {p['filter']}: "
                f"{p['median_ms']} ms\n  {p['sql']}"
            )
            for line in p["plan"]:
                print(f"    {line}")
    if errors:
        return 1
    return 2 if args.strict and missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
