"""Every runnable pipeline of ../shared/kfp-corpus, end to end: the real kfp.Client submits
the compiled IR to a kfpd server with its local executor, waits for the run, and the run's
graph is checked (states, types, parents, iteration indexes, link IO types, outputs).

One server on SQLite serves the whole module (the store itself is tested on all three
databases elsewhere, and tests/test_e2e_local.py runs real pipelines on each).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kfpd.api.app import create_app
from kfpd.config import Settings
from tests.conftest import CORPUS, _free_port, _serve, require_corpus

require_corpus()

# Values for pipelines whose parameters have no defaults.
ARGUMENTS: dict[str, dict[str, Any]] = {
    "add_numbers.yaml": {"a": 3, "b": 7},
    "concat_message.yaml": {"message1": "hello ", "message2": "world"},
    "dict_input.yaml": {"struct": {"a": 1, "b": [2, 3]}},
    "lightweight_python_functions_pipeline.yaml": {"message": "hi"},
    "lightweight_python_functions_with_outputs.yaml": {
        "first_message": "a",
        "first_number": 1,
        "second_message": "b",
        "second_number": 2,
    },
}
# Local stand-ins for the Kubernetes secrets pipeline_with_secret_as_env reads.
SECRETS = {
    "test-secret-1": {"username": "user1"},
    "test-secret-2": {"password": "psw1"},
    "test-secret-3": {"password": "psw2"},
}
# Pipelines that fail by design here, with the text their failing task must show.
EXPECTED_FAILURES = {
    # Asserts MLMD's legacy state name COMPLETE; kfpd sends SUCCEEDED/FAILED/CANCELLED.
    "critical/pipeline_with_input_status_state.yaml": ("echo-state", "COMPLETE"),
    # Reads a modelcar from an OCI registry: no OCI storage on a local host.
    "critical/modelcar.yaml": ("get-model-files-list", "oci://"),
}
# Not run, and why.
NOT_RUN = {
    "critical/pipeline_with_volume_long_name.yaml": "createpvc/deletepvc need Kubernetes",
    "critical/pipeline_with_artifact_upload_download.yaml": "downloads from the HF hub",
    "essential/iris_pipeline_compiled.yaml": "installs pandas + scikit-learn (slow)",
    "essential/component_with_pip_index_urls.yaml": "pins a private index URL",
}


def _manifest() -> list[tuple[str, str]]:
    with (CORPUS / "MANIFEST.tsv").open() as fh:
        rows = list(csv.reader(fh, delimiter="\t"))[1:]
    return [(r[0], r[1]) for r in rows]


def _runnable() -> list[str]:
    files = []
    for name, runnable in _manifest():
        if name in NOT_RUN:
            continue
        if runnable.startswith("needs-other-images"):
            needs = _commands(CORPUS / name)
            if any(shutil.which(c) is None for c in needs):
                continue
        files.append(name)
    return files


def _commands(path: Path) -> set[str]:
    import yaml

    spec = next(yaml.safe_load_all(path.read_text()))
    found = set()
    for executor in spec["deploymentSpec"]["executors"].values():
        command = (executor.get("container") or {}).get("command") or []
        if command:
            found.add(command[0])
    return found


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("corpus")
    (data_dir / "secrets").mkdir()
    for name, values in SECRETS.items():
        (data_dir / "secrets" / f"{name}.json").write_text(json.dumps(values))
    port = _free_port()
    app = create_app(Settings(data_dir=data_dir, port=port))
    server, thread = _serve(app, port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def run_corpus_file(url: str, name: str) -> dict[str, Any]:
    import kfp

    client = kfp.Client(host=url)
    created = client.create_run_from_pipeline_package(
        str(CORPUS / name), arguments=ARGUMENTS.get(name.split("/")[-1], {})
    )
    client.wait_for_run_completion(created.run_id, timeout=300, sleep_duration=0.2)
    response = httpx.get(f"{url}/apis/v2beta1/runs/{created.run_id}", params={"view": "FULL"})
    response.raise_for_status()
    run: dict[str, Any] = response.json()
    return run


def check_graph(run: dict[str, Any]) -> None:
    """Structural invariants of any finished run graph."""
    tasks = run["tasks"]
    by_id = {t["task_id"]: t for t in tasks}
    roots = [t for t in tasks if t["type"] == "ROOT"]
    assert len(roots) == 1 and roots[0].get("parent_task_id") is None
    for task in tasks:
        if task["type"] != "ROOT":
            assert task["parent_task_id"] in by_id, task["name"]
        assert task["state"] in {"SUCCEEDED", "SKIPPED", "FAILED", "CACHED"}, task
        parent = by_id.get(task.get("parent_task_id") or "")
        if task["type"] == "LOOP_ITERATION":
            assert parent is not None and parent["type"] == "LOOP"
            assert "iteration_index" in task["type_attributes"]
        if task["type"] == "LOOP":
            count = int(task["type_attributes"]["iteration_count"])
            iterations = [t for t in tasks if t.get("parent_task_id") == task["task_id"]]
            assert sorted(int(t["type_attributes"]["iteration_index"]) for t in iterations) == list(
                range(count)
            )
        for io in (task.get("outputs") or {}).get("artifacts", []):
            assert io["type"] in {"OUTPUT", "ITERATOR_OUTPUT", "ONE_OF_OUTPUT"}, io
        for io in (task.get("inputs") or {}).get("artifacts", []):
            assert io["type"] in {
                "COMPONENT_INPUT",
                "TASK_OUTPUT_INPUT",
                "COLLECTED_INPUTS",
                "ITERATOR_INPUT",
                "COMPONENT_DEFAULT_INPUT",
            }, io
        if task["type"] == "RUNTIME" and task["state"] == "SUCCEEDED":
            keys = {io["artifact_key"] for io in (task.get("outputs") or {}).get("artifacts", [])}
            assert "executor-logs" in keys, task["name"]


def outputs(task: dict[str, Any]) -> dict[str, Any]:
    return {
        p["parameter_key"]: p.get("value")
        for p in (task.get("outputs") or {}).get("parameters", [])
    }


def named(run: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [t for t in run["tasks"] if t["name"] == name]


@pytest.mark.parametrize("name", _runnable())
def test_corpus_pipeline_runs(corpus_server: str, name: str) -> None:
    run = run_corpus_file(corpus_server, name)
    check_graph(run)
    if name in EXPECTED_FAILURES:
        task_name, text = EXPECTED_FAILURES[name]
        assert run["state"] == "FAILED"
        failed = named(run, task_name)
        assert failed and failed[0]["state"] == "FAILED"
        assert text in failed[0]["status_metadata"]["message"]
        return
    failures = [
        (t["name"], (t.get("status_metadata") or {}).get("message", "")[-500:])
        for t in run["tasks"]
        if t["state"] == "FAILED"
    ]
    assert run["state"] == "SUCCEEDED", failures or run.get("error")


def test_add_numbers_gives_ten(corpus_server: str) -> None:
    run = run_corpus_file(corpus_server, "critical/add_numbers.yaml")
    assert run["state"] == "SUCCEEDED"
    assert outputs(named(run, "add-numbers")[0]) == {"Output": 10}
    root = named(run, "ROOT")[0]
    assert {p["parameter_key"]: p["type"] for p in root["inputs"]["parameters"]} == {
        "a": "RUNTIME_VALUE_INPUT",
        "b": "RUNTIME_VALUE_INPUT",
    }


def test_collected_parameters_stay_integers(corpus_server: str) -> None:
    run = run_corpus_file(corpus_server, "critical/collected_parameters.yaml")
    assert run["state"] == "SUCCEEDED"
    collected = [
        p
        for t in run["tasks"]
        for p in (t.get("inputs") or {}).get("parameters", [])
        if p["type"] == "COLLECTED_INPUTS"
    ]
    assert collected, "a consumer of the loop received collected values"
    for p in collected:
        assert isinstance(p["value"], list) and p["value"]
    loops = [t for t in run["tasks"] if t["type"] == "LOOP"]
    assert loops and all(
        any(p["type"] == "ITERATOR_OUTPUT" for p in (t.get("outputs") or {}).get("parameters", []))
        for t in loops
    )


def test_oneof_artifacts_are_one_of_outputs(corpus_server: str) -> None:
    run = run_corpus_file(corpus_server, "critical/if_else_with_oneof_artifacts.yaml")
    assert run["state"] == "SUCCEEDED"
    types = {
        io["type"]
        for t in run["tasks"]
        if t["type"] in {"CONDITION_BRANCH", "DAG"}
        for io in (t.get("outputs") or {}).get("artifacts", [])
    }
    assert "ONE_OF_OUTPUT" in types


def test_metrics_are_typed_artifacts(corpus_server: str) -> None:
    run = run_corpus_file(corpus_server, "essential/pipeline_with_metrics_outputs.yaml")
    assert run["state"] == "SUCCEEDED"
    metric_types = {
        a["type"]
        for t in run["tasks"]
        for io in (t.get("outputs") or {}).get("artifacts", [])
        for a in io["artifacts"]
        if io["artifact_key"] != "executor-logs"
    }
    assert "Metric" in metric_types


def test_second_run_of_a_cacheable_pipeline_hits_the_cache(corpus_server: str) -> None:
    first = run_corpus_file(corpus_server, "critical/parameter_cache.yaml")
    second = run_corpus_file(corpus_server, "critical/parameter_cache.yaml")
    assert first["state"] == second["state"] == "SUCCEEDED"
    cached = [t for t in second["tasks"] if t["state"] == "CACHED" and t["type"] == "RUNTIME"]
    assert cached, [(t["name"], t["state"]) for t in second["tasks"]]
    for task in cached:
        twin = [
            t
            for t in first["tasks"]
            if t["name"] == task["name"] and t.get("cache_fingerprint") == task["cache_fingerprint"]
        ]
        assert twin and outputs(twin[0]) == outputs(task)
