"""Charts in headless Chromium: plotly.js, served by Accord, draws them beside their tables."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

pytestmark = pytest.mark.browser


def _local_only(page: Page, outside: list[str]) -> None:
    def guard(route: Route) -> None:
        if urlparse(route.request.url).hostname not in ("127.0.0.1", "localhost"):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)


def _drawn(page: Page, title: str) -> Locator:
    """The chart captioned `title`, once plotly.js has drawn it; its table is checked too."""
    figure = page.locator("figure.chart", has=page.locator("figcaption", has_text=title))
    expect(figure).to_have_count(1)
    plot = figure.locator(".chart-plot")
    expect(plot).to_have_attribute("data-drawn", "true")
    expect(plot.locator("svg.main-svg").first).to_be_visible()
    # The same numbers as a table, in the DOM for screen readers (folded until asked for).
    expect(figure.locator("details.chart-table table")).to_have_count(1)
    assert figure.locator("details.chart-table tbody tr").count() > 0
    return figure


def test_signed_in_pages_draw_their_charts_with_plotly(live_server: str, browser: Browser) -> None:
    outside: list[str] = []
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    _local_only(page, outside)

    page.goto(f"{live_server}/sign-up")
    page.get_by_label("Your name").fill("Ann Owner")
    page.get_by_label("Email").fill("ann@acme.test")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Create a business")).to_be_visible()
    page.get_by_label("Name").fill("Acme Shoes")
    page.get_by_label("Contact email").fill("contact@acme.test")
    page.get_by_label("Website").fill("https://acme.test")
    page.get_by_role("button", name="Create business").click()
    expect(page.get_by_role("heading", name="Acme Shoes")).to_be_visible()

    page.goto(f"{live_server}/journeys")
    page.get_by_label("Key").fill("welcome")
    page.get_by_label("Name").fill("Welcome series")
    page.get_by_role("button", name="Create and open the builder").click()
    expect(page.get_by_role("status")).to_contain_text("Journey created")
    page.goto(f"{live_server}/journeys/welcome")
    daily = _drawn(page, "Entries and conversions per day")
    assert daily.locator("details.chart-table tbody tr").count() == 30
    daily.locator("details.chart-table summary").click()
    expect(daily.locator("details.chart-table table")).to_be_visible()

    page.goto(f"{live_server}/audiences")
    page.get_by_role("button", name="Refresh every audience now").click()
    expect(page.get_by_role("status")).to_contain_text("Refreshed")
    sizes = _drawn(page, "Audience sizes")
    bars = page.evaluate(
        "() => document.querySelector('#audience-sizes .chart-plot').data[0].y.length"
    )
    assert bars == sizes.locator("details.chart-table tbody tr").count() > 0

    assert outside == [], f"the pages fetched from elsewhere: {outside}"
    assert errors == [], f"script errors: {errors}"
    context.close()
