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

PostgreSQL/MySQL connections cost no round trip of their own per request (see
:func:`_lean_pool`): a connection is pinged only when it sat idle in the pool, and returned
without a ROLLBACK when its transaction already ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import anyio.to_thread
from pydantic_core import from_json, to_json
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolResetState

T = TypeVar("T")

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _json_dumps(value: Any) -> str:
    return to_json(value).decode()


# JSON columns (task parameters, state histories, artifact metadata, ...) go through
# pydantic-core: 3-4x faster than the json module both ways, same JSON.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": from_json}
# SQLite's own threshold: a commit that finds this many pages in the WAL copies them back into
# the database file (and syncs it) before it returns.
WAL_AUTOCHECKPOINT_PAGES = 1000
# With background checkpoints, commits only do it when the WAL grew this large (64 MiB) anyway,
# e.g. when the checkpoint thread is not running or cannot keep up.
WAL_BACKSTOP_PAGES = 16384
# A pooled PostgreSQL/MySQL connection idle for longer than this is pinged before use.
PING_AFTER_IDLE_S = 1.0


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


def _sqlite_engine(
    url: URL, *, immediate: bool, synchronous: str, autocheckpoint: int = WAL_AUTOCHECKPOINT_PAGES
) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": 60, "check_same_thread": False},
        pool_use_lifo=True,
        **JSON_CODEC,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")  # one of SQLITE_SYNCHRONOUS
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: this runs once per transaction, and nothing here needs
        # SQLAlchemy's statement machinery.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_ENDED, _USED_AT = "kfpd_ended", "kfpd_used_at"  # keys of a pooled connection's info


def _lean_pool(engine: Engine) -> None:
    """No round trip per checkout or checkin that the request itself does not need.

    * Ping only a connection that sat idle for more than ``PING_AFTER_IDLE_S`` (SQLAlchemy's
      ``pool_pre_ping`` pings on every checkout: one more round trip per request). A connection
      in steady use needs none: if the server went away meanwhile, the failing statement marks
      the pool invalid and the next checkouts reconnect. A failed ping makes the pool retry with
      a fresh connection, as ``pool_pre_ping`` does.
    * MySQL/MariaDB: skip the pool's ROLLBACK on checkin when the connection's transaction
      already ended with a COMMIT or ROLLBACK and nothing ran since (PyMySQL sends every
      ROLLBACK to the server; psycopg skips it by itself when no transaction is open).
    """
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info[_USED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        record.info[_ENDED] = False  # whatever the borrower does, reset it unless it ends
        if time.monotonic() - record.info.get(_USED_AT, 0.0) > PING_AFTER_IDLE_S:
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as error:
                raise exc.DisconnectionError() from error  # the pool retries with a new one

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_USED_AT] = time.monotonic()

    if dialect.name in {"mysql", "mariadb"}:
        _reset_only_open_transactions(engine)


def _reset_only_open_transactions(engine: Engine) -> None:
    """The pool's reset-on-return (ROLLBACK), for the connections whose transaction did not end
    (the engine is created with ``pool_reset_on_return=None``)."""

    def _dirty(conn: Any, *_args: Any) -> None:
        conn.info[_ENDED] = False

    def _ending(conn: Any) -> None:  # before the DBAPI call; an error there marks it dirty
        conn.info[_ENDED] = True

    event.listen(engine, "before_cursor_execute", _dirty)
    event.listen(engine, "commit", _ending)
    event.listen(engine, "rollback", _ending)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        connection = context.connection
        if connection is not None and not connection.invalidated:
            connection.info[_ENDED] = False

    @event.listens_for(engine, "reset")
    def _reset(dbapi_conn: Any, record: Any, state: PoolResetState) -> None:
        if state.terminate_only or not state.asyncio_safe or state.transaction_was_reset:
            return
        if record is not None and record.info.get(_ENDED):
            return
        dbapi_conn.rollback()  # what the pool's reset-on-return would have done


