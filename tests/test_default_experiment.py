"""The "Default" experiment exists from start-up, and getting-or-creating it is race-free."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import delete, select

from kfpd.db.engine import Database
from kfpd.db.models import Experiment, Run
from tests.helpers import compiled, ok

API = "/apis/v2beta1"


def _experiments(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(httpx.get(f"{url}{API}/experiments")).get("experiments", [])
    return found


def test_default_experiment_exists_from_start_up(live_server: str) -> None:
    assert [e["display_name"] for e in _experiments(live_server)] == ["Default"]


def test_fifty_concurrent_first_submissions_all_succeed(live_server: str, db: Database) -> None:
    with db.write_session() as s:  # as on a server whose Default was never made
        s.execute(delete(Experiment))
    body = {"pipeline_spec": compiled("cross_site:touch_pipeline")}

    def submit(i: int) -> httpx.Response:
        run = {**body, "display_name": f"r{i}", "runtime_config": {"parameters": {"path": "x"}}}
        return httpx.post(f"{live_server}{API}/runs", json=run, timeout=60)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(submit, range(50)))
    assert [a.status_code for a in answers] == [200] * 50, [a.text for a in answers if a.is_error]
    experiments = _experiments(live_server)
    assert [e["display_name"] for e in experiments] == ["Default"]
    with db.read_session() as s:
        homes = set(s.scalars(select(Run.experiment_id)))
    assert homes == {experiments[0]["experiment_id"]}


def test_a_namespaces_default_experiment_for_the_run_form(live_server: str) -> None:
    """The UI's run form (multi-user: the picked namespace's Default): 20 concurrent first
    calls make one experiment; a bad namespace is a 400 that writes nothing."""
    url = f"{live_server}/ui/api/experiments:default"

    def make(_: int) -> httpx.Response:
        return httpx.post(url, params={"namespace": "team-a"}, json={}, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(make, range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.is_error]
    assert len({a.json()["experiment_id"] for a in answers}) == 1
    assert answers[0].json()["namespace"] == "team-a"
    in_a = ok(httpx.get(f"{live_server}{API}/experiments", params={"namespace": "team-a"}))
    assert [e["display_name"] for e in in_a["experiments"]] == ["Default"]
    bad = httpx.post(url, params={"namespace": "team\nx"}, json={})
    assert bad.status_code == 400 and "control" in bad.json()["message"], bad.text
    assert len(_experiments(live_server)) == 2  # the shared Default and team-a's
