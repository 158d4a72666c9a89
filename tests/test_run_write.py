"""Database.run_write: where a request's write transaction runs, and that it is one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.db.models import Experiment


def _insert(session: Session, name: str) -> str:
    session.execute(
        text(
            "INSERT INTO experiments (id, namespace, display_name, description,"
            " storage_state, created_at, last_run_created_at)"
            " VALUES (:id, '', :name, '', 1, 1, 0)"
        ),
        {"id": name, "name": name},
    )
    return threading.current_thread().name


def _count(db: Database) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(Experiment)) or 0)


def test_a_write_runs_where_it_should_and_commits_or_rolls_back(db: Database) -> None:
    here = threading.current_thread().name
    ran_on = asyncio.run(db.run_write(lambda s: _insert(s, "a")))
    # SQLite appends to its WAL on the caller's thread; the others talk to a server.
    assert (ran_on == here) == db.is_sqlite
    assert _count(db) == 1

    def fails(s: Session) -> None:
        _insert(s, "b")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(db.run_write(fails))
    assert _count(db) == 1, "the failed transaction left nothing behind"


def _sqlite(tmp_path: Path, query: str = "") -> Database:
    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    upgrade(url)
    return Database(url + query)


def test_sqlite_writes_go_to_a_thread_while_another_writer_holds_the_database(
    tmp_path: Path,
) -> None:
    db = _sqlite(tmp_path)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.write_session() as s:
            _insert(s, "held")
            holding.set()
            release.wait(10)

    other = threading.Thread(target=writer)
    other.start()
    try:
        assert holding.wait(10)

        async def write_while_held() -> str:
            pending = asyncio.ensure_future(db.run_write(lambda s: _insert(s, "queued")))
            await asyncio.sleep(0.2)
            assert not pending.done(), "it waits for the writer, off the event loop"
            release.set()
            return await pending

        ran_on = asyncio.run(write_while_held())
    finally:
        release.set()
        other.join(10)
    assert ran_on != threading.current_thread().name
    assert _count(db) == 2
    db.dispose()


def test_sqlite_with_an_fsync_per_commit_never_writes_on_the_event_loop(tmp_path: Path) -> None:
    db = _sqlite(tmp_path, "?synchronous=full")
    ran_on = asyncio.run(db.run_write(lambda s: _insert(s, "a")))
    assert ran_on != threading.current_thread().name
    db.dispose()


def _server_pid(db: Database) -> int:
    query = "SELECT pg_backend_pid()" if db.dialect == "postgresql" else "SELECT CONNECTION_ID()"
    with db.read_session() as s:
        return int(s.scalar(text(query)) or 0)


def _kill(database_url: str, pid: int) -> None:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            else:
                conn.execute(text(f"KILL {int(pid)}"))
    finally:
        admin.dispose()


def test_a_pooled_connection_that_died_while_idle_is_replaced_before_use(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no server connection to lose")
    first = _server_pid(db)
    _kill(database_url, first)
    # Every checkout after this long idle pings first (the default waits a second).
    monkeypatch.setattr("kfpd.db.engine.PING_AFTER_IDLE_S", 0.0)
    second = _server_pid(db)
    assert second != first, "the dead connection was not used"
    asyncio.run(db.run_write(lambda s: _insert(s, "after-restart")))
    assert _count(db) == 1


def test_a_connection_is_returned_to_the_pool_without_an_open_transaction(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite connections hold no server-side transaction")
    asyncio.run(db.run_write(lambda s: _insert(s, "locked")))
    lock = "SELECT id FROM experiments WHERE id = 'locked' FOR UPDATE"
    timeout = (
        "SET lock_timeout = '2s'"
        if db.dialect == "postgresql"
        else "SET innodb_lock_wait_timeout = 2"
    )
    other = Database(db.url)

    def assert_unlocked() -> None:
        """Another transaction takes the row lock at once: the pooled connection is at rest."""
        with other.write_session() as s:
            s.execute(text(timeout))
            assert s.execute(text(lock)).scalar() == "locked"

    try:
        # A borrower that bypasses SQLAlchemy's transactions and leaves its row lock behind,
        raw = db.engine.raw_connection()
        raw.cursor().execute(lock)
        raw.close()
        assert_unlocked()
        # one whose transaction committed,
        with db.write_session() as s:
            s.execute(text(lock))
        assert_unlocked()
        # one whose statement failed,
        with pytest.raises(DBAPIError), db.write_session() as s:
            s.execute(text(lock))
            s.execute(text("SELECT no_such_column FROM experiments"))
        assert_unlocked()
        # and a reader.
        with db.read_session() as s:
            s.execute(text(lock))
        assert_unlocked()
    finally:
        other.dispose()


def test_the_same_create_task_sent_at_once_makes_one_task(db: Database) -> None:
    """Retried CreateTask calls racing for the run's lock all get the one task (the lookup
    of an earlier create runs with the lock; the INSERT settles the race it can miss)."""
    from kfpd.db.models import Task
    from kfpd.schemas.runs import RunCreate
    from kfpd.schemas.tasks import PipelineTask
    from kfpd.services import runs, tasks
    from tests.helpers import compiled

    with db.write_session() as s:
        run_id = runs.create_run(
            s, RunCreate(display_name="r", pipeline_spec=compiled("graph_demo"))
        ).id
    with db.write_session() as s:
        body = PipelineTask.model_validate({"name": "ROOT", "type": "ROOT", "scope_path": "root"})
        root = tasks.create_task(s, run_id, body).id
    fields = {"name": "t", "type": "RUNTIME", "scope_path": "root.t", "parent_task_id": root}
    width = 8
    barrier = threading.Barrier(width)
    made: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                with db.write_session() as s:
                    made.append(tasks.create_task(s, run_id, PipelineTask(**fields)).id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(made) == 3 * width and len(set(made)) == 1
    with db.read_session() as s:
        count = s.scalar(select(func.count()).select_from(Task).where(Task.name == "t"))
    assert count == 1
