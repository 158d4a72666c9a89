"""Runs tasks as launcher processes on this host, several at once, each in its own directory.

Warm mode (default) keeps a pre-forked worker (``kfpd.executors.worker``) that has kfp and
the launcher imported and forks a child per task, so a task does not pay for a new Python
interpreter; a worker that dies is started again (the tasks it ran are reported failed), unless
it died 3 times within a minute. Without it (``warm=False``, or after that) each task is a
``python -m kfpd.launcher --spec FILE`` subprocess. Either way each launcher leads its own
process group, and ``cancel`` kills the group: the launcher and whatever it started.

Tasks outlive the server: each launcher runs in its own session, so no signal sent to the
server's process group reaches it, and ``on_stop`` decides what a graceful stop does with
them: ``leave`` (default) leaves them running, ``drain`` first waits for them (see
:meth:`LocalExecutor.drain`), ``cancel`` kills them. Each launcher's pid and start time are
written to its work directory (``kfpd.executors.pidfile``), so the server that starts next
adopts the tasks still running (:meth:`LocalExecutor.adopt`) and watches them until they end.

Container images are ignored: commands run on the host (logged once per executor).
``prefault`` makes idle pre-forked processes copy their memory ahead of time (see
``kfpd.launcher.process.prefault_memory``): it shortens a task on an idle machine and costs
CPU and memory on a busy one, so it is off by default.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from kfpd.executors import pidfile
from kfpd.executors.base import (
    ExitCallback,
    IgnoredImageWarning,
    StartCallback,
    TaskExit,
    deliver_exit,
)
from kfpd.launcher.main import EXECUTOR_ENV
from kfpd.launcher.process import describe_exit
from kfpd.schemas.launch import LaunchSpec

log = logging.getLogger("kfpd.executors.local")

SPEC_FILE = ".kfpd-launch.json"  # holds the run token: readable by the owner only
LAUNCHER_LOG = "launcher.log"
# A warm worker that dies this often within the window is not started again.
WORKER_DEATHS_TO_GIVE_UP = 3
WORKER_DEATH_WINDOW_S = 60.0
ADOPTED_POLL_S = 0.25  # how often adopted launchers (not our children) are checked
OnStop = Literal["leave", "drain", "cancel"]
ON_STOP_CHOICES: tuple[OnStop, ...] = ("leave", "drain", "cancel")

# Server settings holding credentials never reach a task's environment (a component that
# prints its environment would write them to its log).
_SERVER_ONLY_ENV = frozenset({"KFPD_DB_URL"})


def _task_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SERVER_ONLY_ENV}


class TaskUserError(ValueError):
    """Tasks cannot run as the requested user."""


@dataclass(frozen=True)
class TaskUser:
    """The unprivileged user task processes run as (``--task-user``): the server, running as
    root, gives it the directories tasks write into; the child switches to it (setgid,
    setgroups, setuid) before exec. The data directory's other files stay the server's."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> TaskUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise TaskUserError(f"--task-user: no user named {name!r}") from None
        if entry.pw_uid == 0:
            raise TaskUserError("--task-user must be an unprivileged user, not root")
        if os.geteuid() != 0:
            raise TaskUserError("--task-user needs the server to run as root (to switch user)")
        return cls(name, entry.pw_uid, entry.pw_gid)

    def give(self, path: Path) -> None:
        """Make ``path`` (a directory or file the server created) the task user's."""
        os.chown(path, self.uid, self.gid)

    def check_can_run(self, program: str) -> None:
        """Refuse at start-up an interpreter the task user cannot reach (every task would
        fail): each directory on its path must let the user in, the file read and run."""
        path = Path(program).resolve()
        for directory in reversed(path.parents):
            if not self._allows(directory, 0o1):
                raise TaskUserError(
                    f"--task-user {self.name} cannot run {program}: {directory} is private to "
                    "its owner; give --task-python an interpreter that user can run"
                )
        if not self._allows(path, 0o5):
            raise TaskUserError(f"--task-user {self.name} cannot run {program}")

    def _allows(self, path: Path, bits: int) -> bool:
        info = path.stat()
        if info.st_uid == self.uid:
            mode = info.st_mode >> 6
        elif info.st_gid == self.gid:
            mode = info.st_mode >> 3
        else:
            mode = info.st_mode
        return mode & bits == bits

    def popen_args(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def environ(self, home: Path) -> dict[str, str]:
        return {"HOME": str(home), "USER": self.name, "LOGNAME": self.name}


@dataclass
class _Task:
    spec: LaunchSpec
    on_exit: ExitCallback
    work_dir: Path
    pid: int | None = None
    warm: bool = False
    canceled: bool = False
    # Started by an earlier server process: not our child, watched through /proc.
    adopted: pidfile.ProcessIdentity | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class LocalExecutor:
    def __init__(
        self,
        max_parallel: int | None = None,
        work_root: Path | None = None,
        warm: bool = True,
        *,
        venv_root: Path | None = None,
        keep_work_dirs: bool = False,
        prefault: bool = False,
        on_stop: OnStop = "leave",
        task_user: str | None = None,
        task_dirs: tuple[Path, ...] = (),
        python: str | None = None,
    ) -> None:
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self.work_root = Path(work_root or Path(tempfile.gettempdir()) / "kfpd-work")
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.python = python or sys.executable
        self.task_user = TaskUser.named(task_user) if task_user else None
        if self.task_user is not None:
            self.task_user.check_can_run(self.python)
            # The task user's package cache lives with its work directories.
            venv_root = venv_root or self.work_root / ".venvs"
            for path in (self.work_root, venv_root, *task_dirs):
                path.mkdir(parents=True, exist_ok=True)
                self.task_user.give(path)
        self.venv_root = venv_root
        self.keep_work_dirs = keep_work_dirs
        self._lock = threading.Lock()
        self._all_done = threading.Condition(self._lock)  # _running became empty
        self._running: dict[str, _Task] = {}
        # Waiting for a slot, in submission order; by task id, so a submit or cancel does not
        # scan it (a 10,000-item ParallelFor queues nearly all its tasks at once).
        self._queue: OrderedDict[str, _Task] = OrderedDict()
        self._closed = False
        self._warn_image = IgnoredImageWarning("local", "on this host")
        self._prefault = prefault
        self.on_stop: OnStop = on_stop
        self._draining = False
        self._watch_thread: threading.Thread | None = None
        self._worker: _WarmWorker | None = None
        self._worker_deaths: list[float] = []  # monotonic times, within the window
        self._on_start: StartCallback | None = None
        if warm:
            self._worker = self._new_worker()

    def _new_worker(self) -> _WarmWorker | None:
        try:
            return _WarmWorker(
                self.work_root / "warm-worker.log",
                self._on_worker,
                prefault=self._prefault,
                kill_on_stop=self.on_stop == "cancel",
                task_user=self.task_user,
                home=self.work_root,
                python=self.python,
            )
        except OSError as exc:
            log.warning("no warm worker (%s); tasks start new interpreters", exc)
            return None

    @property
    def warm(self) -> bool:
        worker = self._worker
        return worker is not None and worker.alive

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.proc.pid if worker is not None and worker.alive else None

    def launcher_pid(self, task_id: str) -> int | None:
        """The pid (and process group) of a running task's launcher, once started."""
        with self._lock:
            task = self._running.get(task_id)
            return task.pid if task is not None else None

    # -- Executor (and QueueingExecutor)

    def free_slots(self) -> int:
        with self._lock:
            if self._closed or self._draining:
                return 0
            return max(0, self.max_parallel - len(self._running) - len(self._queue))

    def watch_starts(self, callback: StartCallback) -> None:
        self._on_start = callback

    def submit(self, spec: LaunchSpec, on_exit: ExitCallback) -> None:
        self._warn_image(spec)
        task = _Task(spec, on_exit, self.work_root / spec.run_id / spec.task_id)
        with self._lock:
            closed = self._closed
            if closed:
                start = False
            elif spec.task_id in self._running or spec.task_id in self._queue:
                raise ValueError(f"task {spec.task_id} is already submitted")
            else:
                start = not self._draining and len(self._running) < self.max_parallel
                if start:
                    self._running[spec.task_id] = task
                else:
                    self._queue[spec.task_id] = task
        if closed:
            self._notify(task, TaskExit(spec.task_id, None, "the executor is shut down"))
        elif start:
            self._start(task)
        else:
            # Queued: an earlier attempt's directory would read as a started attempt to a
            # server restarted before this one starts (see adopt).
            shutil.rmtree(task.work_dir, ignore_errors=True)

    def cancel(self, task_id: str) -> None:
        pid: int | None = None
        with self._lock:
            queued = self._queue.pop(task_id, None)
            task = self._running.get(task_id)
            if task is not None:
                task.canceled = True
                pid = task.pid
        if queued is not None:
            self._notify(queued, TaskExit(task_id, None, "canceled before it started"))
        elif task is not None and task.adopted is not None:
            if pidfile.is_running(task.adopted):
                _kill_group(task.adopted.pid)
        elif task is not None and pid is not None:
            _kill_group(pid)
        # A running task without a pid yet is killed as soon as its pid arrives.

    def drain(self, timeout: float | None = None) -> bool:
        """Start nothing more and wait for the running tasks to end (their reports need the
        server to still answer, so call this before it stops serving). True if none is left.
        What did not start stays queued for the next server (see :meth:`never_started`)."""
        with self._lock:
            self._draining = True
            return self._all_done.wait_for(lambda: not self._running, timeout=timeout)

    def shutdown(self) -> None:
        """Release the executor. With ``on_stop="cancel"`` every task is killed and its
        ``on_exit`` fires; otherwise tasks keep running (and queued ones never start here):
        the next server adopts or launches them."""
        with self._lock:
            self._closed = True
            queued = list(self._queue.values())
            self._queue.clear()
            running = list(self._running.values())
        if self.on_stop != "cancel":
            if self._worker is not None:
                self._worker.stop()  # the worker exits, leaving its launchers running
            if running or queued:
                log.info(
                    "left %d running task(s) and %d queued for the next server",
                    len(running),
                    len(queued),
                )
            return
        for task in queued:
            self._notify(task, TaskExit(task.spec.task_id, None, "the executor shut down"))
        for task in running:
            self.cancel(task.spec.task_id)
        with self._lock:  # every on_exit has fired when shutdown returns
            if not self._all_done.wait_for(lambda: not self._running, timeout=60):
                log.error("tasks still running after shutdown: %s", sorted(self._running))
        if self._worker is not None:
            self._worker.stop()

    def adopt(self, running: dict[str, str], on_exit: ExitCallback) -> set[str]:
        """After a restart: watch the launchers an earlier server process started that still
        run (found through ``kfpd.executors.pidfile``); they take executor slots."""
        return {
            task_id
            for task_id, run_id in running.items()
            if self._adopt_one(run_id, task_id, on_exit)
        }

    def never_started(self, running: dict[str, str]) -> set[str]:
        """Tasks an earlier server recorded as launched that never started here (queued for
        a slot, or handed over while it stopped): no launch spec in their directory."""
        return {
            task_id
            for task_id, run_id in running.items()
            if not (self.work_root / run_id / task_id / SPEC_FILE).exists()
        }

    def _adopt_one(self, run_id: str, task_id: str, on_exit: ExitCallback) -> bool:
        work_dir = self.work_root / run_id / task_id
        if not (work_dir / SPEC_FILE).exists():
            return False
        identity = pidfile.read(work_dir)
        if identity is None or not pidfile.is_running(identity):
            return False  # it started and is gone: a failed attempt
        # Only its ids are known (and needed) for a task this process did not launch.
        ids: dict[str, Any] = {"task_id": task_id, "run_id": run_id}
        spec = LaunchSpec.model_construct(**ids)
        task = _Task(spec, on_exit, work_dir, pid=identity.pid, adopted=identity)
        with self._lock:
            if task_id in self._running:
                return True
            self._running[task_id] = task
            if self._watch_thread is None:
                self._watch_thread = threading.Thread(
                    target=self._watch_adopted, name="kfpd-adopted", daemon=True
                )
                self._watch_thread.start()
        log.info("adopted task %s (launcher pid %d)", task_id, identity.pid)
        return True

    def _watch_adopted(self) -> None:
        """Poll the adopted launchers (they are not our children: no wait(), no exit code)."""
        while True:
            with self._lock:
                adopted = [t for t in self._running.values() if t.adopted is not None]
                if not adopted:
                    self._watch_thread = None
                    return
            for task in adopted:
                if task.adopted is not None and not pidfile.is_running(task.adopted):
                    self._finished(
                        task.spec.task_id,
                        None,
                        "canceled"
                        if task.canceled
                        else "its launcher (adopted after a server restart) ended without "
                        "reporting a result",
                    )
            time.sleep(ADOPTED_POLL_S)

    # -- starting and ending tasks

    def _start(self, task: _Task) -> None:
        on_start = self._on_start
        if on_start is not None:
            try:
                on_start(task.spec.task_id)
            except Exception:
                log.exception("start callback for task %s failed", task.spec.task_id)
        try:
            spec_path = self._prepare(task)
        except OSError as exc:
            self._finished(task.spec.task_id, None, f"could not prepare the task directory: {exc}")
            return
        env = {EXECUTOR_ENV: "local"}
        if self.venv_root is not None:
            env["KFPD_VENV_ROOT"] = str(self.venv_root)
        if self.task_user is not None:
            env.update(self.task_user.environ(task.work_dir))
        worker = self._worker
        if worker is not None and worker.alive:
            task.warm = True
            request = {
                "task_id": task.spec.task_id,
                "spec": str(spec_path),
                "work_dir": str(task.work_dir),
                "log": str(task.work_dir / LAUNCHER_LOG),
                "env": env,
            }
            if worker.send(request):
                return
            task.warm = False  # the worker just died: start this one cold
        self._start_cold(task, spec_path, env)

    def _prepare(self, task: _Task) -> Path:
        shutil.rmtree(task.work_dir, ignore_errors=True)
        task.work_dir.mkdir(parents=True)
        spec = task.spec
        if not spec.work_dir:
            spec = spec.model_copy(update={"work_dir": str(task.work_dir)})
        path = task.work_dir / SPEC_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(spec.model_dump_json())
        if self.task_user is not None:
            # Its run's directory, its own and its spec (its run's token only) are the task's.
            for owned in (task.work_dir.parent, task.work_dir, path):
                self.task_user.give(owned)
        return path

    def _start_cold(self, task: _Task, spec_path: Path, env: dict[str, str]) -> None:
        try:
            with (task.work_dir / LAUNCHER_LOG).open("ab") as out:
                proc = subprocess.Popen(
                    [self.python, "-m", "kfpd.launcher", "--spec", str(spec_path)],
                    cwd=task.work_dir,
                    env={**_task_environ(), **env},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **(self.task_user.popen_args() if self.task_user else {}),
                )
        except OSError as exc:
            self._finished(task.spec.task_id, None, f"could not start the launcher: {exc}")
            return
        pidfile.write(task.work_dir, proc.pid)
        with self._lock:
            task.proc, task.pid = proc, proc.pid
            canceled = task.canceled
        if canceled:
            _kill_group(proc.pid)
        threading.Thread(
            target=self._wait_cold, args=(task, proc), name=f"kfpd-task-{proc.pid}", daemon=True
        ).start()

    def _wait_cold(self, task: _Task, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        self._finished(task.spec.task_id, code, None)

    def _on_worker(self, event: dict[str, Any]) -> None:
        kind, task_id = event.get("event"), event.get("task_id", "")
        if kind == "started":
            with self._lock:
                task = self._running.get(task_id)
                if task is not None:
                    task.pid = int(event["pid"])
                kill = task is not None and task.canceled
            if kill and task is not None and task.pid is not None:
                _kill_group(task.pid)
        elif kind == "exited":
            self._finished(task_id, int(event["returncode"]), None)
        elif kind == "failed":
            self._finished(task_id, None, f"could not start the launcher: {event.get('error')}")
        elif kind == "worker-died":
            with self._lock:
                lost = [t for t in self._running.values() if t.warm]
                closed = self._closed
            if closed:
                return  # told to stop: it left its launchers running (or killed them)
            self._replace_worker()
            for task in lost:
                if task.pid is not None:
                    _kill_group(task.pid)
                self._finished(task.spec.task_id, None, "the local executor's warm worker died")

    def _replace_worker(self) -> None:
        """Start a new warm worker after one died, unless they keep dying."""
        now = time.monotonic()
        deaths = [t for t in self._worker_deaths if now - t < WORKER_DEATH_WINDOW_S] + [now]
        self._worker_deaths = deaths
        if len(deaths) >= WORKER_DEATHS_TO_GIVE_UP:
            log.warning(
                "the warm worker died %d times within %.0f s; tasks start new interpreters",
                len(deaths),
                WORKER_DEATH_WINDOW_S,
            )
            return
        worker = self._new_worker()
        with self._lock:
            closed = self._closed
            if not closed:
                self._worker = worker
        if worker is None:
            return
        if closed:  # shut down meanwhile: nobody else would stop it
            worker.stop()
        else:
            log.warning("the warm worker died; started a new one (pid %d)", worker.proc.pid)

    def _finished(self, task_id: str, returncode: int | None, reason: str | None) -> None:
        with self._lock:
            task = self._running.pop(task_id, None)
        if task is None:
            return  # already reported (a worker death races with an exit event)
        if task.pid is not None and task.adopted is None:
            _kill_group(task.pid)  # whatever the launcher left behind
        if returncode != 0 and reason is None:
            reason = self._reason(task, returncode)
        # This attempt is over: a restarted server must not take its directory for a task
        # still to adopt (see adopt); the logs stay for a failed attempt.
        for name in (SPEC_FILE, pidfile.PID_FILE):
            with contextlib.suppress(OSError):
                (task.work_dir / name).unlink()
        self._notify(task, TaskExit(task_id, returncode, reason))
        if returncode == 0 and not self.keep_work_dirs:
            shutil.rmtree(task.work_dir, ignore_errors=True)
        self._start_next()
        with self._lock:
            if not self._running:
                self._all_done.notify_all()

    def _reason(self, task: _Task, returncode: int | None) -> str:
        if task.canceled:
            return "canceled: the server stopped (on_stop=cancel)" if self._closed else "canceled"
        what = "the launcher " + (describe_exit(returncode) if returncode is not None else "ended")
        tail = _tail(task.work_dir / LAUNCHER_LOG)
        return f"{what}: {tail}" if tail else what

    def _start_next(self) -> None:
        with self._lock:
            if (
                self._closed
                or self._draining
                or not self._queue
                or len(self._running) >= self.max_parallel
            ):
                return
            _, task = self._queue.popitem(last=False)
            self._running[task.spec.task_id] = task
        self._start(task)

    def _notify(self, task: _Task, exit_: TaskExit) -> None:
        deliver_exit(task.on_exit, exit_)


class _WarmWorker:
    """The pre-forked worker process and the thread reading its events."""

    def __init__(
        self,
        log_path: Path,
        on_event: Any,
        *,
        prefault: bool,
        kill_on_stop: bool,
        task_user: TaskUser | None = None,
        home: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self._on_event = on_event
        self._write_lock = threading.Lock()
        # With a task user the worker (and every launcher it forks) runs as that user.
        as_user = task_user.popen_args() if task_user else {}
        user_env = task_user.environ(home) if task_user and home else {}
        with log_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [python, "-m", "kfpd.executors.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env={
                    **_task_environ(),
                    **user_env,
                    "_KFP_RUNTIME": "true",
                    "KFPD_WORKER_PREFAULT": "1" if prefault else "0",
                    "KFPD_WORKER_KILL_ON_STOP": "1" if kill_on_stop else "0",
                },
                start_new_session=True,
                **as_user,
            )
        self.alive = True
        self._reader = threading.Thread(target=self._read, name="kfpd-warm-worker", daemon=True)
        self._reader.start()

    def send(self, request: dict[str, Any]) -> bool:
        stdin: IO[bytes] | None = self.proc.stdin
        try:
            with self._write_lock:
                assert stdin is not None
                stdin.write((json.dumps(request) + "\n").encode())
                stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._on_event(event)
        self.alive = False
        self.proc.wait()
        self._on_event({"event": "worker-died"})

    def stop(self) -> None:
        with self._write_lock:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
        self._reader.join(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: Path, max_chars: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_chars))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
