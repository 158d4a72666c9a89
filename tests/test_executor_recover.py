"""LocalExecutor.adopt / never_started: after a restart, tell a launcher still running (adopt and watch it)
from one that is gone (a failed attempt) and from one that never started (launch it)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

from kfpd.executors import pidfile
from kfpd.executors.base import TaskExit
from kfpd.executors.local import SPEC_FILE, LocalExecutor


class _Exits:
    def __init__(self) -> None:
        self.seen: list[TaskExit] = []
        self.event = threading.Event()

    def __call__(self, exit_: TaskExit) -> None:
        self.seen.append(exit_)
        self.event.set()


def _started_dir(root: Path, run_id: str, task_id: str) -> Path:
    work = root / run_id / task_id
    work.mkdir(parents=True)
    (work / SPEC_FILE).write_text("{}")
    return work


def test_recover_tells_alive_gone_and_never_started(tmp_path: Path) -> None:
    root = tmp_path / "work"
    executor = LocalExecutor(work_root=root, warm=False)
    exits = _Exits()
    try:
        assert executor.never_started({"queued": "r"}) == {"queued"}
        assert executor.adopt({"queued": "r"}, exits) == set()

        gone = _started_dir(root, "r", "gone")
        dead = subprocess.Popen(["true"])
        dead.wait()
        recorded = {"pid": dead.pid, "start_ticks": 1, "boot_id": "x"}
        (gone / pidfile.PID_FILE).write_text(json.dumps(recorded))
        assert executor.adopt({"gone": "r"}, exits) == set()
        assert executor.never_started({"gone": "r"}) == set(), "a failed attempt instead"

        alive = _started_dir(root, "r", "alive")
        sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
        pidfile.write(alive, sleeper.pid)
        assert executor.adopt({"alive": "r", "gone": "r"}, exits) == {"alive"}
        assert executor.launcher_pid("alive") == sleeper.pid
        time.sleep(0.5)
        assert not exits.seen, "watched, not ended"

        executor.cancel("alive")  # kills the adopted launcher's group
        assert exits.event.wait(5)
        assert sleeper.wait(5) == -signal.SIGKILL
        (exit_,) = exits.seen
        assert exit_.task_id == "alive" and exit_.returncode is None
        assert exit_.reason == "canceled"
        assert not (alive / SPEC_FILE).exists(), "a later restart does not adopt it again"
    finally:
        executor.shutdown()


def test_an_adopted_launcher_that_dies_is_reported_within_a_second(tmp_path: Path) -> None:
    root = tmp_path / "work"
    executor = LocalExecutor(work_root=root, warm=False)
    exits = _Exits()
    try:
        work = _started_dir(root, "r", "t")
        sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
        pidfile.write(work, sleeper.pid)
        assert executor.adopt({"t": "r"}, exits) == {"t"}
        began = time.monotonic()
        sleeper.kill()
        sleeper.wait()
        assert exits.event.wait(5)
        assert time.monotonic() - began < 1.0
        assert exits.seen[0].reason is not None
        assert "without reporting" in exits.seen[0].reason
    finally:
        executor.shutdown()


def test_a_reused_pid_is_not_the_recorded_process() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        identity = pidfile.identify(sleeper.pid)
        assert identity is not None and pidfile.is_running(identity)
        other_start = pidfile.ProcessIdentity(
            sleeper.pid, identity.start_ticks + 1, identity.boot_id
        )
        assert not pidfile.is_running(other_start)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not pidfile.is_running(identity), "ended (and reaped)"
