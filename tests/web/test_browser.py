"""The browser pages in a real browser (Debian's chromium driven by Playwright), with every request that is
not to loopback aborted: a script or stylesheet from a CDN would leave a page blank and fail here.

Set ORO_UPDATE_SCREENSHOTS=1 to refresh the screenshots under docs/ that the README shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from oro_graph.services import leaderboard
from tests.conftest import IN_CI
from tests.web.conftest import DOCS, Site

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("ORO_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        message = "no chromium executable (apt-get install chromium, or set ORO_TEST_CHROMIUM)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        # Playwright cannot download its own browser here: it drives the system's build.
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A fresh browser page that aborts every request leaving the machine and records it."""

    def __init__(self, browser: object) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _route(self, route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob"} or parts.hostname in LOOPBACK:
            route.continue_()  # type: ignore[attr-defined]
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")  # type: ignore[attr-defined]

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        shot = tmp_path / name
        self.page.screenshot(path=str(shot))
        if os.environ.get("ORO_UPDATE_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(shot, DOCS / name)
        return shot

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: object) -> Iterator[Page]:
    page = Page(browser)
    try:
        yield page
    finally:
        page.close()
    assert page.blocked == [], f"the page asked for outside hosts: {page.blocked}"
    assert page.errors == [], f"the page raised: {page.errors}"


def test_graphiql_runs_a_leaderboard_query(site: Site, tab: Page, tmp_path: Path) -> None:
    board = site.runtime.db.call(leaderboard.leaderboard_page, limit=3)
    leader = board.rows[0].agent.name
    page = tab.page
    page.goto(f"{site.url}/graphql")
    page.wait_for_selector(".graphiql-execute-button")
    # the page's default query is a leaderboard query; run it as a user would
    page.click(".graphiql-execute-button")
    result = page.locator(".result-window")
    result.get_by_text('"rank": 1').wait_for()
    text = result.inner_text()
    assert '"leaderboard"' in text and f'"agentName": "{leader}"' in text
    assert '"errors"' not in text
    page.wait_for_timeout(300)  # let the editor settle for the picture
    tab.screenshot(tmp_path, "graphiql.png")


def test_swagger_ui_try_it_out_gets_200(site: Site, tab: Page, tmp_path: Path) -> None:
    page = tab.page
    page.goto(f"{site.url}/docs")
    operation = page.locator("#operations-public-get_leaderboard")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.first.wait_for()
    assert status.first.inner_text().strip() == "200"
    body = operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
    assert '"entries"' in body or '"agent_name"' in body
    operation.locator(".live-responses-table").first.scroll_into_view_if_needed()
    tab.screenshot(tmp_path, "swagger-ui.png")


def test_redoc_renders_the_rest_paths(site: Site, tab: Page, tmp_path: Path) -> None:
    page = tab.page
    page.goto(f"{site.url}/redoc")
    page.locator(".api-info h1").wait_for()
    assert "oro-graph" in page.locator(".api-info h1").inner_text()
    page.get_by_text("/v1/public/leaderboard").first.wait_for(state="attached")
    assert page.locator("[data-section-id^='tag/public']").count() >= 1
    tab.screenshot(tmp_path, "redoc.png")


def test_landing_page(site: Site, tab: Page, tmp_path: Path) -> None:
    page = tab.page
    page.goto(f"{site.url}/")
    assert page.locator("h1").inner_text().startswith("oro-graph")
    for href in ("/graphql", "/docs", "/health"):
        assert page.locator(f"a[href='{href}']").count() == 1
    tab.screenshot(tmp_path, "landing.png")
    page.click("a[href='/health']")
    assert '"status":"ok"' in page.locator("body").inner_text().replace(" ", "")
