"""Database.run_write: where a request's write transaction runs, and that it is one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
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
