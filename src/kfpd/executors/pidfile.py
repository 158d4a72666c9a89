"""Which process runs a task, written next to the task so a restarted server can find it.

A task's launcher outlives the server (it keeps retrying its report until a server answers).
The server that starts next must tell a launcher that is still running (adopt it: its report
will come) from one that is gone (the attempt failed). A pid alone is not enough, pids are
reused: the file also holds the process's start time (``/proc/<pid>/stat``, clock ticks since
boot) and the boot id, so a different process with the same pid, or a reboot, reads as gone.

Only the standard library: the warm worker imports this before it forks launchers.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PID_FILE = "launcher.pid"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat
    boot_id: str


def boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def identify(pid: int) -> ProcessIdentity | None:
    """The identity of a live process, or None when there is none with that pid."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return ProcessIdentity(pid, int(fields[19]), boot_id())


def is_running(identity: ProcessIdentity) -> bool:
    """The very process that was recorded still runs (not a zombie, not a reused pid)."""
    fields = _stat_fields(identity.pid)
    if fields is None or len(fields) < 20:
        return False
    state, start = fields[0], int(fields[19])
    return (
        state not in ("Z", "X") and start == identity.start_ticks and boot_id() == identity.boot_id
    )


def write(work_dir: Path, pid: int) -> None:
    """Record the launcher ``pid`` of the task in ``work_dir`` (atomically: a reader never sees
    half a file). Silently does nothing if the process is already gone."""
    identity = identify(pid)
    if identity is None:
        return
    body = json.dumps(
        {"pid": pid, "start_ticks": identity.start_ticks, "boot_id": identity.boot_id}
    )
    temporary = work_dir / f".{PID_FILE}.tmp"
    with contextlib.suppress(OSError):
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(temporary, work_dir / PID_FILE)


def read(work_dir: Path) -> ProcessIdentity | None:
    try:
        body = json.loads((work_dir / PID_FILE).read_text())
        return ProcessIdentity(int(body["pid"]), int(body["start_ticks"]), str(body["boot_id"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
