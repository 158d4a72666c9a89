"""End to end: a real pipeline submitted with kfp.Client, executed by kfpd, watched in chromium.

The ui_demo pipeline has an exit handler, a ParallelFor, a condition, Dataset/Markdown/HTML/
Model artifacts, scalar metrics and a confusion matrix. The test opens the run page while the
run executes and sees nodes go from RUNNING to SUCCEEDED without a reload, then opens a task's
log, an artifact preview and its lineage, the confusion matrix, and compares two runs.

It needs runs that actually execute:
The test server runs its engine for tests marked ``needs_orchestrator``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.pipelines.ui_demo import ui_demo
from tests.ui.conftest import UiServer

pytestmark = [pytest.mark.needs_orchestrator, pytest.mark.slow, pytest.mark.ui]

MAKE = 'svg.graph g.gnode[data-key="root.exit-handler-1.make-data"]'
LOOP = 'svg.graph g.gnode[data-key="root.exit-handler-1.for-loop-3"]'
TRAIN = 'svg.graph g.gnode[data-key="root.exit-handler-1.for-loop-3.train"]'


def _client(url: str) -> Any:
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kfp.Client(host=url)


def _watch_states(page: Any, selector: str, until: str, timeout_s: float) -> list[str]:
    """The distinct data-state values a node shows, in order, until it reaches `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = (
            page.locator(selector).first.get_attribute("data-state")
            if page.locator(selector).count()
            else None
        )
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        if state == until:
            return seen
        page.wait_for_timeout(150)
    raise AssertionError(f"{selector} never reached {until}; saw {seen}")


def test_real_pipeline_in_the_browser(page: Any, ui_server: UiServer) -> None:
    client = _client(ui_server.url)
    first = client.create_run_from_pipeline_func(
        ui_demo, arguments={"threshold": 1, "lr": 0.1}, run_name="e2e A"
    )
    page.goto(f"/#/runs/{first.run_id}")
    expect(page.locator(MAKE)).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    states = _watch_states(page, MAKE, "SUCCEEDED", 300)
    assert "RUNNING" in states, f"make-data was never seen running: {states}"
    page.shots("make-data-succeeded")
    page.locator(LOOP).locator('[data-action="toggle"]').click()
    _watch_states(page, TRAIN, "SUCCEEDED", 300)

    result = client.wait_for_run_completion(first.run_id, timeout=600)
    assert result.state == "SUCCEEDED", result.state
    expect(page.locator("h1")).to_contain_text("SUCCEEDED", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    page.shots("run-succeeded")

    # The log of make-data, then its Dataset's preview and lineage.
    page.locator(MAKE).click()
    panel = page.locator("aside.side-panel")
    expect(panel.locator("pre.log")).to_contain_text("made 3 rows", timeout=15_000)
    page.shots("log")
    panel.locator('.outputs tr[data-artifact-key="data"] a').click()
    expect(page.locator("table.csv-preview tbody tr")).to_have_count(3)
    expect(page.locator("svg.lineage g.lnode")).not_to_have_count(1)
    page.shots("artifact")

    # Metrics: the confusion matrix written by evaluate.
    page.goto(f"/#/runs/{first.run_id}?tab=metrics")
    cells = page.locator("svg.confusion-matrix rect.cm-cell")
    expect(cells).to_have_count(4)
    assert [cells.nth(i).get_attribute("data-value") for i in range(4)] == ["7", "1", "2", "9"]
    expect(page.locator("table.scalar-metrics")).to_contain_text("accuracy")
    page.shots("metrics")

    # A second run with another learning rate, compared side by side.
    second = client.create_run_from_pipeline_func(
        ui_demo, arguments={"threshold": 1, "lr": 0.3}, run_name="e2e B"
    )
    assert client.wait_for_run_completion(second.run_id, timeout=600).state == "SUCCEEDED"
    page.goto(f"/#/compare?runs={first.run_id},{second.run_id}")
    expect(page.locator('table.compare-params tr[data-key="lr"]')).to_have_attribute(
        "data-differs", "true"
    )
    expect(page.locator('table.compare-metrics tr[data-key="train[0] / score"]')).to_have_attribute(
        "data-differs", "true"
    )
    page.shots("compare")
