"""Start a throwaway ``kfpd server`` subprocess for benchmarks (free port, its log in the data
dir, a clear error with the log's tail when it does not come up)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

KFPD = Path(sys.executable).with_name("kfpd")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def peak_rss_mib(self) -> float:
        """The server process's peak resident set (VmHWM), in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def kfpd_server(
    *extra: str,
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
    db_url: str | None = None,
    timeout_s: float = 120,
    command: list[str] | None = None,
) -> Iterator[Server]:
    """``kfpd server`` with ``extra`` options; a temporary data dir unless ``data_dir``.
    ``command`` replaces ``kfpd`` (e.g. ``[python, bench/noop_server.py]``)."""
    with ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kfpd-bench-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [
            *(command or [str(KFPD)]),
            "server",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ]
        cmd += ["--log-level", "warning", *extra]  # warning: no access-log line per request
        if db_url:
            cmd += ["--db-url", db_url]
        logfile = data_dir / "server.log"
        with logfile.open("wb") as out:
            process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = logfile.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"kfpd server did not start:\n{tail}")
                time.sleep(0.1)
            yield Server(url, process, data_dir)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
