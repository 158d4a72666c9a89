"""``kfpd server --on-stop drain``: on SIGTERM/SIGINT keep serving until the running tasks
ended, so their reports still find this server; then stop as usual.

The drain waits at most ``drain_timeout`` seconds; what still runs then is left running (the
next server adopts it) and what did not start yet stays queued for the next server. A second
signal stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("kfpd.server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_timeout: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_timeout = drain_timeout
        self._draining: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        executor = getattr(getattr(self._app.state, "engine", None), "executor", None)
        drain = getattr(executor, "drain", None)
        if (
            self._draining is not None
            or drain is None
            or sig
            not in (
                signal.SIGTERM,
                signal.SIGINT,
            )
        ):
            super().handle_exit(sig, frame)
            return
        log.info("draining: waiting up to %.0f s for the running tasks", self._drain_timeout)

        def wait_then_stop() -> None:
            if not drain(self._drain_timeout):
                log.warning("drain timed out: the tasks still running are left running")
            super(DrainingServer, self).handle_exit(sig, frame)

        self._draining = threading.Thread(target=wait_then_stop, name="kfpd-drain", daemon=True)
        self._draining.start()
