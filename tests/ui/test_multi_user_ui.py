"""Multi-user UI: signed in through the proxy's header, a user sees its namespaces in the
picker and only their runs; a viewer sees no actions; other namespaces' pages are not found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import expect

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
            {"user": "carol@example.com", "role": "editor", "namespace": "team-a"},
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
    package = json.dumps(compiled("graph_demo")).encode()
    with httpx.Client(
        base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for namespace in ("team-a", "team-b", "team-c", ""):
            name = f"pipe-of-{namespace}" if namespace else "pipe-shared"
            ok(
                http.post(
                    f"{API}/pipelines/upload",
                    params={"name": name, "namespace": namespace},
                    files={"uploadfile": ("p.json", package)},
                )
            )
        for namespace in ("team-a", "team-b", "team-c"):
            exp = ok(
                http.post(
                    f"{API}/experiments",
                    json={"display_name": f"exp-of-{namespace}", "namespace": namespace},
                )
            )
            body = {
                "display_name": f"run-of-{namespace}",
                "pipeline_spec": compiled("graph_demo"),
                "experiment_id": exp["experiment_id"],
            }
            runs[namespace] = ok(http.post(f"{API}/runs", json=body))["run_id"]
    yield {"url": url, "runs": runs, "token": token}
    server.should_exit = True
    thread.join(timeout=10)


@contextmanager
def _signed_in(browser: Any, url: str, user: str) -> Iterator[Any]:
    """A page signed in as ``user`` the way the proxy in front does it (the header, which
    Playwright adds to every request); the page raised no script error when the block ends."""
    context = browser.new_context(base_url=url, extra_http_headers={"kubeflow-userid": user})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


def test_a_user_sees_only_its_namespaces(browser: Any, multi_user_server: dict[str, Any]) -> None:
    url, runs = multi_user_server["url"], multi_user_server["runs"]
    with _signed_in(browser, url, "alice@example.com") as page:
        page.goto("/#/runs")
        picker = page.locator("#namespace-picker")
        expect(picker.locator("option")).to_have_text(["team-a", "team-c"])  # waits for whoami
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


def test_an_admin_of_every_namespace_picks_among_those_there_are(
    browser: Any, multi_user_server: dict[str, Any]
) -> None:
    """ops is bound on "*" only: the picker lists the namespaces that hold experiments or
    pipelines, or that a binding names (not an empty picker), and each shows its runs."""
    with _signed_in(browser, multi_user_server["url"], "ops") as page:
        page.goto("/#/runs")
        picker = page.locator("#namespace-picker")
        expect(picker.locator("option")).to_have_text(["team-a", "team-b", "team-c"])
        picker.select_option("team-b")
        page.get_by_text("run-of-team-b").wait_for()
        assert page.get_by_text("run-of-team-a").count() == 0
        assert page.locator("[data-action=create-run]").is_visible()  # admin everywhere


def test_an_editor_sees_its_pipelines_and_runs_into_its_default_experiment(
    browser: Any, multi_user_server: dict[str, Any], tmp_path: Path
) -> None:
    """carol, editor of team-a (signed in by the proxy's header): the pipelines page shows
    team-a's pipelines and the shared ones, never team-b's; an upload goes to team-a; a run
    made from the form lands in team-a's Default experiment (made on first use)."""
    url = multi_user_server["url"]
    admin = {"authorization": f"Bearer {multi_user_server['token']}"}
    with _signed_in(browser, url, "carol@example.com") as page:
        page.goto("/#/pipelines")
        picker = page.locator("#namespace-picker")
        expect(picker.locator("option")).to_have_text(["team-a"])
        own = page.locator("[data-pipelines=namespace]")
        shared = page.locator("[data-pipelines=shared]")
        own.get_by_text("pipe-of-team-a").wait_for()
        shared.get_by_text("pipe-shared").wait_for()
        assert own.get_by_text("pipe-shared").count() == 0
        assert shared.get_by_text("pipe-of-team-a").count() == 0
        assert page.get_by_text("pipe-of-team-b").count() == 0
        assert page.get_by_text("pipe-of-team-c").count() == 0

        # Upload: into team-a, the only place an editor of team-a may put a pipeline.
        spec_file = tmp_path / "carol.json"
        spec_file.write_text(json.dumps(compiled("graph_demo")))
        page.locator("[data-action=upload-pipeline]").click()
        dialog = page.locator("dialog.upload-dialog")
        assert dialog.locator("select[name=namespace] option").all_inner_texts() == ["team-a"]
        dialog.locator('input[type="file"]').set_input_files(str(spec_file))
        dialog.locator('input[name="name"]').fill("carols-pipeline")
        dialog.get_by_role("button", name="Upload").click()
        page.locator("h1", has_text="carols-pipeline").wait_for()
        pipeline_id = page.url.split("#/pipelines/")[1].split("?")[0]
        made = httpx.get(f"{url}{API}/pipelines/{pipeline_id}", headers=admin).json()
        assert made["namespace"] == "team-a", made

        # A run from the form: the Default experiment is team-a's, the list team-a's only.
        page.goto("/#/runs")
        page.locator("[data-action=create-run]").click()
        chooser = page.locator("dialog.choose-pipeline-dialog")
        choices = chooser.locator("select option")
        choices.filter(has_text="pipe-shared").wait_for(state="attached")
        labels = choices.all_inner_texts()
        assert "pipe-of-team-a" in labels and "pipe-shared (shared)" in labels, labels
        assert not any("team-b" in label for label in labels), labels
        chooser.locator("select").select_option(label="pipe-of-team-a")
        chooser.get_by_role("button", name="Next").click()
        form = page.locator("dialog.run-dialog:not(.choose-pipeline-dialog)")
        experiments = form.locator("select[name=experiment_id] option")
        experiments.filter(has_text="exp-of-team-a").wait_for(state="attached")
        assert experiments.all_inner_texts() == ["Default", "exp-of-team-a"]
        assert form.locator("select[name=experiment_id]").input_value() == ""
        form.locator('input[name="display_name"]').fill("carols-run")
        form.get_by_role("button", name="Start run").click()
        page.locator("h1", has_text="carols-run").wait_for()
        run_id = page.url.split("#/runs/")[1].split("?")[0]
    run = httpx.get(f"{url}{API}/runs/{run_id}", headers=admin).json()
    experiment = httpx.get(f"{url}{API}/experiments/{run['experiment_id']}", headers=admin).json()
    assert (experiment["display_name"], experiment["namespace"]) == ("Default", "team-a")
    bob = httpx.get(f"{url}{API}/runs/{run_id}", headers={"kubeflow-userid": "nobody@example.com"})
    assert bob.status_code == 404  # signed in, no binding: another team's run does not exist
