"""SQLite WAL checkpoints run in a background thread, so commits on the request path never do."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from kfpd.db.engine import WAL_AUTOCHECKPOINT_PAGES, WAL_BACKSTOP_PAGES, Database, WalCheckpointer
from kfpd.db.migrate import upgrade


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kfpd-wal-checkpoint"]


def _autocheckpoint(db: Database) -> int:
    with db.write_engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() or 0)


def _write(db: Database, i: int) -> None:
    with db.write_session() as s:
        s.execute(
            text(
                "INSERT INTO experiments (id, namespace, display_name, description,"
                " storage_state, created_at, last_run_created_at)"
                " VALUES (:id, '', :name, '', 1, 1, 0)"
            ),
            {"id": f"e{i}", "name": f"exp {i}"},
        )


def test_background_checkpoints_copy_the_wal_back_off_the_request_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints: list[tuple[int, int, int]] = []
    original = WalCheckpointer.checkpoint

    def counted(self: WalCheckpointer) -> None:
        original(self)
        with self.engine.connect() as conn:  # after a complete pass nothing is left to copy
            checkpoints.append(conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one())

    monkeypatch.setattr(WalCheckpointer, "checkpoint", counted)
    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    upgrade(url)
    db = Database(url, background_checkpoints=True)
    try:
        assert _autocheckpoint(db) == WAL_BACKSTOP_PAGES, "commits only checkpoint as a backstop"
        db.start_background_work()
        db.start_background_work()  # idempotent
        assert len(_checkpointer_threads()) == 1
        for i in range(50):
            _write(db, i)
        deadline = time.monotonic() + 10
        while not any(log > 0 for _, log, _ in checkpoints) and time.monotonic() < deadline:
            time.sleep(0.05)
        busy, log, done = next(c for c in checkpoints if c[1] > 0)
        assert (busy, done) == (0, log), "the thread copied every frame back"
    finally:
        db.dispose()  # stops the thread
    assert _checkpointer_threads() == []


def test_without_background_checkpoints_sqlite_keeps_its_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    upgrade(url)
    db = Database(url)
    try:
        db.start_background_work()  # nothing to start
        assert _checkpointer_threads() == []
        assert _autocheckpoint(db) == WAL_AUTOCHECKPOINT_PAGES
    finally:
        db.dispose()
