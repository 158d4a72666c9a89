"""Browser tests of the web UI: a real kfpd server (SQLite) and Debian's chromium via Playwright.

The browser is /usr/bin/chromium (KFPD_TEST_CHROMIUM overrides); Playwright never downloads one.
Without it the tests skip locally and fail in CI (KFPD_TEST_REQUIRE_DBS=1). Screenshots go to
test-artifacts/ui/ (KFPD_TEST_ARTIFACTS overrides). The database matrix is covered by the API
tests, so these run on SQLite only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kfpd.api.app import create_app
from kfpd.config import Settings
from kfpd.db.engine import Database
from kfpd.db.migrate import upgrade
from kfpd.domain.tokens import issue_run_token
from tests.conftest import REQUIRE, _free_port, _serve, empty_database
from tests.ui.doubles import Doubles
from tests.ui.seed import Seeder

CHROMIUM = os.environ.get("KFPD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS_DIR = (
    Path(
        os.environ.get("KFPD_TEST_ARTIFACTS")
        or Path(__file__).resolve().parents[2] / "test-artifacts"
    )
    / "ui"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session")
def ui_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-db') / 'kfpd.sqlite'}"
    upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture
def ui_db(ui_database: Database) -> Database:
    return empty_database(ui_database)


@dataclass
class UiServer:
    url: str
    data_dir: Path
    seeder: Seeder
    doubles: Doubles

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "artifacts"

    def append_log(self, run_id: str, task_id: str, text: str) -> None:
        """Add to a task's log: the double's store, or the real append endpoint once merged."""
        if self.doubles.log_double:
            self.doubles.logs[task_id] = self.doubles.logs.get(task_id, b"") + text.encode()
            return
        token = issue_run_token(Settings(data_dir=self.data_dir).run_token_secret(), run_id)
        response = self.seeder.http.post(
            f"/apis/v2beta1/runs/{run_id}/tasks/{task_id}/logs",
            json={"text": text},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def ui_server(
    ui_db: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[UiServer]:
    port = _free_port()
    data_dir = tmp_path / "data"
    (data_dir / "artifacts").mkdir(parents=True)
    # Seeded tests write run graphs themselves; only real-pipeline tests run the engine.
    orchestrate = request.node.get_closest_marker("needs_orchestrator") is not None
    settings = Settings(data_dir=data_dir, port=port, orchestrate=orchestrate)
    app = create_app(settings, database=ui_db)
    doubles = Doubles(app, ui_db)
    server, thread = _serve(app, port)
    url = f"http://127.0.0.1:{port}"
    seeder = Seeder(url, data_dir / "artifacts")
    yield UiServer(url, data_dir, seeder, doubles)
    seeder.close()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"chromium not found at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE:
            pytest.fail(message + " (KFPD_TEST_REQUIRE_DBS=1)", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Shots:
    """Screenshots of a test, saved as test artifacts."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str) -> Path:
        path = ARTIFACTS_DIR / f"{self.name}--{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser: Any, ui_server: UiServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page on the test server; page errors fail the test."""
    context = browser.new_context(base_url=ui_server.url, viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.shots = Shots(page, request.node.name.replace("/", "_"))
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        page.shots("failure")
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
