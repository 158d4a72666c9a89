"""The recurring-run scheduler: one thread in the server, no controller process.

Each tick reads the enabled schedules and decides (purely, domain/schedule.decide) which have
due slots; only those get a write transaction (services/recurring_runs.fire_due), which locks
the schedule row, decides again and claims each slot with the run it fires. Several servers on
one PostgreSQL/MySQL database may run the loop at once: the row lock serializes them per
schedule and the slot's primary key refuses a second claim. The runs it fires are handed to
the engine after the commit; a server that died in between resumes them at start-up (they are
PENDING rows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from kfpd.db.engine import Database
from kfpd.db.errors import is_unique_violation
from kfpd.domain.errors import KfpdError
from kfpd.domain.schedule import SECOND_US
from kfpd.domain.timeutil import now_us
from kfpd.services import recurring_runs as svc

log = logging.getLogger(__name__)

# A schedule whose firing failed (its pipeline was deleted, its parameters no longer fit...)
# is tried again after this long, not on every tick.
RETRY_AFTER_ERROR_US = 30 * SECOND_US


class Scheduler:
    def __init__(
        self,
        database: Database,
        on_run_created: Callable[[str], None],
        *,
        clock: Callable[[], int] = now_us,
        poll_seconds: float = 1.0,
    ) -> None:
        self.database = database
        self.on_run_created = on_run_created
        self.clock = clock
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at: dict[str, int] = {}  # schedule id -> when a failed firing is retried
        # Read by /metrics.
        self.runs_fired = 0
        self.claim_conflicts = 0
        self.fire_errors = 0
        self.last_tick_at: float | None = None  # time.monotonic() of the last completed tick

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="kfpd-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def wake(self) -> None:
        """A schedule changed (created, enabled, updated): look now, and retry failed ones."""
        self._retry_at.clear()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delay = self.tick()
            except Exception:  # the database may be away for a moment; try again later
                log.exception("scheduler tick failed")
                delay = self.poll_seconds
            self._wake.wait(delay)

    def tick(self) -> float:
        """One pass over the schedules; returns how long to sleep before the next one."""
        now = self.clock()
        with self.database.read_session() as session:
            decisions = svc.scan(session, now)
        sleep_s = self.poll_seconds
        for recurring_run_id, decision in decisions:
            if decision.wake_at_us is not None:
                sleep_s = min(sleep_s, (decision.wake_at_us - now) / SECOND_US)
            if decision.fire and self._retry_at.get(recurring_run_id, 0) <= now:
                self.fire(recurring_run_id, now)
        self.last_tick_at = time.monotonic()
        return max(sleep_s, 0.05)

    def seconds_since_tick(self) -> float | None:
        return None if self.last_tick_at is None else time.monotonic() - self.last_tick_at

    def fire(self, recurring_run_id: str, now: int) -> list[str]:
        """Fire the due slots of one schedule; returns the ids of the runs it created."""
        try:
            with self.database.write_session() as session:
                fired = svc.fire_due(session, recurring_run_id, now)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            log.info("a slot of %s was claimed by another server", recurring_run_id)
            self.claim_conflicts += 1
            return []
        except KfpdError as exc:
            log.warning("recurring run %s could not fire: %s", recurring_run_id, exc.message)
            self._retry_at[recurring_run_id] = now + RETRY_AFTER_ERROR_US
            self.fire_errors += 1
            with self.database.write_session() as session:
                svc.record_error(session, recurring_run_id, exc.grpc_code, exc.message)
            return []
        self._retry_at.pop(recurring_run_id, None)
        self.runs_fired += len(fired.run_ids)
        for run_id in fired.run_ids:
            self.on_run_created(run_id)
        return fired.run_ids
