"""/docs and /redoc render with no network, and upstream KFP's links open kfpd's pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UiServer


def _offline(page: Any, base_url: str) -> list[str]:
    """Abort every request that leaves the test server; return what was attempted."""
    own = urlparse(base_url).netloc
    attempted: list[str] = []

    def guard(route: Any) -> None:
        if urlparse(route.request.url).netloc == own:
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    return attempted


def test_swagger_ui_renders_offline(page: Any, ui_server: UiServer) -> None:
    attempted = _offline(page, ui_server.url)
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("kfpd")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    expect(page.get_by_text("/apis/v2beta1/runs/{run_id}", exact=True).first).to_be_attached()
    page.shots("docs")
    assert attempted == []


def test_redoc_renders_offline(page: Any, ui_server: UiServer) -> None:
    attempted = _offline(page, ui_server.url)
    page.goto("/redoc")
    # ReDoc parses the whole OpenAPI document in the page (seconds on a busy 2-core machine).
    expect(page.locator("h1").first).to_contain_text("kfpd", timeout=60_000)
    expect(page.get_by_text("/apis/v2beta1/runs/{run_id}").first).to_be_attached(timeout=30_000)
    assert attempted == []


def test_upstream_kfp_links_open_kfpd_pages(page: Any, ui_server: UiServer) -> None:
    experiment = ui_server.seeder.experiment("upstream-links")
    run = ui_server.seeder.run("linked run", experiment_id=experiment["experiment_id"])
    page.goto(f"/#/runs/details/{run['run_id']}")
    expect(page).to_have_url(f"{ui_server.url}/#/runs/{run['run_id']}")
    expect(page.locator("h1")).to_contain_text("linked run")
    page.goto(f"/#/experiments/details/{experiment['experiment_id']}")
    expect(page).to_have_url(f"{ui_server.url}/#/experiments/{experiment['experiment_id']}")
    expect(page.locator("h1")).to_contain_text("upstream-links")


@pytest.mark.usefixtures("ui_server")
def test_create_from_the_lists_upload_experiment_run(page: Any, tmp_path: Any) -> None:
    import yaml

    from tests.helpers import compiled

    spec_file = tmp_path / "demo.yaml"
    spec_file.write_text(yaml.safe_dump(compiled("control_flow")))
    page.goto("/#/pipelines")
    page.locator('[data-action="upload-pipeline"]').click()
    dialog = page.locator("dialog.upload-dialog")
    dialog.locator('input[type="file"]').set_input_files(str(spec_file))
    dialog.locator('input[name="name"]').fill("uploaded from the ui")
    dialog.get_by_role("button", name="Upload").click()
    expect(page.locator("h1")).to_contain_text("uploaded from the ui")
    assert page.url.split("#/")[1].startswith("pipelines/")

    page.goto("/#/experiments")
    page.locator('[data-action="new-experiment"]').click()
    page.locator("dialog.experiment-dialog input[name=display_name]").fill("made in the ui")
    page.locator("dialog.experiment-dialog").get_by_role("button", name="Create").click()
    expect(page.locator("h1")).to_contain_text("made in the ui")

    page.goto("/#/runs")
    page.locator('[data-action="create-run"]').click()
    chooser = page.locator("dialog.choose-pipeline-dialog")
    chooser.locator("select").select_option(label="uploaded from the ui")
    chooser.get_by_role("button", name="Next").click()
    form = page.locator("dialog.run-dialog:not(.choose-pipeline-dialog)")
    form.locator('input[name="display_name"]').fill("run made in the ui")
    form.get_by_role("button", name="Start run").click()
    expect(page.locator("h1")).to_contain_text("run made in the ui")
    page.shots("created-run")


@pytest.mark.usefixtures("ui_server")
def test_dialogs_close_when_leaving_the_page(page: Any) -> None:
    page.goto("/#/experiments")
    page.locator('[data-action="new-experiment"]').click()
    expect(page.locator("dialog[open]")).to_have_count(1)
    page.evaluate("location.hash = '#/pipelines'")
    expect(page.locator("h1")).to_have_text("Pipelines")
    expect(page.locator("dialog[open]")).to_have_count(0)


def test_running_duration_keeps_counting_and_metrics_are_rounded(
    page: Any, ui_server: UiServer
) -> None:
    from tests.ui.seed import DemoRun

    demo = DemoRun(ui_server.seeder).start()
    page.goto(f"/#/runs/{demo.run_id}")
    shown = page.locator(".run-duration")
    expect(shown).not_to_have_text("")
    first = shown.inner_text()
    expect(shown).not_to_have_text(first, timeout=5_000)  # ticks without a server change
    rounded = page.evaluate(
        "import('/ui/static/js/api.js').then((m) => [m.fmtValue(0.8333333333), m.fmtValue(2), m.fmtValue(1.5e-7)])"
    )
    assert rounded == ["0.8333", "2", "1.500e-7"]


def test_condition_boxes_show_their_expression(page: Any, ui_server: UiServer) -> None:
    from tests.helpers import compiled

    experiment = ui_server.seeder.experiment("conditions")
    run = ui_server.seeder.run(
        "cond", compiled("ui_demo"), experiment_id=experiment["experiment_id"]
    )
    page.goto(f"/#/runs/{run['run_id']}")
    box = page.locator('svg.graph g.gnode[data-kind="condition"]').first
    sub = box.locator("text.sub").first
    expect(sub).to_contain_text("if make-data-Output > thresh")  # channels read as outputs
    assert "parameter_values" not in (sub.text_content() or "")


def test_narrow_window_puts_the_task_panel_below_the_graph(page: Any, ui_server: UiServer) -> None:
    from tests.ui.seed import DemoRun

    demo = DemoRun(ui_server.seeder).start()
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(f"/#/runs/{demo.run_id}")
    page.locator('svg.graph g.gnode[data-key="root.exit-handler-1.make-data"]').click()
    panel = page.locator(".side-panel")
    expect(panel).to_be_visible()
    graph_box = page.locator(".graph-wrap").bounding_box()
    panel_box = panel.bounding_box()
    assert panel_box["y"] >= graph_box["y"] + graph_box["height"] - 1
    page.shots("narrow")


def test_task_logs_stay_out_of_the_artifact_list_unless_asked(
    page: Any, ui_server: UiServer
) -> None:
    seeder = ui_server.seeder
    run = seeder.run("with logs")
    task = seeder.task(run["run_id"], display_name="make", type="RUNTIME")
    seeder.artifacts(
        run["run_id"],
        task["task_id"],
        {
            "producer_key": "data",
            "artifact": {"name": "data", "type": "Dataset", "uri": seeder.file("d.csv", "a\n")},
        },
        {
            "producer_key": "executor-logs",
            "artifact": {
                "name": "executor-logs",
                "type": "Artifact",
                "uri": seeder.file("log.txt", "hi\n"),
            },
        },
    )
    page.goto("/#/artifacts")
    rows = page.locator("table.artifacts-list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("data")
    page.get_by_label("show task logs").check()
    expect(rows).to_have_count(2)
    expect(page.locator("table.artifacts-list")).to_contain_text("executor-logs")
