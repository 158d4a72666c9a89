"""The launcher's two calls stay few statements on every database (each one is a round trip
to PostgreSQL/MariaDB): CreateTask with its input link, then ``:finish`` with two outputs.
bench/write_roundtrips.py prints the driver-level counts; docs/benchmarks.md has the figures."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from kfpd.db.engine import Database
from kfpd.domain.tokens import issue_run_token
from tests.helpers import compiled, ok

API = "/apis/v2beta1"


def test_create_task_and_finish_stay_few_statements(api: TestClient, db: Database) -> None:
    run_id = ok(
        api.post(f"{API}/runs", json={"display_name": "x", "pipeline_spec": compiled("graph_demo")})
    )["run_id"]
    root = ok(
        api.post(
            f"{API}/runs/{run_id}/tasks",
            json={"name": "ROOT", "type": "ROOT", "scope_path": "root", "state": "RUNNING"},
        )
    )["task_id"]
    secret = api.app.state.settings.run_token_secret()  # type: ignore[attr-defined]
    token = {"Authorization": f"Bearer {issue_run_token(secret, run_id)}"}
    seed = {"name": "seed", "type": "Dataset", "uri": "file:///tmp/seed"}
    made = ok(
        api.post(
            f"{API}/artifacts:batchCreate",
            json={
                "artifacts": [
                    {"artifact": seed, "run_id": run_id, "task_id": root, "producer_key": "s"}
                ]
            },
            headers=token,
        )
    )
    upstream = made["artifacts"][0]["artifact_id"]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    counts: dict[str, int] = {}
    for name in ("make-data", "train"):  # the second pair is measured (caches warm)
        body = {
            "name": name,
            "type": "RUNTIME",
            "scope_path": f"root.{name}",
            "parent_task_id": root,
            "state": "RUNNING",
            "inputs": {
                "parameters": [{"parameter_key": "n", "type": "COMPONENT_INPUT", "value": 1}],
                "artifacts": [
                    {
                        "artifacts": [{"artifact_id": upstream}],
                        "type": "TASK_OUTPUT_INPUT",
                        "artifact_key": "in",
                        "producer": {"task_name": "ROOT"},
                    }
                ],
            },
        }
        finish = {
            "state": "SUCCEEDED",
            "output_parameters": {"accuracy": 0.5},
            "output_artifacts": [
                {
                    "key": k,
                    "name": k,
                    "uri": f"file:///tmp/{name}/{k}",
                    "schema_title": "system.Dataset",
                }
                for k in ("out-a", "out-b")
            ],
        }
        event.listen(db.write_engine, "before_cursor_execute", count)
        try:
            statements.clear()
            task_id = ok(api.post(f"{API}/runs/{run_id}/tasks", json=body))["task_id"]
            counts["CreateTask"] = len(statements)
            statements.clear()
            ok(api.post(f"{API}/runs/{run_id}/tasks/{task_id}:finish", json=finish, headers=token))
            counts[":finish"] = len(statements)
        finally:
            event.remove(db.write_engine, "before_cursor_execute", count)
    # CreateTask: run lock with the parent and earlier-create lookups, task, link. :finish: run
    # lock (SQLite: with the rest), the task with its links and roll-up facts, artifacts,
    # links, the task's update. No read for the reply, no probe of the parent.
    expected = {"CreateTask": 3, ":finish": 4 if db.is_sqlite else 5}
    assert counts == expected, statements
