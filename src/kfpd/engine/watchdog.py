"""Bounds the time of one orchestration step, so no run can hold the engine (and, on SQLite,
the database's write lock) for long.

A step is ordinary Python in the engine thread; nothing outside it can stop it cleanly. The
watchdog raises an exception *inside* that thread (CPython's ``PyThreadState_SetAsyncExc``)
when a step outlives its budget: the exception unwinds the step, its transaction rolls back,
and the engine fails that run and goes on. The exception is delivered between two bytecodes,
so a step blocked inside a C call (a database lock wait) is interrupted when the call returns.
It is only ever raised while the engine thread is inside :meth:`StepWatchdog.guard`; one
pending when the guard ends is cancelled there.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StepTimeout(Exception):
    """Raised in the engine thread: the step took longer than its budget."""


class EngineStopping(BaseException):
    """Raised in the engine thread at shutdown: abandon the step (it rolls back)."""


def _raise_in(thread: threading.Thread, exc_type: type[BaseException] | None) -> None:
    """Make ``exc_type`` pending in ``thread`` (None: cancel a pending one)."""
    ident = thread.ident
    if ident is None:
        return
    target = ctypes.py_object(exc_type) if exc_type is not None else ctypes.py_object()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), target)


class StepWatchdog:
    def __init__(self, timeout: float, *, poll: float = 0.1) -> None:
        self.timeout = timeout
        self._poll = poll
        self._lock = threading.Lock()
        self._target: threading.Thread | None = None
        self._step_started: float | None = None  # monotonic, while a step runs
        self._fired = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, target: threading.Thread) -> None:
        self._target = target
        self._stopped.clear()
        self._thread = threading.Thread(target=self._watch, name="kfpd-step-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run one step under the budget (from the engine thread)."""
        with self._lock:
            self._step_started = time.monotonic()
            self._fired = False
        try:
            yield
        finally:
            with self._lock:
                self._step_started = None
                if self._fired and self._target is not None:
                    _raise_in(self._target, None)  # fired too late to matter: cancel it

    def interrupt(self, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` in the step running now, if any (from another thread)."""
        with self._lock:
            if self._step_started is None or self._target is None or self._fired:
                return False
            self._fired = True
            _raise_in(self._target, exc_type)
            return True

    def _watch(self) -> None:
        while not self._stopped.wait(self._poll):
            with self._lock:
                started = self._step_started
            if started is not None and time.monotonic() - started > self.timeout:
                self.interrupt(StepTimeout)
