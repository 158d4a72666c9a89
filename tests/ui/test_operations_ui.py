"""/docs and /redoc render with no network, and upstream KFP's links open kfpd's pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

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
