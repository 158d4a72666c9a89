"""The data directory is this user's only: 0700 directories, 0600 files (database, logs,
artifacts, token key), and server credentials stay out of task environments."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.helpers import compiled, ok

API = "/apis/v2beta1"


def _start(data_dir: Path, db_url: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "KFPD_DB_URL": db_url}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kfpd.cli.main", "server", "--port", str(port)),
            *("--data-dir", str(data_dir), "--log-level", "warning"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir.parent / "server.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
        assert process.poll() is None, (data_dir.parent / "server.log").read_text()
    raise AssertionError("server did not start")


def test_data_dir_is_private_and_tasks_get_no_server_credentials(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # an existing, too open directory is tightened
    data_dir.chmod(0o755)
    db_url = f"sqlite:///{data_dir / 'kfpd.sqlite'}"
    process, url = _start(data_dir, db_url)
    try:
        package = tmp_path / "env.yaml"
        package.write_text(yaml.safe_dump(compiled("cross_site:env_pipeline")))
        with package.open("rb") as fh:
            pipeline = ok(httpx.post(f"{url}{API}/pipelines/upload", files={"uploadfile": fh}))
        run = ok(
            httpx.post(
                f"{url}{API}/runs",
                json={
                    "display_name": "env",
                    "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]},
                },
            )
        )
        deadline = time.monotonic() + 90
        state = ""
        while time.monotonic() < deadline and state not in {"SUCCEEDED", "FAILED"}:
            time.sleep(0.3)
            state = ok(httpx.get(f"{url}{API}/runs/{run['run_id']}"))["state"]
        assert state == "SUCCEEDED"
    finally:
        process.terminate()
        process.wait(timeout=30)
    seen = {"dirs": 0, "files": 0}
    too_open = []
    for root, dirs, files in os.walk(data_dir):
        for name, kind in [(d, "dirs") for d in dirs] + [(f, "files") for f in files]:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            seen[kind] += 1
            if mode & 0o077:
                too_open.append(f"{oct(mode & 0o777)} {path.relative_to(data_dir)}")
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert not too_open, too_open
    names = {p.name for p in data_dir.rglob("*")}
    assert {"kfpd.sqlite", "run-token.key", "artifacts", "logs"} <= names, sorted(names)
    assert seen["files"] > 5
    dumps = [p for p in (data_dir / "artifacts").rglob("*") if p.is_file() and p.name == "out"]
    assert dumps, "the task wrote its environment"
    environment = dumps[0].read_text()
    assert "PATH=" in environment and db_url not in environment and "KFPD_DB_URL" not in environment
