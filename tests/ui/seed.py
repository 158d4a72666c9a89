"""Seeding runs for the UI tests through the real HTTP API, the way a launcher records them.

``DemoRun`` records the ui_demo pipeline's graph (exit handler, loop of 3, condition, artifacts
with files under the server's artifact root, scalar and classification metrics) step by step, so
a test can open the run page first and then move tasks from RUNNING to SUCCEEDED.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kfpd.config import Settings
from tests.helpers import RunTokenAuth, compiled

API = "/apis/v2beta1"


def tiny_png(width: int = 40, height: int = 20) -> bytes:
    """A small valid PNG: a red left half and a blue right half."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"".join(b"\xff\x00\x00" if x < width // 2 else b"\x00\x00\xff" for x in range(width))
    raw = b"".join(b"\x00" + row for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Seeder:
    def __init__(self, base_url: str, artifact_root: Path) -> None:
        # The seeder writes tasks and artifacts as launchers do: with their run's token.
        secret = Settings(data_dir=artifact_root.parent).run_token_secret()
        self.http = httpx.Client(base_url=base_url, timeout=30, auth=RunTokenAuth(secret))
        self.artifact_root = artifact_root

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, API + path, **kwargs)
        assert response.status_code == 200, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json()

    def experiment(self, name: str) -> dict[str, Any]:
        return self.call("POST", "/experiments", json={"display_name": name})

    def run(
        self,
        name: str,
        spec: dict[str, Any] | None = None,
        *,
        parameters: dict[str, Any] | None = None,
        experiment_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"display_name": name, "pipeline_spec": spec or compiled("ui_demo")}
        if parameters:
            body["runtime_config"] = {"parameters": parameters}
        if experiment_id:
            body["experiment_id"] = experiment_id
        return self.call("POST", "/runs", json=body)

    def task(self, run_id: str, **fields: Any) -> dict[str, Any]:
        return self.call("POST", f"/runs/{run_id}/tasks", json={"state": "RUNNING", **fields})

    def update(self, run_id: str, task_id: str, **fields: Any) -> dict[str, Any]:
        return self.call("PATCH", f"/runs/{run_id}/tasks/{task_id}", json=fields)

    def finish(
        self, run_id: str, task_id: str, state: str = "SUCCEEDED", **fields: Any
    ) -> dict[str, Any]:
        return self.update(run_id, task_id, state=state, **fields)

    def artifacts(self, run_id: str, task_id: str, *items: dict[str, Any]) -> list[dict[str, Any]]:
        reqs = [{"run_id": run_id, "task_id": task_id, **item} for item in items]
        return self.call("POST", "/artifacts:batchCreate", json={"artifacts": reqs})["artifacts"]

    def link(self, **link: Any) -> dict[str, Any]:
        return self.call("POST", "/artifact_tasks", json={"artifact_task": link})

    def file(self, relative: str, data: bytes | str) -> str:
        """Write a file under the artifact root; return its file:// URI."""
        path = self.artifact_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path.resolve().as_uri()


def _param(
    key: str, value: Any, io_type: str, producer: str, iteration: int | None = None
) -> dict[str, Any]:
    prod: dict[str, Any] = {"task_name": producer}
    if iteration is not None:
        prod["iteration"] = iteration
    return {"parameter_key": key, "value": value, "type": io_type, "producer": prod}


CONFUSION = {
    "annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
    "rows": [{"row": [7, 1]}, {"row": [2, 9]}],
}
ROC = [
    {"confidenceThreshold": 1.0, "recall": 0.0, "falsePositiveRate": 0.0, "precision": 1.0},
    {"confidenceThreshold": 0.5, "recall": 0.8, "falsePositiveRate": 0.2, "precision": 0.85},
    {"confidenceThreshold": 0.0, "recall": 1.0, "falsePositiveRate": 1.0, "precision": 0.5},
]


