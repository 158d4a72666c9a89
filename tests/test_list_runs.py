"""ListRuns over HTTP on every dialect: skip_count, filters."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi.testclient import TestClient

from tests.conftest import CORPUS
from tests.helpers import ok

API = "/apis/v2beta1"
ADD_SPEC = yaml.safe_load((CORPUS / "critical" / "add_numbers.yaml").read_bytes())


def _create_runs(api: TestClient, names: list[str]) -> list[str]:
    return [
        ok(
            api.post(
                f"{API}/runs",
                json={
                    "display_name": name,
                    "pipeline_spec": ADD_SPEC,
                    "runtime_config": {"parameters": {"a": 1, "b": 2}},
                },
            )
        )["run_id"]
        for name in names
    ]


def _list(api: TestClient, **params: Any) -> Any:
    return ok(api.get(f"{API}/runs", params=params))


def test_skip_count_leaves_total_size_out_and_pages_unchanged(api: TestClient) -> None:
    ids = _create_runs(api, [f"r{i}" for i in range(5)])
    counted = _list(api, page_size=2, sort_by="created_at desc")
    assert counted["total_size"] == 5
    skipped = _list(api, page_size=2, sort_by="created_at desc", skip_count="true")
    assert skipped["total_size"] == 0
    assert [r["run_id"] for r in skipped["runs"]] == [r["run_id"] for r in counted["runs"]]
    # The next pages follow the same order, and the flag may change between pages.
    seen = [r["run_id"] for r in skipped["runs"]]
    token = skipped["next_page_token"]
    while token:
        page = _list(api, page_size=2, page_token=token, skip_count="true")
        assert page["total_size"] == 0
        seen += [r["run_id"] for r in page["runs"]]
        token = page.get("next_page_token")
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    assert _list(api, skip_count="false")["total_size"] == 5
    assert _list(api, skip_count="")["total_size"] == 5


def test_bad_skip_count_is_a_400(api: TestClient) -> None:
    response = api.get(f"{API}/runs", params={"skip_count": "maybe"})
    assert response.status_code == 400, response.text
    assert "skip_count must be true or false" in response.json()["message"]
