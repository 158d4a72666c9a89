"""SQLite durability level from the URL (``?synchronous=``), applied to every connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from kfpd.db.engine import Database, normalize_url
from kfpd.db.migrate import upgrade

LEVELS = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


@pytest.mark.parametrize(("query", "level"), [("", "NORMAL"), ("?synchronous=full", "FULL")])
def test_sqlite_synchronous_level(tmp_path: Path, query: str, level: str) -> None:
    url = f"sqlite:///{tmp_path / 'k.sqlite'}{query}"
    upgrade(url)  # migrations get the URL without kfpd's own option
    db = Database(url)
    try:
        assert "synchronous" not in db.url.query
        with db.write_session() as s:
            assert s.execute(text("PRAGMA synchronous")).scalar() == LEVELS[level]
        with db.read_session() as s:
            assert s.execute(text("PRAGMA synchronous")).scalar() == LEVELS[level]
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        db.dispose()


def test_sqlite_synchronous_rejects_unknown_levels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be one of"):
        Database(f"sqlite:///{tmp_path / 'k.sqlite'}?synchronous=sometimes")


def test_other_dialects_keep_their_query() -> None:
    url = normalize_url("postgresql://u@h/db?synchronous=x")
    assert url.query == {"synchronous": "x"}
