"""The run page in a real browser: a live graph, the task side panel with its log, actions."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import UiServer
from tests.ui.seed import DemoRun

MAKE = '[data-key="root.exit-handler-1.make-data"]'
LOOP = '[data-key="root.exit-handler-1.for-loop-3"]'
TRAIN = '[data-key="root.exit-handler-1.for-loop-3.train"]'
EVALUATE = '[data-key="root.exit-handler-1.condition-4.evaluate"]'
NOTIFY = '[data-key="root.notify"]'


def node(page: Any, selector: str) -> Any:
    return page.locator(f"svg.graph g.gnode{selector}")


def test_graph_follows_a_live_run_without_reloading(page: Any, ui_server: UiServer) -> None:
    demo = DemoRun(ui_server.seeder).start()
    page.goto(f"/#/runs/{demo.run_id}")
    expect(node(page, MAKE)).to_have_attribute("data-state", "RUNNING")
    expect(node(page, EVALUATE)).to_have_attribute("data-state", "PENDING")
    expect(page.locator("h1")).to_contain_text("RUNNING")
    # Nested groups are drawn as boxes holding their tasks; the exit task sits outside.
    expect(page.locator('g.gnode.expanded[data-kind="exit-handler"]')).to_be_visible()
    expect(page.locator('g.gnode.expanded[data-kind="condition"]')).to_be_visible()
    expect(node(page, NOTIFY)).to_contain_text("notify (exit)")
    page.evaluate("window.__sameDocument = true")
    page.shots("running")

    demo.finish_make_data()
    demo.start_loop()
    expect(node(page, MAKE)).to_have_attribute("data-state", "SUCCEEDED")
    expect(node(page, LOOP)).to_contain_text("3 iterations · 3 running")
    node(page, LOOP).locator('[data-action="toggle"]').click()
    expect(node(page, TRAIN)).to_have_attribute("data-state", "RUNNING")
    expect(node(page, LOOP)).to_contain_text("iteration 0 of 3")
    page.shots("loop-expanded")

    demo.finish_train(0)
    expect(node(page, TRAIN)).to_have_attribute("data-state", "SUCCEEDED")
    expect(node(page, LOOP).locator("rect.iter.st-succeeded")).to_have_count(1)
    node(page, LOOP).locator('rect.iter[data-iteration="2"]').click()
    expect(node(page, LOOP)).to_contain_text("iteration 2 of 3")
    expect(node(page, TRAIN)).to_have_attribute("data-state", "RUNNING")

    demo.finish_train(1)
    demo.finish_train(2)
    demo.run_condition()
    demo.run_exit_task()
    expect(page.locator("h1")).to_contain_text("SUCCEEDED")
    for selector in (MAKE, TRAIN, EVALUATE, NOTIFY, LOOP):
        expect(node(page, selector)).to_have_attribute("data-state", "SUCCEEDED")
    expect(node(page, LOOP)).to_contain_text("3 ✓")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    page.shots("succeeded")


def test_task_panel_shows_io_cache_retries_and_a_live_log(page: Any, ui_server: UiServer) -> None:
    demo = DemoRun(ui_server.seeder).start()
    ui_server.append_log(demo.run_id, demo.ids["make-data"], "reading input\n")
    page.goto(f"/#/runs/{demo.run_id}")
    node(page, MAKE).click()
    panel = page.locator("aside.side-panel")
    expect(panel.locator(".panel-title")).to_have_text("make-data")
    expect(panel.locator(".fingerprint")).to_have_text("f" * 64)
    expect(panel.locator(".cache-status")).to_contain_text("cache miss")
    expect(panel.locator(".attempts")).to_have_text("1 (retries: 0)")
    expect(panel).to_contain_text("make-data-pod")
    log = panel.locator("pre.log")
    expect(log).to_have_text("reading input\n")
    expect(panel.locator(".log-status")).to_contain_text("Following the log live")

    ui_server.append_log(demo.run_id, demo.ids["make-data"], "wrote 3 rows\n")
    expect(log).to_have_text("reading input\nwrote 3 rows\n")
    demo.finish_make_data()
    outputs = panel.locator(".outputs")
    expect(outputs.locator('tr[data-param="Output"]')).to_contain_text("3")
    for key in ("data", "report", "page"):
        expect(outputs.locator(f'tr[data-artifact-key="{key}"]')).to_be_visible()
    expect(panel.locator(".log-status")).to_contain_text("Log complete")
    page.shots("panel")

    # The panel of a loop task lists its iteration inputs.
    demo.start_loop()
    node(page, LOOP).locator('[data-action="toggle"]').click()
    node(page, TRAIN).click()
    expect(panel.locator(".panel-title")).to_have_text("train")
    expect(panel.locator('.inputs tr[data-param="x"]')).to_contain_text("ITERATOR_INPUT")
    expect(panel.locator('.inputs tr[data-artifact-key="data"]')).to_contain_text("data")
    # The selection is in the URL: a reload opens the same panel.
    assert f"task={demo.ids['train-0']}" in page.url


def test_failed_task_shows_its_error_and_retries(page: Any, ui_server: UiServer) -> None:
    seeder = ui_server.seeder
    demo = DemoRun(seeder, name="failing").start()
    rid, tid = demo.run_id, demo.ids["make-data"]
    seeder.update(rid, tid, pods=[{"name": "make-data-pod-2", "type": "EXECUTOR"}])
    seeder.update(rid, tid, state="FAILED", status_metadata={"message": "boom: out of memory"})
    demo.run_exit_task()  # the exit handler still runs; then the run fails
    page.goto(f"/#/runs/{rid}?task={tid}")
    panel = page.locator("aside.side-panel")
    expect(panel.locator(".task-error")).to_contain_text("boom: out of memory")
    expect(page.locator(".run-error")).to_contain_text("boom: out of memory")
    expect(node(page, MAKE)).to_have_attribute("data-state", "FAILED")
    expect(node(page, LOOP)).to_have_attribute("data-state", "NOT_RUN")
    page.shots("failed")


def test_huge_log_shows_its_tail_with_a_notice(page: Any, ui_server: UiServer) -> None:
    demo = DemoRun(ui_server.seeder).start()
    line = "x" * 99 + "\n"
    ui_server.append_log(demo.run_id, demo.ids["make-data"], line * 30_000 + "THE END\n")  # ~3 MB
    demo.finish_make_data()
    page.goto(f"/#/runs/{demo.run_id}?task={demo.ids['make-data']}")
    panel = page.locator("aside.side-panel")
    expect(panel.locator(".log-status")).to_contain_text("Log complete", timeout=30_000)
    expect(panel.locator(".log-box .notice")).to_contain_text("This log is large")
    assert page.locator("pre.log").inner_text().endswith("THE END\n")
    assert len(page.locator("pre.log").inner_text()) <= 512 * 1024


def test_run_actions(page: Any, ui_server: UiServer) -> None:
    seeder = ui_server.seeder
    demo = DemoRun(seeder, name="acted on").start()
    rid = demo.run_id
    page.goto(f"/#/runs/{rid}")
    page.get_by_role("button", name="Terminate").click()
    expect(page.locator("h1")).to_contain_text("CANCELED")
    expect(node(page, MAKE)).to_have_attribute("data-state", "CANCELED")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("h1")).to_contain_text("RUNNING")
    page.get_by_role("button", name="Archive").click()
    expect(page.locator("h1")).to_contain_text("ARCHIVED")
    page.get_by_role("button", name="Restore").click()
    expect(page.locator("h1")).not_to_contain_text("ARCHIVED")

    page.get_by_role("button", name="Clone").click()
    dialog = page.locator("dialog.run-dialog")
    expect(dialog.locator('input[data-param="lr"]')).to_have_value("0.1")
    dialog.locator('input[name="display_name"]').fill("cloned run")
    dialog.locator('input[data-param="lr"]').fill("not a number")
    dialog.get_by_role("button", name="Start run").click()
    expect(dialog.locator(".error-box")).to_contain_text("lr must be a number")
    dialog.locator('input[data-param="lr"]').fill("0.5")
    dialog.get_by_role("button", name="Start run").click()
    expect(page.locator("h1 .run-name")).to_have_text("cloned run")
    clone_id = page.url.split("/runs/")[1].split("?")[0]
    clone = seeder.call("GET", f"/runs/{clone_id}")
    assert clone["runtime_config"]["parameters"] == {"lr": 0.5, "threshold": 1}
    page.shots("clone")

    page.goto(f"/#/runs/{rid}")
    expect(page.locator("h1 .run-name")).to_have_text("acted on")  # not the clone's page
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("h1")).to_have_text("Runs")
    assert seeder.http.get(f"/apis/v2beta1/runs/{rid}").status_code == 404


@pytest.mark.usefixtures("ui_server")
def test_unknown_run_shows_a_clear_message(page: Any) -> None:
    page.goto("/#/runs/no-such-run")
    box = page.locator(".error-box")
    expect(box).to_contain_text("run 'no-such-run' not found")
    expect(box).to_contain_text("may have been deleted")
    assert "Traceback" not in page.content()
    page.goto("/#/nowhere/at/all")
    expect(page.locator(".error-box")).to_contain_text("There is no page at #/nowhere/at/all")
