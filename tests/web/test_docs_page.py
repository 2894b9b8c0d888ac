"""The API documentation page renders in a real browser from Accord's own assets."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Route

pytestmark = pytest.mark.browser


def test_docs_render_without_any_outside_request(live_server: str, browser: Browser) -> None:
    outside: list[str] = []
    page = browser.new_page()

    def guard(route: Route) -> None:
        host = urlparse(route.request.url).hostname
        if host not in ("127.0.0.1", "localhost"):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    page.goto(f"{live_server}/docs")
    paths = page.locator(".opblock-summary-path")
    paths.first.wait_for(timeout=15_000)
    shown = set(paths.all_inner_texts())
    assert {"/v1/track", "/v1/batch", "/v1/identify", "/api/profiles"} <= shown
    assert outside == []
    page.close()
