"""Artifacts, metrics, comparison, lists and the other pages in a real browser."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.helpers import compiled
from tests.ui.conftest import UiServer
from tests.ui.seed import DemoRun, tiny_png


def test_artifact_previews_download_and_sandboxed_html(page: Any, ui_server: UiServer) -> None:
    seeder = ui_server.seeder
    demo = DemoRun(seeder, name="previews").start()
    demo.finish_make_data()  # the run stays RUNNING: a script that could terminate it would show
    arts = demo.artifact_ids

    page.goto(f"/#/artifacts/{arts['data']}")
    table = page.locator("table.csv-preview")
    expect(table.locator("thead th")).to_have_text(["x", "y"])
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tbody tr").nth(2)).to_contain_text("56")
    download = page.locator("a.download")
    response = page.request.get(download.get_attribute("href"))
    assert response.status == 200 and response.body() == b"x,y\n1,2\n3,4\n5,6\n"
    assert response.headers["content-disposition"].startswith("attachment")
    page.shots("csv")

    page.goto(f"/#/artifacts/{arts['report']}")
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("h1")).to_have_text("Data report")
    expect(frame.locator("strong")).to_have_text("rows")
    expect(frame.locator("body")).to_contain_text("<script>alert(1)</script>")  # shown as text
    page.shots("markdown")

    page.goto(f"/#/artifacts/{arts['page']}")
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("#heading")).to_have_text("Data page")
    expect(frame.locator("p")).to_have_text("Static content is shown.")
    page.wait_for_timeout(1500)
    expect(frame.locator("#heading")).to_have_text("Data page")  # its script never ran
    assert page.title() == "kfpd"
    iframe = page.locator("iframe.preview")
    assert iframe.get_attribute("sandbox") == ""
    assert page.evaluate("document.querySelector('iframe.preview').contentDocument") is None
    assert seeder.call("GET", f"/runs/{demo.run_id}")["state"] == "RUNNING"
    render = page.request.get(iframe.get_attribute("src"))
    assert "sandbox" in render.headers["content-security-policy"]
    page.shots("html")

    # An image and a plain text file, produced by another task of the run.
    demo.start_loop()
    png, notes = seeder.artifacts(
        demo.run_id,
        demo.ids["train-0"],
        {
            "producer_key": "plot",
            "artifact": {
                "name": "plot",
                "type": "Artifact",
                "uri": seeder.file("extra/plot.png", tiny_png()),
            },
        },
        {
            "producer_key": "notes",
            "artifact": {
                "name": "notes",
                "type": "Artifact",
                "uri": seeder.file("extra/notes.txt", "hello notes\n"),
            },
        },
    )
    page.goto(f"/#/artifacts/{png['artifact_id']}")
    image = page.locator("img.preview")
    expect(image).to_be_visible()
    # Poll from the test: wait_for_function compiles its predicate in the page, which the
    # UI's Content-Security-Policy (no unsafe-eval) rightly refuses.
    for _ in range(100):
        if image.evaluate("el => el.naturalWidth") == 40:
            break
        page.wait_for_timeout(100)
    assert image.evaluate("el => el.naturalWidth") == 40
    page.goto(f"/#/artifacts/{notes['artifact_id']}")
    expect(page.locator("pre.preview-text")).to_have_text("hello notes\n")


def test_artifact_errors_are_clear(
    page: Any, ui_server: UiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No credentials here: without this botocore first asks the EC2 metadata address (with
    # retries, seconds on this network-less machine) before saying NoCredentialsError.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    seeder = ui_server.seeder
    demo = DemoRun(seeder, name="errors").start()
    outside, remote, gone = seeder.artifacts(
        demo.run_id,
        demo.ids["make-data"],
        {
            "producer_key": "a",
            "artifact": {"name": "outside", "type": "Artifact", "uri": "file:///etc/passwd"},
        },
        {
            "producer_key": "b",
            "artifact": {"name": "remote", "type": "Dataset", "uri": "s3://bucket/key"},
        },
        {
            "producer_key": "c",
            "artifact": {
                "name": "gone",
                "type": "Dataset",
                "uri": (ui_server.artifact_root / "missing.csv").as_uri(),
            },
        },
    )
    page.goto(f"/#/artifacts/{outside['artifact_id']}")
    expect(page.locator(".preview-unavailable")).to_contain_text(
        "outside the server's artifact root"
    )
    assert "root:x:0" not in page.content()
    page.goto(f"/#/artifacts/{remote['artifact_id']}")
    # No launcher config: s3:// goes to AWS with the server's (here absent) credentials.
    # botocore's first session takes seconds to load on a busy machine.
    expect(page.locator(".preview-unavailable")).to_contain_text(
        "the object store could not be read", timeout=30_000
    )
    page.goto(f"/#/artifacts/{gone['artifact_id']}")
    expect(page.locator(".preview-unavailable")).to_contain_text(
        "does not exist (it may have been deleted)"
    )
    page.goto("/#/artifacts/00000000-0000-0000-0000-000000000000")
    expect(page.locator(".error-box")).to_contain_text("not found")
    expect(page.locator(".error-box")).to_contain_text("may have been deleted")
    assert "Traceback" not in page.content()


def test_lineage_expands_hop_by_hop(page: Any, ui_server: UiServer) -> None:
    demo = DemoRun(ui_server.seeder, name="lineage").complete()
    page.goto(f"/#/artifacts/{demo.artifact_ids['data']}")
    nodes = page.locator("svg.lineage g.lnode")
    # Hop 1 of the dataset: its producer and its four consumers (3 train iterations, evaluate).
    expect(nodes).to_have_count(6)
    expect(page.locator('svg.lineage g.lnode.root[data-kind="ARTIFACT"]')).to_contain_text("data")
    train = page.locator(f'svg.lineage g.lnode[data-id="{demo.ids["train-1"]}"]')
    expect(train).to_contain_text("train")
    train.click()  # adds the model and score of that iteration
    expect(nodes).to_have_count(8)
    expect(
        page.locator(f'svg.lineage g.lnode[data-id="{demo.artifact_ids["model-1"]}"]')
    ).to_be_visible()
    expect(page.locator(".lineage-info a")).to_have_text("Open the task in its run")
    page.shots("lineage")


def test_metrics_confusion_matrix_and_roc(page: Any, ui_server: UiServer) -> None:
    demo = DemoRun(ui_server.seeder, name="metrics").complete()
    page.goto(f"/#/runs/{demo.run_id}?tab=metrics")
    scalars = page.locator("table.scalar-metrics")
    expect(scalars.locator('tr[data-metric="score"]')).to_have_count(3)
    expect(scalars.locator('tr[data-metric="accuracy"] .metric-value')).to_have_text("0.84")
    expect(scalars).to_contain_text("train [2]")
    matrix = page.locator("svg.confusion-matrix")
    expect(matrix.locator("rect.cm-cell")).to_have_count(4)
    values = [
        matrix.locator(f'rect.cm-cell[data-row="{r}"][data-col="{c}"]').get_attribute("data-value")
        for r in range(2)
        for c in range(2)
    ]
    assert values == ["7", "1", "2", "9"]
    expect(matrix).to_contain_text("cat")
    expect(matrix).to_contain_text("dog")
    expect(page.locator('svg.curve-chart[aria-label="ROC curve"] path.curve')).to_have_count(1)
    pr_curve = 'svg.curve-chart[aria-label="Precision–recall"] path.curve'  # noqa: RUF001
    expect(page.locator(pr_curve)).to_have_count(1)
    page.shots("metrics")

    # The same charts on the artifact page of the ClassificationMetrics artifact.
    page.goto(f"/#/artifacts/{demo.artifact_ids['cm']}")
    expect(page.locator("svg.confusion-matrix rect.cm-cell")).to_have_count(4)


def test_compare_two_runs(page: Any, ui_server: UiServer) -> None:
    seeder = ui_server.seeder
    first = DemoRun(
        seeder, name="compare A", parameters={"threshold": 1, "lr": 0.1}, accuracy=0.84
    ).complete()
    second = DemoRun(
        seeder, name="compare B", parameters={"threshold": 1, "lr": 0.3}, accuracy=0.91
    ).complete()
    page.goto("/#/runs")
    for demo in (first, second):
        page.locator(f'tr[data-run-id="{demo.run_id}"] input[type="checkbox"]').check()
    page.get_by_role("button", name="Compare selected (2)").click()
    params = page.locator("table.compare-params")
    expect(params.locator('tr[data-key="lr"]')).to_have_attribute("data-differs", "true")
    expect(params.locator('tr[data-key="lr"]')).to_contain_text("0.3")
    expect(params.locator('tr[data-key="threshold"]')).to_have_attribute("data-differs", "false")
    metrics = page.locator("table.compare-metrics")
    expect(metrics.locator('tr[data-key="evaluate / accuracy"]')).to_have_class("diff")
    expect(metrics.locator('tr[data-key="evaluate / accuracy"]')).to_contain_text("0.91")
    expect(page.locator("svg.curve-chart path.curve")).to_have_count(2)
    expect(page.locator("svg.confusion-matrix")).to_have_count(2)
    page.shots("compare")

    page.goto("/#/compare?runs=only-one")
    expect(page.locator(".error-box")).to_contain_text("Choose 2 to 10 runs")


def test_runs_list_pages_filters_and_sorts_without_a_request_per_row(
    page: Any, ui_server: UiServer
) -> None:
    seeder = ui_server.seeder
    spec = compiled("ui_demo")
    experiment = seeder.experiment("listing")
    runs = [
        seeder.run(f"run-{i:02d}", spec, experiment_id=experiment["experiment_id"])
        for i in range(25)
    ]
    for run in runs[:3]:
        seeder.call("POST", f"/runs/{run['run_id']}:terminate")
    requests: list[str] = []
    page.on(
        "request",
        lambda r: requests.append(r.url) if "/apis/" in r.url or "/ui/api/" in r.url else None,
    )
    page.goto("/#/runs")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(20)
    expect(page.locator(".toolbar")).to_contain_text("25 runs")
    expect(rows.first).to_contain_text("run-24")  # newest first
    expect(rows.first).to_contain_text("listing")  # the experiment's name, not its id
    # Runs page, experiment names, experiment filter list: none per row. The page's one
    # sign-in look-up (whoami, for the namespace picker) is not about the rows.
    about_rows = [u for u in requests if "/auth/whoami" not in u]
    assert len(about_rows) <= 3, requests
    assert not [u for u in requests if "/runs/" in u]
    page.get_by_role("button", name="Next ›").click()  # noqa: RUF001
    expect(rows).to_have_count(5)
    page.get_by_role("button", name="‹ Previous").click()  # noqa: RUF001
    expect(rows).to_have_count(20)

    page.get_by_label("filter by state").select_option("CANCELED")
    expect(rows).to_have_count(3)
    page.get_by_label("filter by state").select_option("")
    page.get_by_label("filter by name").fill("run-1")
    expect(rows).to_have_count(10)
    page.locator('th[data-sort="display_name"]').click()  # name, ascending
    expect(rows.first).to_contain_text("run-10")
    page.locator('th[data-sort="display_name"]').click()  # name, descending
    expect(rows.first).to_contain_text("run-19")
    page.get_by_label("filter by name").fill("")
    page.get_by_label("created from").fill("2000-01-01")
    page.get_by_label("created until").fill("2000-01-02")
    expect(page.locator("main")).to_contain_text("No runs match these filters.")
    page.shots("runs-list")


def test_pipelines_and_experiments_pages(page: Any, ui_server: UiServer) -> None:
    import yaml

    seeder = ui_server.seeder
    text = yaml.safe_dump(compiled("ui_demo"))
    response = seeder.http.post(
        "/apis/v2beta1/pipelines/upload",
        params={"name": "demo-pipeline"},
        files={"uploadfile": ("ui_demo.yaml", text, "application/x-yaml")},
    )
    assert response.status_code == 200, response.text
    pipeline_id = response.json()["pipeline_id"]
    page.goto("/#/pipelines")
    page.get_by_role("link", name="demo-pipeline").click()
    graph = page.locator("svg.graph")
    expect(graph.locator('g.gnode[data-key="root.exit-handler-1.make-data"]')).to_contain_text(
        "task"
    )
    expect(graph.locator('g.gnode[data-key="root.exit-handler-1.for-loop-3"]')).to_contain_text(
        "loop over"
    )
    expect(page.locator("table.versions tbody tr")).to_have_count(1)
    page.shots("pipeline")
    page.get_by_role("button", name="Create run").click()
    dialog = page.locator("dialog.run-dialog")
    dialog.locator('input[name="display_name"]').fill("from the pipeline page")
    dialog.get_by_role("button", name="Start run").click()
    expect(page.locator("h1 .run-name")).to_have_text("from the pipeline page")
    run_id = page.url.split("/runs/")[1].split("?")[0]
    assert (
        seeder.call("GET", f"/runs/{run_id}")["pipeline_version_reference"]["pipeline_id"]
        == pipeline_id
    )

    page.goto("/#/experiments")
    page.get_by_role("link", name="Default").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(page.locator("table.runs")).to_contain_text("from the pipeline page")


def test_artifacts_list_filters_by_type_name_and_run(page: Any, ui_server: UiServer) -> None:
    seeder = ui_server.seeder
    first = DemoRun(seeder, name="arts A").complete()
    DemoRun(seeder, name="arts B").complete()
    page.goto("/#/artifacts")
    rows = page.locator("table.artifacts-list tbody tr")
    expect(rows).to_have_count(20)
    expect(page.locator(".toolbar")).to_contain_text("22 artifacts")  # 11 per run
    page.get_by_label("filter by type").select_option("Model")
    expect(rows).to_have_count(6)
    page.get_by_label("filter by run").fill(first.run_id)
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("arts A")  # the producing run
    page.get_by_label("filter by type").select_option("")
    page.get_by_label("filter by name").fill("accur")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name="accuracy").click()
    expect(page.locator(".metric-value")).to_have_text("0.84")
