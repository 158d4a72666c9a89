"""Recurring runs in the browser: create one from a pipeline version, see its next fire times
and its runs appear (the schedule really fires: the test server runs its engine), disable it,
find it in the list with its trigger in words."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import expect

from tests.helpers import compiled
from tests.ui.conftest import UiServer

pytestmark = [pytest.mark.needs_orchestrator, pytest.mark.ui]


def test_create_a_recurring_run_and_watch_it_fire(
    page: Any, ui_server: UiServer, tmp_path: Path
) -> None:
    import kfp

    package = tmp_path / "scheduled.yaml"
    package.write_text(yaml.safe_dump(compiled("scheduled")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = kfp.Client(host=ui_server.url)
    pipeline = client.upload_pipeline(str(package), pipeline_name="nightly-etl")

    page.goto(f"/#/pipelines/{pipeline.pipeline_id}")
    page.get_by_role("button", name="Create recurring run").click()
    dialog = page.locator("dialog")
    dialog.locator("input[name=display_name]").fill("every two seconds")
    dialog.locator("input[name=interval_second]").fill("2")
    expect(dialog.locator(".trigger-words")).to_have_text("every 2 seconds")
    dialog.locator('select[name="trigger_kind"]').select_option("cron")
    dialog.locator("input[name=cron]").fill("0 */5 * * *")
    expect(dialog.locator(".trigger-words")).to_have_text("every 5 minutes at second 0 (UTC)")
    dialog.locator('select[name="trigger_kind"]').select_option("periodic")
    dialog.locator('input[name="param:when"]').fill("[[ScheduledTime]]")
    dialog.locator('input[name="max_concurrency"]').fill("2")
    page.shots("dialog")
    dialog.get_by_role("button", name="Create recurring run").click()

    expect(page).to_have_url(re.compile(r"#/recurringruns/[0-9a-f-]+$"))
    expect(page.locator("h1")).to_contain_text("every two seconds")
    expect(page.locator("h1 .badge")).to_have_text("Enabled")
    expect(page.locator("ol.next-fire-times li[data-time]")).to_have_count(5)
    expect(page.locator("table.kv")).to_contain_text("every 2 seconds")
    # Its runs appear and succeed while the page is open (it polls).
    succeeded = page.locator('.recurring-runs-runs .badge[data-state="SUCCEEDED"]')
    expect(succeeded.first).to_be_visible(timeout=40_000)
    assert page.locator(".recurring-runs-runs tbody tr").count() >= 1
    page.shots("fired")

    page.get_by_role("button", name="Disable").click()
    expect(page.locator("h1 .badge")).to_have_text("Disabled")
    page.goto("/#/recurringruns")
    row = page.locator("table.recurring-runs tbody tr", has_text="every two seconds")
    expect(row).to_contain_text("Disabled")
    expect(row).to_contain_text("every 2 seconds")
    page.shots("list")
