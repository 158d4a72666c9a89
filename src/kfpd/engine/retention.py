"""The retention job: a thread in the server applying the configured policy periodically."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kfpd.db.engine import Database
from kfpd.domain.timeutil import now_us
from kfpd.services import retention

log = logging.getLogger(__name__)


class RetentionJob:
    """Every ``interval_s``: remove what the policy expires (the same work as ``kfpd gc``)."""

    def __init__(
        self,
        database: Database,
        policies: retention.PolicySet,
        *,
        interval_s: float,
        log_root: Path,
        artifact_root: Path,
        delete_artifacts: bool,
        remote_locate: retention.RemoteLocate | None = None,
    ) -> None:
        self.database = database
        self.policies = policies
        self.interval_s = interval_s
        self.log_root = log_root
        self.artifact_root = artifact_root
        self.delete_artifacts = delete_artifacts
        self.remote_locate = remote_locate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_report: retention.GcReport | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kfpd-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def run_once(self) -> retention.GcReport:
        report = retention.collect_with_settings(
            self.database.write_session,
            self.policies,
            now_us(),
            log_root=self.log_root,
            artifact_root=self.artifact_root,
            delete_artifacts=self.delete_artifacts,
            remote_locate=self.remote_locate,
        )
        self.last_report = report
        if report.runs or report.artifacts:
            log.info(
                "retention removed finished runs",
                extra={"runs": report.runs, "tasks": report.tasks, "artifacts": report.artifacts},
            )
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # the next round tries again; the server keeps serving
                log.exception("retention round failed")
