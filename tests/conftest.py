"""Fixtures: a real database per dialect (SQLite, PostgreSQL, MariaDB), the app, a live server.

Set KFPD_TEST_REQUIRE_DBS=1 (CI does) to make an unreachable PostgreSQL or MariaDB fail the
run instead of skipping its tests. KFPD_TEST_PG_URL / KFPD_TEST_MYSQL_URL point elsewhere.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, text, update
from sqlalchemy.engine import make_url

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.db.models import (
    Artifact,
    ArtifactTask,
    Experiment,
    MlmdImport,
    Pipeline,
    PipelineVersion,
    RecurringRun,
    RecurringRunSlot,
    Run,
    Task,
)
from tests.helpers import RunTokenAuth

# Task processes outlive a stopped server by default (on_stop=leave): a test server that is
# stopped or killed mid-run would leave its launchers retrying their report for a week. Tests
# kill them with their server instead, unless a test asks for another mode (a flag wins).
os.environ.setdefault("KFPD_ON_STOP", "cancel")

PG_URL = os.environ.get("KFPD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_URL = os.environ.get("KFPD_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
REQUIRE = os.environ.get("KFPD_TEST_REQUIRE_DBS") == "1"
# Lets several checkouts run their suites at once on the same database servers.
DB_PREFIX = os.environ.get("KFPD_TEST_DB_PREFIX", "kfpd_test")
DIALECTS = ["sqlite", "postgresql", "mariadb"]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "kfp-corpus"
if not CORPUS.exists():
    CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "kfp-corpus"
CORPUS = Path(os.environ.get("KFPD_TEST_CORPUS", CORPUS))  # another checkout of the corpus


def require_corpus() -> None:
    """Skip the calling test module (or test) when the upstream pipeline corpus is missing;
    with KFPD_TEST_REQUIRE_DBS=1 (CI) a missing corpus fails instead."""
    if CORPUS.is_dir():
        return
    reason = f"the compiled upstream pipelines (../shared/kfp-corpus) are not at {CORPUS}"
    if REQUIRE:
        pytest.fail(reason + " (KFPD_TEST_REQUIRE_DBS=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if REQUIRE:
        pytest.fail(message + " (KFPD_TEST_REQUIRE_DBS=1)", pytrace=False)
    pytest.skip(message)


def _server_database(admin_url: str, name: str) -> str:
    """Create a fresh database ``name`` on the server behind ``admin_url``; return its URL."""
    url = make_url(admin_url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if url.get_backend_name() == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def fresh_database_url(dialect: str, tmp_dir: Path, name: str) -> str:
    if dialect == "sqlite":
        return f"sqlite:///{tmp_dir / (name + '.sqlite')}"
    admin = PG_URL if dialect == "postgresql" else MYSQL_URL
    try:
        return _server_database(admin, name)
    except Exception as exc:
        _unavailable(dialect, exc)
        raise


@pytest.fixture(scope="session", params=DIALECTS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> str:
    dialect = request.param
    url = fresh_database_url(dialect, tmp_path_factory.mktemp(dialect), f"{DB_PREFIX}_{worker_id}")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _session_db(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def empty_database(database: Database) -> Database:
    """Delete every row (links first; parents unlinked so MySQL's cascades stay shallow)."""
    with database.write_session() as s:
        s.execute(delete(ArtifactTask))
        s.execute(update(Task).values(parent_task_id=None))
        for model in (
            Task,
            Artifact,
            Run,
            RecurringRunSlot,
            RecurringRun,
            PipelineVersion,
            Pipeline,
            Experiment,
            MlmdImport,
        ):
            s.execute(delete(model))
    return database


@pytest.fixture
def db(_session_db: Database) -> Database:
    """The dialect's database, emptied before each test."""
    return empty_database(_session_db)


@pytest.fixture
def api(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(data_dir=tmp_path, max_body_bytes=2 * 1024 * 1024, orchestrate=False),
        database=db,
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.auth = RunTokenAuth(app.state.settings.run_token_secret())
        yield client


_RESERVED: dict[int, socket.socket] = {}


def _free_port() -> int:
    """A port bound now and kept bound until a test server takes it over (no race with
    other processes picking the same free port between choosing it and serving on it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    _RESERVED[port] = sock
    return port


def _serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    sock = _RESERVED.pop(port, None)
    sockets = [sock] if sock is not None else None
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return server, thread


@pytest.fixture
def live_server(db: Database, tmp_path: Path) -> Iterator[str]:
    """A real HTTP server (uvicorn in a thread) for clients such as kfp.Client."""
    port = _free_port()
    app = create_app(Settings(data_dir=tmp_path, orchestrate=False), database=db)
    server, thread = _serve(app, port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def orchestrated_server(db: Database, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start servers that run pipelines: ``url = orchestrated_server(executor, **settings)``
    (executor None = the real local executor)."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(executor: Any = None, **settings: Any) -> str:
        port = _free_port()
        settings.setdefault("data_dir", tmp_path)
        app = create_app(Settings(port=port, **settings), database=db, executor=executor)
        started.append(_serve(app, port))
        return f"http://127.0.0.1:{port}"

    def stop(url: str) -> None:
        server, thread = started[urls.index(url)]
        server.should_exit = True
        thread.join(timeout=20)

    urls: list[str] = []

    def start_and_record(executor: Any = None, **settings: Any) -> str:
        url = start(executor, **settings)
        urls.append(url)
        return url

    start_and_record.stop = stop  # type: ignore[attr-defined]
    yield start_and_record
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=20)