class Database:
    """The database of one kfpd server: engines, session factories, dialect facts."""

    def __init__(
        self, url: str | URL, *, pool_size: int = 10, background_checkpoints: bool = False
    ) -> None:
        """``background_checkpoints`` (SQLite): commits leave WAL checkpoints to a thread
        started with :meth:`start_background_work`, instead of copying pages back themselves
        every 1000 pages (the request that happens to cross the threshold pays for it)."""
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        self._checkpointer: WalCheckpointer | None = None
        # SQLite has one writer at a time. kfpd's own writers queue on this lock (a hand-off,
        # where SQLite's busy handler polls with sleeps of up to 100 ms), and a request can see
        # whether the writer's slot is free (run_write).
        self._sqlite_writer: threading.Lock | None = None
        self._inline_writes = False
        if self.dialect == "sqlite":
            sync = sqlite_synchronous(url)
            self._sqlite_writer = threading.Lock()
            self._inline_writes = sync in ("OFF", "NORMAL")  # commits never wait for a disk
            pages = WAL_BACKSTOP_PAGES if background_checkpoints else WAL_AUTOCHECKPOINT_PAGES
            self.engine = _sqlite_engine(
                self.url, immediate=False, synchronous=sync, autocheckpoint=pages
            )
            self.write_engine = _sqlite_engine(
                self.url, immediate=True, synchronous=sync, autocheckpoint=pages
            )
            if background_checkpoints:
                self._checkpointer = WalCheckpointer(self.engine)
        else:
            kwargs: dict[str, Any] = {
                "pool_size": pool_size,
                "max_overflow": pool_size * 2,
                # The most recently used connection first: a steady load keeps reusing a few
                # warm connections (no idle ping, server-side caches warm), the rest age out.
                "pool_use_lifo": True,
            }
            if self.dialect in {"mysql", "mariadb"}:
                kwargs["isolation_level"] = "READ COMMITTED"
                kwargs["pool_reset_on_return"] = None  # see _reset_only_open_transactions
            if self.dialect == "postgresql" and "options" not in self.url.query:
                # kfpd's reads are short index scans: starting parallel workers costs more than
                # it saves (a 200k-name count: 21 ms serial, 32-45 ms with 2 workers on 2
                # vCPUs) and multiplies CPU under concurrent API load. ?options=... overrides.
                kwargs["connect_args"] = {"options": "-c max_parallel_workers_per_gather=0"}
            self.engine = create_engine(self.url, **kwargs, **JSON_CODEC)
            _lean_pool(self.engine)
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
        with self._sqlite_writer or nullcontext(), self._transaction() as session:
            yield session

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    def _write_call(self, work: Callable[[Session], T]) -> T:
        with self.write_session() as session:
            return work(session)

    async def run_write(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in one write transaction, from a request's event loop.

        SQLite without an fsync per commit: when no other writer holds the database, the
        transaction runs right here. It only computes and appends to the WAL, and the hop to a
        worker thread and back cost more than the write itself (metadata_write: ~0.6 ms of
        server CPU per task, ~30 % of the throughput). When the writer's slot is taken, and on
        PostgreSQL/MySQL (network round trips), it runs in a worker thread. One kfpd process per
        SQLite file: another process's write transaction would stall the loop meanwhile.
        """
        writer = self._sqlite_writer
        if self._inline_writes and writer is not None and writer.acquire(blocking=False):
            try:
                with self._transaction() as session:
                    return work(session)
            finally:
                writer.release()
        # FastAPI's pool of worker threads (and its limit), as for a sync route.
        return await anyio.to_thread.run_sync(self._write_call, work)

    def start_background_work(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.start()

    def stop_background_work(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()

    def dispose(self) -> None:
        self.stop_background_work()
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


class WalCheckpointer:
    """Copies a SQLite WAL back into the database file from its own thread.

    PASSIVE checkpoints never wait for readers or writers, and SQLite releases the GIL while it
    copies, so commits on the request path only append to the WAL."""

    def __init__(self, engine: Engine, interval_s: float = 0.5) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kfpd-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self._thread = None

    def checkpoint(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.checkpoint()
            except Exception:  # the next round tries again; commits still have the backstop
                continue
        self.checkpoint()  # leave a short WAL behind
