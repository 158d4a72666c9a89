"""The local executor's warm worker: a single-threaded process that has kfp and the launcher
imported and forks the launchers, so a task never waits for a Python interpreter to start.

Forking a process with kfp loaded is itself slow (page tables), so the worker keeps one
launcher forked ahead of time, idle; a task goes to that one and the next is forked while it
runs. The idle launcher likewise pre-forks the child that will run the component.

It speaks JSON lines. In (stdin): ``{"task_id", "spec", "work_dir", "log", "env"}``. Out
(stdout): ``{"event": "ready"}``, ``{"event": "started", "task_id", "pid"}``,
``{"event": "exited", "task_id", "returncode"}`` (negative: killed by that signal) and
``{"event": "failed", "task_id", "error"}`` when no launcher could be started. Each launcher
leads its own process group (its pid), so its whole tree can be killed at once.
When stdin closes (the server went away or is stopping) the worker exits and its launchers
keep running: each writes its report to whichever server answers next, which adopts them (the
worker records each launcher's identity in its work directory first, see
``kfpd.executors.pidfile``). With KFPD_WORKER_KILL_ON_STOP=1 it kills them and waits instead.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
from pathlib import Path
from typing import Any

from kfpd.executors import pidfile

_HAS_KFP = False
# KFPD_WORKER_PREFAULT=1: idle launchers and their pre-forked children pre-fault their memory
# (see kfpd.launcher.process.prefault_memory).
_PREFAULT = os.environ.get("KFPD_WORKER_PREFAULT") == "1"
_KILL_ON_STOP = os.environ.get("KFPD_WORKER_KILL_ON_STOP") == "1"


def _preload() -> None:
    global _HAS_KFP
    os.environ["_KFP_RUNTIME"] = "true"  # import kfp as a component's runtime does
    try:
        import kfp.dsl.executor
        import kfp.dsl.executor_main  # noqa: F401

        _HAS_KFP = True
    except ImportError:
        pass  # no kfp here: lightweight components will use a virtualenv instead
    from kfpd.launcher import main as launcher_main

    launcher_main.prewarm()


def _emit(event: dict[str, Any]) -> None:
    data = (json.dumps(event) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


class _Idle:
    """A launcher forked ahead of time, waiting for the request it will run."""

    def __init__(self, close_in_child: list[int]) -> None:
        order_read, order_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(order_write)
            _launcher_child(order_read, close_in_child)  # never returns
        # Both sides set the group, so it exists whichever runs first (a kill may follow).
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        os.close(order_read)
        self.pid = pid
        self.order = order_write

    def start(self, request: dict[str, Any]) -> None:
        data = json.dumps(request).encode()
        try:
            while data:
                data = data[os.write(self.order, data) :]
        finally:
            os.close(self.order)


def _launcher_child(order_fd: int, close_fds: list[int]) -> None:
    """A forked launcher: wait for a request, then run it. Never returns."""
    code = 70
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close_fds:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # not the worker's event pipe
        os.close(devnull)
        from kfpd.launcher import main as launcher_main
        from kfpd.launcher import process, python_components

        if _PREFAULT:
            process.prefault_memory()
        prefork = None
        if _HAS_KFP:
            prefork = process.PreForked(python_components.run_executor_main, prefault=_PREFAULT)
        chunks = []
        while chunk := os.read(order_fd, 65536):
            chunks.append(chunk)
        if not chunks:
            code = 0  # the worker is stopping
            return
        request = json.loads(b"".join(chunks))
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(request["work_dir"])
        os.environ.update(request.get("env") or {})
        code = launcher_main.main(["--spec", request["spec"]], prefork=prefork)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 70
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class _Worker:
    """The worker's state between turns of its select loop."""

    def __init__(self, wake_fds: list[int]) -> None:
        self.wake_fds = wake_fds
        self.children: dict[int, str] = {}  # launcher pid -> task id
        self.idle: _Idle | None = None
        self.buffer = b""
        self.stdin_open = True

    def fork_ahead(self) -> None:
        if self.idle is None and self.stdin_open:
            try:
                self.idle = _Idle(self.wake_fds)
            except OSError:
                self.idle = None  # retried on the next turn; a request meanwhile reports it

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            task_id = self.children.pop(pid, None)
            if task_id is not None:
                code = os.waitstatus_to_exitcode(status)
                _emit({"event": "exited", "task_id": task_id, "returncode": code})
            elif self.idle is not None and pid == self.idle.pid:
                self.idle = None  # died while idle; fork another

    def stdin_closed(self) -> bool:
        """The server went away or is stopping. True: exit now (the launchers live on)."""
        self.stdin_open = False
        if self.idle is not None:
            os.close(self.idle.order)  # it exits on the closed pipe
            self.idle = None
        if not _KILL_ON_STOP:
            return True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        return False

    def take(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.launch(json.loads(line))

    def launch(self, request: dict[str, Any]) -> None:
        task_id = request["task_id"]
        try:
            launcher = self.idle or _Idle(self.wake_fds)
            self.idle = None
            # Before it starts: a server restarted from here on finds (and adopts) it.
            pidfile.write(Path(request["work_dir"]), launcher.pid)
            launcher.start(request)
        except OSError as exc:
            _emit({"event": "failed", "task_id": task_id, "error": str(exc)})
            return
        self.children[launcher.pid] = task_id
        _emit({"event": "started", "task_id": task_id, "pid": launcher.pid})


def serve() -> int:
    _preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    gc.freeze()  # keep the preloaded objects' pages shared with the children
    worker = _Worker([wake_r, wake_w])
    _emit({"event": "ready"})
    while worker.stdin_open or worker.children:
        worker.fork_ahead()
        watched = [0, wake_r] if worker.stdin_open else [wake_r]
        ready, _, _ = select.select(watched, [], [], 1.0)
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        worker.reap()
        if 0 not in ready:
            continue
        data = os.read(0, 65536)
        if data:
            worker.take(data)
        elif worker.stdin_closed():
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(serve())
