"""A real two-node Ray cluster on this machine, as separate processes started by ``ray start``:
a head with no CPUs (nothing runs there) and one worker node with 2 CPUs. Everything it starts
is found again by its own temp directory (and the processes those started), so stopping it
never touches another Ray on the machine (no ``ray stop``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cmdlines() -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            found[int(entry)] = raw.replace(b"\0", b" ").decode("utf-8", "replace")
    return found


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _with_descendants(roots: set[int]) -> set[int]:
    parents = _parents()
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class RayCluster:
    def __init__(self) -> None:
        self.ray = str(Path(sys.executable).with_name("ray"))
        # Short: Ray puts unix sockets under it (their paths are limited to ~107 bytes).
        self.temp_dir = tempfile.mkdtemp(prefix="kr-", dir="/tmp")
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._worker_pids: set[int] = set()

    def _ours(self) -> set[int]:
        return {pid for pid, cmd in _cmdlines().items() if self.temp_dir in cmd}

    def _ray_start(self, *args: str, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        subprocess.run(
            [
                self.ray,
                "start",
                "--node-ip-address",
                "127.0.0.1",
                "--temp-dir",
                self.temp_dir,
                "--disable-usage-stats",
                *args,
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        self.start_head()
        self.start_worker()

    def start_head(self) -> None:
        self._ray_start(
            "--head",
            "--port",
            str(self.port),
            "--num-cpus",
            "0",
            "--include-dashboard=false",
            "--dashboard-port",
            str(_free_port()),
        )

    def start_worker(self, env: dict[str, str] | None = None) -> None:
        """The worker node; ``env`` for its processes (e.g. ``RAY_memory_usage_threshold``)."""
        before = self._ours()
        self._ray_start("--address", self.address, "--num-cpus", "2", env=env)
        self._worker_pids = self._ours() - before

    def kill_worker_node(self) -> None:
        """Lose the worker node at once: its raylet and everything under it, SIGKILL."""
        _kill(_with_descendants(self._worker_pids))

    def stop(self) -> None:
        _kill(_with_descendants(self._ours() | self._worker_pids))
        time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def memory_threshold_just_above_now(margin_bytes: int) -> float:
    """A ``RAY_memory_usage_threshold`` ``margin_bytes`` above this node's memory use now, by
    the larger of Ray's own measure (the cgroup's, when there is one) and /proc/meminfo's."""
    from ray._private import utils

    meminfo = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
    }
    cgroup = utils.get_cgroup_mem_stats()
    used, total = cgroup or (utils.get_used_memory(), utils.get_system_memory())
    used = max(used, meminfo["MemTotal"] - meminfo["MemAvailable"])
    return min(0.95, (used + margin_bytes) / min(total, meminfo["MemTotal"]))
