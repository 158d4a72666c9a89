"""A task's log is stored once and capped (head and tail kept, the gap stated)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kfpd.launcher.logsink import LogSink
from kfpd.services.logstore import LogStore
from tests.helpers import compiled, ok

API = "/apis/v2beta1"


def test_log_sink_keeps_head_and_tail(tmp_path: Path) -> None:
    sent: list[str] = []
    sink = LogSink(tmp_path / "log", lambda text: sent.append(text) is None, max_bytes=100)
    for i in range(50):
        sink.write(f"line {i:03d}\n".encode())
    streamed = "".join(sent) + sink.close()
    stored = (tmp_path / "log").read_text()
    head, marker, tail = stored.partition("\n[kfpd] 350 bytes of output dropped here")
    assert marker and head.startswith("line 000\n") and len(head.encode()) == 50
    assert tail.endswith("line 049\n") and tail.split(")\n", 1)[1] == stored[-50:]
    assert streamed.startswith("line 000\n") and "half its cap" in streamed
    assert "line 049" not in streamed  # the end is not streamed beyond the head
    uncapped = LogSink(tmp_path / "all", None, max_bytes=0)
    uncapped.write(b"x" * 1000)
    uncapped.close()
    assert (tmp_path / "all").stat().st_size == 1000


def test_log_store_cap_and_adopt(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    store = LogStore(tmp_path / "logs", max_bytes=200, artifact_root=artifacts)
    for _ in range(10):
        store.append("r", "t", "y" * 50)
    kept = store.path("r", "t").read_bytes()
    assert len(kept) == 200 and kept.endswith(b"the launcher keeps its end\n")
    full = artifacts / "r" / "t" / "executor-logs"
    full.parent.mkdir(parents=True)
    full.write_text("the launcher's copy\n")
    outside = tmp_path / "elsewhere.log"
    outside.write_text("not an artifact")
    assert not store.adopt("r", "t", outside.as_uri())
    assert not store.adopt("r", "t", "s3://bucket/r/t/executor-logs")
    assert store.adopt("r", "t", full.as_uri())
    assert store.path("r", "t").is_symlink()
    assert store.read("r", "t", 0, None) == ("the launcher's copy\n", 20)


def test_a_real_task_log_is_stored_once_within_its_cap(
    orchestrated_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFPD_TASK_LOG_MAX_BYTES", "")  # the server sets it; restored after
    cap = 256 * 1024
    url = orchestrated_server(task_log_max_bytes=cap)  # the real local executor
    body = {"display_name": "chatty", "pipeline_spec": compiled("cross_site:chatty_pipeline")}
    run_id = ok(httpx.post(f"{url}{API}/runs", json=body))["run_id"]
    deadline = time.monotonic() + 90
    while (run := ok(httpx.get(f"{url}{API}/runs/{run_id}", params={"view": "FULL"})))[
        "state"
    ] not in {"SUCCEEDED", "FAILED"}:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert run["state"] == "SUCCEEDED"
    task = next(t for t in run["tasks"] if t.get("type") == "RUNTIME")
    logs_url = f"{url}{API}/runs/{run_id}/tasks/{task['task_id']}/logs"
    text = ok(httpx.get(logs_url, params={"limit_bytes": 8 * 1024 * 1024}))["text"]
    assert text.startswith("1\n2\n3\n") and text.endswith("399999\n400000\n")
    assert "bytes of output dropped here" in text
    assert cap <= len(text.encode()) < cap + 1024
    # One copy on disk: the server's log is a link to the executor-logs artifact.
    stored = next((tmp_path / "logs" / run_id).glob("*.log"))
    assert stored.is_symlink()
    assert stored.resolve().is_relative_to((tmp_path / "artifacts").resolve())
    log_bytes = sum(
        p.stat().st_size
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_symlink() and "400000" in p.read_text(errors="replace")
    )
    assert log_bytes < cap + 1024 * 64, log_bytes  # (the launcher's own log file is small)
