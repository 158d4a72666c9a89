"""Engines and sessions per dialect.

SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE`` on a separate
engine so that two writers never deadlock on a lock upgrade, while readers stay concurrent.
``synchronous=NORMAL``: a commit appends to the WAL without an fsync (the WAL is synced at
checkpoints), so a committed transaction survives a crash of kfpd but the last ones may be lost
on power loss or an OS crash; the database itself stays consistent. That is SQLite's advice for
WAL and what a single-node metadata store needs. ``?synchronous=full`` on the SQLite URL makes
every commit durable on power loss too, at the cost of an fsync per write request.
MySQL/MariaDB run at READ COMMITTED so that a transaction that waited on a row lock sees
what the transaction before it committed (PostgreSQL's default).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def sqlite_synchronous(url: str | URL) -> str:
    """The ``synchronous`` level a SQLite URL asks for (``?synchronous=full``); NORMAL if none."""
    value = str(make_url(url).query.get("synchronous") or "NORMAL").upper()
    if value not in SQLITE_SYNCHRONOUS:
        raise ValueError(
            f"synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, got {value!r}"
        )
    return value


def normalize_url(url: str | URL) -> URL:
    """Pick the drivers kfpd ships with when a URL names only the dialect, and drop the
    options kfpd itself applies (SQLite ``synchronous``)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.difference_update_query(["synchronous"])
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend in {"mysql", "mariadb"} and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    if parsed.get_backend_name() in {"mysql", "mariadb"} and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def _sqlite_engine(url: URL, *, immediate: bool, synchronous: str) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": 60, "check_same_thread": False}, pool_use_lifo=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")  # one of SQLITE_SYNCHRONOUS
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: this runs once per transaction, and nothing here needs
        # SQLAlchemy's statement machinery.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The database of one kfpd server: engines, session factories, dialect facts."""

    def __init__(self, url: str | URL, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            sync = sqlite_synchronous(url)
            self.engine = _sqlite_engine(self.url, immediate=False, synchronous=sync)
            self.write_engine = _sqlite_engine(self.url, immediate=True, synchronous=sync)
        else:
            kwargs: dict[str, Any] = {
                "pool_pre_ping": True,
                "pool_size": pool_size,
                "max_overflow": pool_size * 2,
            }
            if self.dialect in {"mysql", "mariadb"}:
                kwargs["isolation_level"] = "READ COMMITTED"
            self.engine = create_engine(self.url, **kwargs)
            self.write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False, autoflush=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads; closing it ends its transaction and keeps loaded rows usable."""
        with self._read() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
