"""Hostile pipeline input (spec/limits.py): bombs refused fast and cheaply, recursive or too
deeply nested pipelines refused with a 400, and parsing done before a session opens."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kfpd.db.engine import Database
from kfpd.spec import limits
from tests import bombs
from tests.helpers import JSON, compiled, ok

API = "/apis/v2beta1"


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """``kfpd server`` as a subprocess (its RSS is its own), SQLite, no orchestration."""
    data_dir = tmp_path_factory.mktemp("bombs")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "kfpd.cli.main", "server", "--port", str(port)),
                *("--data-dir", str(data_dir), "--no-orchestrate", "--log-level", "warning"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield url, process.pid, log
    finally:
        process.terminate()
        process.wait(timeout=20)


BOMBS = {
    "yaml-aliases": ("pipeline.yaml", bombs.alias_bomb(), "YAML aliases"),
    "zip-1GiB-of-zeros": ("p.zip", bombs.zip_of_zeros(), "exceed"),
    # zipfile reads no more than the declared size, then finds the CRC wrong.
    "zip-lying-about-size": ("p.zip", bombs.zip_of_zeros(declared=1024), "Bad CRC-32"),
    "tar.gz-claiming-1GiB": ("p.tar.gz", bombs.tar_gz_claiming(), "exceed"),
    "deep-json": ("p.json", bombs.deep_json(), "nested more than"),
    "deep-yaml": ("p.yaml", bombs.deep_yaml(), "nested more than"),
}


def test_bombs_are_refused_fast_and_cheaply(server_process: tuple[str, int, Path]) -> None:
    url, pid, log = server_process
    with httpx.Client(base_url=url, timeout=30) as client:
        ok(client.get(f"{API}/pipelines"))  # warm: first-request imports are not the bombs'
        baseline = _rss_bytes(pid)
        for label, (filename, content, message) in BOMBS.items():
            started = time.monotonic()
            files = {"uploadfile": (filename, content)}
            answer = client.post(f"{API}/pipelines/upload", files=files, params={"name": label})
            elapsed = time.monotonic() - started
            assert answer.status_code == 400, (label, answer.text)
            assert message in answer.json()["message"], (label, answer.text)
            assert elapsed < 2, (label, elapsed)
        # The same deep document as a run's inline spec (JSON body).
        deep = b'{"display_name": "d", "pipeline_spec": ' + bombs.deep_json() + b"}"
        answer = client.post(f"{API}/runs", content=deep, headers=JSON)
        assert answer.status_code == 400 and "nested" in answer.json()["message"], answer.text
        very_deep = b'{"display_name": "d", "pipeline_spec": ' + bombs.deep_json(100_000) + b"}"
        answer = client.post(f"{API}/runs", content=very_deep, headers=JSON)
        assert answer.status_code == 400 and "nested" in answer.json()["message"], answer.text
        growth = _rss_bytes(pid) - baseline
        assert growth < 100 * 1024 * 1024, f"RSS grew {growth / 2**20:.0f} MiB"
        assert not ok(client.get(f"{API}/pipelines")).get("pipelines")  # nothing stored
    assert len(log.read_bytes()) < 20_000, "no tracebacks logged"


def _nested_pipeline(levels: int) -> dict[str, Any]:
    """A compiled one-task pipeline wrapped in ``levels`` DAG components."""
    spec = copy.deepcopy(compiled("cross_site:touch_pipeline"))
    components = spec["components"]
    inner = "comp-level-0"
    components[inner] = {
        "dag": spec["root"]["dag"],
        "inputDefinitions": spec["root"]["inputDefinitions"],
    }
    for level in range(1, levels):
        name = f"comp-level-{level}"
        components[name] = {
            "dag": {"tasks": {f"l{level}": _task(inner)}},
            "inputDefinitions": spec["root"]["inputDefinitions"],
        }
        inner = name
    spec["root"]["dag"] = {"tasks": {"top": _task(inner)}}
    return spec


def _task(component: str) -> dict[str, Any]:
    return {
        "componentRef": {"name": component},
        "taskInfo": {"name": component},
        "inputs": {"parameters": {"path": {"componentInputParameter": "path"}}},
    }


def _submit(api: TestClient, spec: dict[str, Any]) -> Any:
    body = {
        "display_name": "r",
        "pipeline_spec": spec,
        "runtime_config": {"parameters": {"path": "/dev/null"}},
    }
    return api.post(f"{API}/runs", json=body)


def test_recursive_components_are_refused(api: TestClient) -> None:
    spec = _nested_pipeline(3)
    ok(_submit(api, spec))  # as built: three nested DAGs
    selfish = copy.deepcopy(spec)
    selfish["components"]["comp-level-1"]["dag"]["tasks"]["again"] = _task("comp-level-1")
    refused = _submit(api, selfish)
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "recursive component reference: comp-level-1 -> comp-level-1"
    )
    mutual = copy.deepcopy(spec)
    mutual["components"]["comp-level-1"]["dag"]["tasks"]["back"] = _task("comp-level-2")
    refused = _submit(api, mutual)
    assert refused.status_code == 400
    assert "comp-level-2 -> comp-level-1 -> comp-level-2" in refused.json()["message"]
    # As an upload too, and nothing was stored by the refusals.
    files = {"uploadfile": ("p.json", json.dumps(selfish).encode())}
    assert api.post(f"{API}/pipelines/upload", files=files).status_code == 400
    assert len(ok(api.get(f"{API}/runs"))["runs"]) == 1


def test_pipeline_nesting_is_bounded(api: TestClient) -> None:
    ok(_submit(api, _nested_pipeline(limits.MAX_COMPONENT_NESTING - 1)))
    refused = _submit(api, _nested_pipeline(limits.MAX_COMPONENT_NESTING + 1))
    assert refused.status_code == 400
    assert f"nested more than {limits.MAX_COMPONENT_NESTING} levels" in refused.json()["message"]


def test_nesting_bound_and_aliases_unit() -> None:
    limits.check_nesting({"a": [[{"b": 1}]]}, "x")
    value: Any = 1
    for _ in range(limits.MAX_NESTING + 1):
        value = [value]
    with pytest.raises(Exception, match="nested more than"):
        limits.check_nesting(value, "x")
    assert list(limits.load_yaml_documents("a: [1, {b: 2}]\n---\nc: 3\n")) == [
        {"a": [1, {"b": 2}]},
        {"c": 3},
    ]
    with pytest.raises(Exception, match=r"YAML aliases \(\*x\)"):
        list(limits.load_yaml_documents("a: &x 1\nb: *x\n"))


def test_parsing_happens_before_a_session_opens(
    api: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfpd.services import pipelines as pipelines_svc
    from kfpd.services import runs as runs_svc

    open_sessions = 0
    real_write_session = db.write_session

    @contextmanager
    def counted_write_session(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal open_sessions
        open_sessions += 1
        try:
            with real_write_session(*args, **kwargs) as session:
                yield session
        finally:
            open_sessions -= 1

    validated: list[int] = []

    def spy(real: Any) -> Any:
        def validate(loaded: Any) -> None:
            validated.append(open_sessions)
            real(loaded)

        return validate

    monkeypatch.setattr(db, "write_session", counted_write_session)
    monkeypatch.setattr(pipelines_svc, "validate_spec", spy(pipelines_svc.validate_spec))
    monkeypatch.setattr(runs_svc, "validate_spec", spy(runs_svc.validate_spec))
    spec = compiled("cross_site:touch_pipeline")
    files = {"uploadfile": ("p.json", json.dumps(spec).encode())}
    pipeline = ok(api.post(f"{API}/pipelines/upload", files=files))
    params = {"pipelineid": pipeline["pipeline_id"], "name": "v2"}
    ok(api.post(f"{API}/pipelines/upload_version", files=files, params=params))
    version = {"display_name": "v3", "pipeline_spec": spec}
    ok(api.post(f"{API}/pipelines/{pipeline['pipeline_id']}/versions", json=version))
    ok(_submit(api, spec))
    assert validated == [0, 0, 0, 0]
