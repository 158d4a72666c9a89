"""Running the task's program with its output (stdout and stderr together) pumped to the log.

Two ways to start it: a new process (``run_command``), or a fork of this process running a
Python callable (``run_forked``, the fast path for lightweight components when kfp is already
imported). Either way the launcher stays single-threaded: one loop reads the pipe, writes the
log and sends chunks to the server.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfpd.launcher.logsink import LogSink

# After the program exits, how long to keep reading from children it left holding the pipe.
DRAIN_AFTER_EXIT = 2.0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def run_command(argv: list[str], *, env: dict[str, str], cwd: Path, sink: LogSink) -> int:
    """Run ``argv``; return its exit code (negative: killed by that signal)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        return _pump(proc.stdout.fileno(), proc.poll, proc.wait, sink)
    finally:
        proc.stdout.close()


Handler = Callable[[dict[str, Any]], int]


def run_forked(handler: Handler, request: dict[str, Any], *, sink: LogSink) -> int:
    """Fork now and run ``handler(request)`` in the child (see :class:`PreForked`)."""
    return PreForked(handler).run(request, sink)


_MADV_POPULATE_WRITE = 23  # Linux 5.14+


def prefault_memory() -> bool:
    """Copy this forked process's writable memory now rather than page by page later.

    After a fork every page is shared copy-on-write, and the first write to each costs a page
    fault: a Python process writes to hundreds of pages (reference counts) just running a small
    function. Where faults are slow (virtual machines with software-virtualized page tables)
    that is most of a short task's time. Doing it in bulk while a pre-forked process waits for
    its task takes it off the critical path, at the price of the process's memory becoming
    private. Linux only; returns False where unsupported.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as maps:
            lines = maps.read().splitlines()
    except (OSError, AttributeError):
        return False
    done = False
    for line in lines:
        fields = line.split()
        perms = fields[1]
        name = fields[5] if len(fields) > 5 else ""
        if not perms.startswith("rw") or perms[3] != "p" or name.startswith("[v"):
            continue
        if name == "[stack]":
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        done = madvise(start, end - start, _MADV_POPULATE_WRITE) == 0 or done
    return done


class PreForked:
    """A child forked ahead of time that will run ``handler(request)`` once told ``request``.

    Forking is the slow part of starting it (the page tables of a process with kfp imported),
    so a warm launcher forks while it waits for its task; with ``prefault`` the child also
    takes its copy-on-write faults while it waits (see :func:`prefault_memory`). The child's
    stdout and stderr go to the log; ``request["cwd"]`` is its working directory. The forking
    process must have no other threads (the child inherits only the calling one).
    """

    def __init__(self, handler: Handler, *, prefault: bool = False) -> None:
        out_read, out_write = os.pipe()
        order_read, order_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(out_read)
            os.close(order_write)
            if prefault:
                prefault_memory()
            _child_main(handler, order_read, out_write)  # never returns
        os.close(out_write)
        os.close(order_read)
        self.pid = pid
        self._out = out_read
        self._order: int | None = order_write

    def run(self, request: dict[str, Any], sink: LogSink) -> int:
        """Hand the child its request; pump its output to the log until it exits."""
        assert self._order is not None, "a pre-forked child runs once"
        data = json.dumps(request).encode()
        order, self._order = self._order, None
        try:
            while data:
                data = data[os.write(order, data) :]
        finally:
            os.close(order)
        child = _Child(self.pid)
        return _pump(self._out, child.poll, child.wait, sink, close=True)

    def discard(self) -> None:
        """Not needed after all: the child exits when its order pipe closes unread."""
        if self._order is not None:
            os.close(self._order)
            self._order = None
            os.close(self._out)
            os.waitpid(self.pid, 0)


def _child_main(handler: Handler, order_fd: int, out_fd: int) -> None:
    code = 1
    try:
        chunks = []
        while chunk := os.read(order_fd, 65536):
            chunks.append(chunk)
        os.close(order_fd)
        if not chunks:
            os._exit(0)  # discarded
        request = json.loads(b"".join(chunks))
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        os.close(devnull)
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True)
        os.chdir(request["cwd"])
        code = handler(request)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class _Child:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _pump(
    fd: int,
    poll: Callable[[], int | None],
    wait: Callable[[], int],
    sink: LogSink,
    *,
    close: bool = False,
) -> int:
    exited_at: float | None = None
    try:
        while True:
            timeout = min(max(sink.seconds_until_due(), 0.01), 0.5)
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    break
                sink.write(data)
            sink.tick()
            if exited_at is None:
                if poll() is not None:
                    exited_at = time.monotonic()
            elif time.monotonic() - exited_at > DRAIN_AFTER_EXIT:
                sink.note("the program exited but something it started still holds its output")
                break
    finally:
        if close:
            os.close(fd)
    return wait()
