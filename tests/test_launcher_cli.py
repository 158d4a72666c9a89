"""``python -m kfpd.launcher``: the spec from stdin or a file, and its exit codes."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kfpd.domain.tokens import issue_run_token
from tests.launching import Server, compile_component
from tests.pipelines import launch_components as comps


def _launch(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfpd.launcher", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unreadable_spec_exits_2(tmp_path: Path) -> None:
    result = _launch("{not json")
    assert result.returncode == 2
    assert "cannot read the launch spec" in result.stderr
    result = _launch("", "--spec", str(tmp_path / "absent.json"))
    assert result.returncode == 2


def test_spec_on_stdin_and_a_refused_report(live_server: str, tmp_path: Path) -> None:
    server = Server(live_server, tmp_path)
    ir = compile_component(comps.add_one)
    run_id, task_id = server.new_task(ir)
    spec = server.spec(ir, run_id, task_id, tmp_path, params={"x": 1})
    wrong = spec.model_copy(update={"token": issue_run_token(server.secret, "other-run")})
    result = _launch(wrong.model_dump_json())
    assert result.returncode == 3
    assert "refused the report" in result.stderr and "another run" in result.stderr
    assert server.task(run_id, task_id)["state"] == "RUNNING"

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    result = _launch("", "--spec", str(spec_file), "--tee")
    assert result.returncode == 0, result.stderr
    assert "Wrote executor output file" in result.stdout  # --tee copies the task's log
    task = server.task(run_id, task_id)
    assert task["state"] == "SUCCEEDED"
    assert task["outputs"]["parameters"][0]["value"] == 2


class _ReplyDroppingProxy:
    """A loopback HTTP/1.1 proxy that forwards every request to ``upstream`` and every reply
    back, except the first ``:finish`` reply: that connection is closed instead, as when the
    network fails after the server has recorded the report."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropped = 0
        self.finishes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        with client, socket.create_connection(self.upstream) as upstream:
            upstream_reader = upstream.makefile("rb")
            while True:
                request = _read_message(reader)
                if request is None:
                    return
                upstream.sendall(request)
                reply = _read_message(upstream_reader)
                assert reply is not None
                if b":finish " in request.split(b"\r\n", 1)[0]:
                    self.finishes += 1
                    if self.dropped == 0:
                        self.dropped += 1
                        return  # recorded upstream, never answered here
                client.sendall(reply)

    def close(self) -> None:
        self.listener.close()


def _read_message(stream: Any) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length body (what kfpd and the launcher send);
    None when the peer closed the connection first."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + stream.read(length)


def test_a_report_whose_reply_is_lost_is_not_reported_as_refused(
    live_server: str, tmp_path: Path
) -> None:
    """The first :finish is recorded but its reply never arrives: the launcher sends it again,
    the server answers 409 (a task ends once), and the launcher knows its result is in."""
    server = Server(live_server, tmp_path)
    ir = compile_component(comps.add_one)
    run_id, task_id = server.new_task(ir)
    proxy = _ReplyDroppingProxy(live_server)
    try:
        spec = server.spec(ir, run_id, task_id, tmp_path, params={"x": 1})
        result = _launch(spec.model_copy(update={"server_url": proxy.url}).model_dump_json())
    finally:
        proxy.close()
    assert (proxy.dropped, proxy.finishes) == (1, 2)
    assert result.returncode == 0, result.stderr
    assert "an earlier report was recorded but its reply was lost" in result.stderr
    task = server.task(run_id, task_id)
    assert task["state"] == "SUCCEEDED"
    assert task["outputs"]["parameters"][0]["value"] == 2
