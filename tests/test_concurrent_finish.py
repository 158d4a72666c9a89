"""100 launchers report ``:finish`` at the same moment over real HTTP: nothing is lost or
written twice, and the run rolls up exactly once — on SQLite, PostgreSQL and MariaDB. The same
100 reports sent again at once are all refused (a task finishes once) and change nothing."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from kfpd.config import Settings
from kfpd.domain.tokens import issue_run_token
from kfpd.launcher.reporter import Reporter, ServerError
from kfpd.schemas.launch import FinishTaskRequest
from tests.helpers import fan_spec, ok

API = "/apis/v2beta1"
WIDTH = 100


def _all(http: httpx.Client, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, page by page."""
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        page = ok(http.get(path, params={**params, "page_size": 100, "page_token": token}))
        items += page.get(key, [])
        token = page.get("next_page_token", "")
        if not token:
            return items


def _finish_body(i: int, uri: str) -> dict[str, Any]:
    return {
        "state": "SUCCEEDED",
        "output_parameters": {"accuracy": i / 100, "msg": f"t{i}"},
        "output_artifacts": [
            {
                "key": key,
                "name": key,
                "uri": f"{uri}/t{i}/{key}",
                "schema_title": "system.Dataset",
                "metadata": {"rows": i},
            }
            for key in ("out-a", "out-b")
        ],
    }


def _finish_all(
    server: str, token: str, run_id: str, ids: list[str], uri: str
) -> dict[int, BaseException]:
    """One thread per launcher, each with the launcher's own client (one connection, made after
    the barrier), all released together: the server has every report in flight at once.
    Returns the calls' errors by task index."""
    barrier = threading.Barrier(len(ids))
    errors: dict[int, BaseException] = {}

    def finish(i: int) -> None:
        reporter = Reporter(server, token, timeout=120)
        try:
            barrier.wait(timeout=60)
            reporter.finish(run_id, ids[i], FinishTaskRequest.model_validate(_finish_body(i, uri)))
        except BaseException as exc:
            errors[i] = exc
        finally:
            reporter.close()

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a :finish call never returned"
    return errors


def test_hundred_concurrent_finishes_lose_nothing(live_server: str, tmp_path: Path) -> None:
    secret = Settings(data_dir=tmp_path).run_token_secret()  # the live server's data dir
    with httpx.Client(base_url=live_server + API, timeout=60) as http:
        run = ok(http.post("/runs", json={"display_name": "fan", "pipeline_spec": fan_spec(WIDTH)}))
        rid = run["run_id"]
        auth = {"authorization": f"Bearer {issue_run_token(secret, rid)}"}
        uri = f"minio://mlpipeline/v2/artifacts/fan/{rid}"

        def create(**fields: Any) -> str:
            body = {"state": "RUNNING", **fields}
            return str(ok(http.post(f"/runs/{rid}/tasks", json=body, headers=auth))["task_id"])

        root = create(name="ROOT", type="ROOT", scope_path="root")
        ids = [
            create(name=f"t{i}", type="RUNTIME", scope_path=f"root.t{i}", parent_task_id=root)
            for i in range(WIDTH)
        ]

    token = issue_run_token(secret, rid)
    errors = _finish_all(live_server, token, rid, ids, uri)
    assert not errors, errors
    # The same reports again, at once (launchers retrying after a lost reply): each is refused
    # as already finished, and nothing below is written twice.
    again = _finish_all(live_server, token, rid, ids, uri)
    assert sorted(again) == list(range(WIDTH)), sorted(again)
    refused = {
        i: e for i, e in again.items() if not (isinstance(e, ServerError) and e.status == 409)
    }
    assert not refused, refused

    with httpx.Client(base_url=live_server + API, timeout=60) as http:
        final = ok(http.get(f"/runs/{rid}"))
        assert final["state"] == "SUCCEEDED"
        history = [h["state"] for h in final["state_history"]]
        assert history.count("SUCCEEDED") == 1, history
        assert history == ["PENDING", "RUNNING", "SUCCEEDED"], history

        tasks = _all(http, f"/runs/{rid}/tasks", "tasks")
        by_id = {t["task_id"]: t for t in tasks}
        assert len(tasks) == WIDTH + 1 and set(by_id) == {root, *ids}
        root_history = [h["state"] for h in by_id[root]["state_history"]]
        assert root_history == ["RUNNING", "SUCCEEDED"], root_history
        for i, task_id in enumerate(ids):
            task = by_id[task_id]
            assert task["state"] == "SUCCEEDED", task
            states = [h["state"] for h in task["state_history"]]
            assert states.count("SUCCEEDED") == 1, states
            params = {p["parameter_key"]: p["value"] for p in task["outputs"]["parameters"]}
            assert len(task["outputs"]["parameters"]) == 2, task["outputs"]["parameters"]
            assert params == {"accuracy": i / 100, "msg": f"t{i}"}
            outs = task["outputs"]["artifacts"]
            assert sorted(o["artifact_key"] for o in outs) == ["out-a", "out-b"], outs
            assert all(len(o["artifacts"]) == 1 for o in outs), outs

        artifacts = _all(http, "/artifacts", "artifacts")
        uris = Counter(a["uri"] for a in artifacts)
        expected = {f"{uri}/t{i}/{key}" for i in range(WIDTH) for key in ("out-a", "out-b")}
        assert set(uris) == expected and set(uris.values()) == {1}, uris.most_common(3)

        links = _all(http, "/artifact_tasks", "artifact_tasks", run_ids=rid)
        pairs = Counter((x["task_id"], x["artifact_id"], x["key"]) for x in links)
        assert len(links) == 2 * WIDTH and set(pairs.values()) == {1}, pairs.most_common(3)
        owner = {a["artifact_id"]: a["uri"] for a in artifacts}
        for task_id, artifact_id, key in pairs:
            i = ids.index(task_id)
            assert owner[artifact_id] == f"{uri}/t{i}/{key}"