@dataclass
class DemoRun:
    """The ui_demo run graph, recorded in steps."""

    seeder: Seeder
    name: str = "ui demo"
    parameters: dict[str, Any] = field(default_factory=lambda: {"threshold": 1, "lr": 0.1})
    experiment_id: str | None = None
    accuracy: float = 0.84
    ids: dict[str, str] = field(default_factory=dict)
    artifact_ids: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.ids["run"]

    def start(self) -> DemoRun:
        """Create the run, its ROOT, exit handler and make-data (RUNNING)."""
        s = self.seeder
        run = s.run(self.name, parameters=self.parameters, experiment_id=self.experiment_id)
        rid = run["run_id"]
        self.ids["run"] = rid
        root = s.task(rid, name="ROOT", type="ROOT", scope_path="root")
        self.ids["root"] = root["task_id"]
        handler = s.task(
            rid,
            name="exit-handler-1",
            type="EXIT_HANDLER",
            scope_path="root.exit-handler-1",
            parent_task_id=root["task_id"],
        )
        self.ids["exit-handler-1"] = handler["task_id"]
        make = s.task(
            rid,
            name="make-data",
            type="RUNTIME",
            scope_path="root.exit-handler-1.make-data",
            parent_task_id=handler["task_id"],
            cache_fingerprint="f" * 64,
            pods=[{"name": "make-data-pod", "type": "EXECUTOR"}],
        )
        self.ids["make-data"] = make["task_id"]
        return self

    def finish_make_data(self) -> None:
        s = self.seeder
        rid = self.run_id
        tid = self.ids["make-data"]
        base = f"{rid}/make-data"
        data, report, page = s.artifacts(
            rid,
            tid,
            {
                "producer_key": "data",
                "artifact": {
                    "name": "data",
                    "type": "Dataset",
                    "uri": s.file(f"{base}/data", "x,y\n1,2\n3,4\n5,6\n"),
                },
            },
            {
                "producer_key": "report",
                "artifact": {
                    "name": "report",
                    "type": "Markdown",
                    "uri": s.file(
                        f"{base}/report",
                        "# Data report\n\nThree **rows**.\n\n<script>alert(1)</script>\n",
                    ),
                },
            },
            {
                "producer_key": "page",
                "artifact": {
                    "name": "page",
                    "type": "HTML",
                    "uri": s.file(f"{base}/page.html", HTML_PAGE.replace("RUN_ID", rid)),
                },
            },
        )
        self.artifact_ids.update(
            data=data["artifact_id"], report=report["artifact_id"], page=page["artifact_id"]
        )
        s.finish(rid, tid, outputs={"parameters": [_param("Output", 3, "OUTPUT", "make-data")]})

    def start_loop(self) -> None:
        s = self.seeder
        rid = self.run_id
        loop = s.task(
            rid,
            name="for-loop-3",
            type="LOOP",
            scope_path="root.exit-handler-1.for-loop-3",
            parent_task_id=self.ids["exit-handler-1"],
            type_attributes={"iteration_count": "3"},
        )
        self.ids["for-loop-3"] = loop["task_id"]
        for i in range(3):
            iteration = s.task(
                rid,
                name="for-loop-3",
                type="LOOP_ITERATION",
                scope_path="root.exit-handler-1.for-loop-3",
                parent_task_id=loop["task_id"],
                type_attributes={"iteration_index": i},
            )
            self.ids[f"iteration-{i}"] = iteration["task_id"]
            train = s.task(
                rid,
                name="train",
                type="RUNTIME",
                scope_path="root.exit-handler-1.for-loop-3.train",
                parent_task_id=iteration["task_id"],
                type_attributes={"iteration_index": i},
                inputs={
                    "parameters": [
                        _param("x", i + 1, "ITERATOR_INPUT", "for-loop-3", i),
                        _param("lr", self.parameters["lr"], "COMPONENT_INPUT", "ROOT"),
                    ]
                },
            )
            self.ids[f"train-{i}"] = train["task_id"]
            s.link(
                artifact_id=self.artifact_ids["data"],
                task_id=train["task_id"],
                run_id=rid,
                type="COMPONENT_INPUT",
                producer={"task_name": "make-data"},
                key="data",
            )

    def finish_train(self, i: int) -> None:
        s = self.seeder
        rid = self.run_id
        tid = self.ids[f"train-{i}"]
        score = round((i + 1) * self.parameters["lr"] + 0.3, 3)
        model, _score = s.artifacts(
            rid,
            tid,
            {
                "producer_key": "model",
                "iteration_index": i,
                "type": "OUTPUT",
                "artifact": {
                    "name": "model",
                    "type": "Model",
                    "uri": s.file(f"{rid}/train-{i}/model", f"weights {i}\n"),
                },
            },
            {
                "producer_key": "metrics",
                "iteration_index": i,
                "artifact": {"name": "score", "type": "Metric", "number_value": score},
            },
        )
        self.artifact_ids[f"model-{i}"] = model["artifact_id"]
        s.finish(
            rid,
            tid,
            outputs={"parameters": [_param("Output", score, "ITERATOR_OUTPUT", "train", i)]},
        )

    def run_condition(self) -> None:
        s = self.seeder
        rid = self.run_id
        cond = s.task(
            rid,
            name="condition-4",
            type="CONDITION_BRANCH",
            scope_path="root.exit-handler-1.condition-4",
            parent_task_id=self.ids["exit-handler-1"],
        )
        self.ids["condition-4"] = cond["task_id"]
        ev = s.task(
            rid,
            name="evaluate",
            type="RUNTIME",
            scope_path="root.exit-handler-1.condition-4.evaluate",
            parent_task_id=cond["task_id"],
        )
        self.ids["evaluate"] = ev["task_id"]
        s.link(
            artifact_id=self.artifact_ids["data"],
            task_id=ev["task_id"],
            run_id=rid,
            type="TASK_OUTPUT_INPUT",
            producer={"task_name": "make-data"},
            key="data",
        )
        cm, acc = s.artifacts(
            rid,
            ev["task_id"],
            {
                "producer_key": "cm",
                "artifact": {
                    "name": "cm",
                    "type": "ClassificationMetric",
                    "metadata": {"confusionMatrix": CONFUSION, "confidenceMetrics": ROC},
                },
            },
            {
                "producer_key": "metrics",
                "artifact": {"name": "accuracy", "type": "Metric", "number_value": self.accuracy},
            },
        )
        self.artifact_ids.update(cm=cm["artifact_id"], accuracy=acc["artifact_id"])
        s.finish(rid, ev["task_id"])

    def run_exit_task(self, state: str = "SUCCEEDED") -> None:
        s = self.seeder
        rid = self.run_id
        notify = s.task(
            rid,
            name="notify",
            type="RUNTIME",
            scope_path="root.notify",
            parent_task_id=self.ids["root"],
        )
        self.ids["notify"] = notify["task_id"]
        s.finish(rid, notify["task_id"], state=state)

    def complete(self) -> DemoRun:
        self.start()
        self.finish_make_data()
        self.start_loop()
        for i in range(3):
            self.finish_train(i)
        self.run_condition()
        self.run_exit_task()
        return self


# An HTML artifact that tries to act on the kfpd origin: none of it may run.
HTML_PAGE = """<!doctype html><html><head><title>page</title></head><body>
<h1 id="heading">Data page</h1>
<p>Static content is shown.</p>
<script>
  document.getElementById("heading").textContent = "SCRIPT RAN";
  fetch("/apis/v2beta1/runs/RUN_ID:terminate", {method: "POST", body: "{}"});
  try { parent.document.title = "pwned"; } catch (e) {}
</script>
<img src="x" onerror="parent.document.title='pwned'">
</body></html>
"""
