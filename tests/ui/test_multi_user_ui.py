"""Multi-user UI: signed in through the proxy's header, a user sees its namespaces in the
picker and only their runs; a viewer sees no actions; other namespaces' pages are not found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.services import auth_store
from tests.conftest import _free_port, _serve
from tests.helpers import compiled, ok

API = "/apis/v2beta1"
AUTH = {
    "authentication": {
        "api_tokens": True,
        "trusted_header": {
            "name": "kubeflow-userid",
            "groups_header": "kubeflow-groups",
            "trusted_proxies": ["127.0.0.1/32"],
        },
    },
    "authorization": {
        "bindings": [
            {"user": "alice@example.com", "role": "viewer", "namespace": "team-a"},
            {"user": "alice@example.com", "role": "editor", "namespace": "team-c"},
            {"user": "ops", "role": "admin", "namespace": "*"},
        ]
    },
}


@pytest.fixture
def multi_user_server(ui_db: Database, tmp_path: Path) -> Iterator[dict[str, Any]]:
    config = tmp_path / "auth.yaml"
    config.write_text(yaml.safe_dump(AUTH))
    port = _free_port()
    settings = Settings(
        data_dir=tmp_path / "data", port=port, orchestrate=False, auth_config=config
    )
    server, thread = _serve(create_app(settings, database=ui_db), port)
    url = f"http://127.0.0.1:{port}"
    with ui_db.write_session() as s:
        token = auth_store.create_token(s, "ops", expires_in_s=600).token
    runs: dict[str, str] = {}
    with httpx.Client(
        base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for namespace in ("team-a", "team-b", "team-c"):
            exp = ok(
                http.post(f"{API}/experiments", json={"display_name": "e", "namespace": namespace})
            )
            body = {
                "display_name": f"run-of-{namespace}",
                "pipeline_spec": compiled("graph_demo"),
                "experiment_id": exp["experiment_id"],
            }
            runs[namespace] = ok(http.post(f"{API}/runs", json=body))["run_id"]
    yield {"url": url, "runs": runs}
    server.should_exit = True
    thread.join(timeout=10)


def test_a_user_sees_only_its_namespaces(browser: Any, multi_user_server: dict[str, Any]) -> None:
    url, runs = multi_user_server["url"], multi_user_server["runs"]
    # The proxy in front signs the browser in: here, the header Playwright adds to every request.
    context = browser.new_context(
        base_url=url, extra_http_headers={"kubeflow-userid": "alice@example.com"}
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/#/runs")
        picker = page.locator("#namespace-picker")
        assert picker.locator("option").all_inner_texts() == ["team-a", "team-c"]
        page.locator("#signed-in-as", has_text="alice@example.com").wait_for()
        picker.select_option("team-a")
        page.get_by_text("run-of-team-a").wait_for()
        assert page.get_by_text("run-of-team-b").count() == 0
        assert page.get_by_text("run-of-team-c").count() == 0
        assert not page.locator("[data-action=create-run]").is_visible()  # a viewer in team-a
        picker.select_option("team-c")
        page.get_by_text("run-of-team-c").wait_for()
        assert page.get_by_text("run-of-team-a").count() == 0
        assert page.locator("[data-action=create-run]").is_visible()  # an editor in team-c
        page.goto(f"/#/runs/{runs['team-b']}")  # another team's run: as if it did not exist
        page.locator(".error-box").wait_for()
        assert page.get_by_text("run-of-team-b").count() == 0
        assert page.request.get(f"/ui/api/runs/{runs['team-b']}/graph").status == 404
    finally:
        context.close()
    assert not errors, errors
