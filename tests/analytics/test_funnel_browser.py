"""The funnel page in headless Chromium: typing steps builds the funnel, plotly draws the
chart, and the numbers on the page are those of `POST /api/analytics/funnels`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.store.db import open_store
from accord.store.migrate import upgrade
from accord.web.app import create_app
from tests.analytics.test_reports_api import ADD, ORDER, VIEW, batch_of, funnel_body, start
from tests.conftest import opt_out_where_unknown
from tests.live_app import serving
from tests.web.conftest import browser  # noqa: F401  (the session's Chromium)

pytestmark = pytest.mark.browser


@dataclass
class Site:
    base: str
    admin_token: str
    start: datetime


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")
    url = settings.resolved_database_url()
    upgrade(url)
    store = open_store(url)
    keys = bootstrap(store, name="Outdoor Shop")
    # Events here carry no consent and no location: this business keeps them (rule XX).
    opt_out_where_unknown(store, keys.business_id)
    t = start()
    with serving(create_app(settings)) as base:
        auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
        response = httpx.post(
            f"{base}/v1/batch", headers={"Authorization": auth}, json={"batch": batch_of(t)}
        )
        assert response.status_code == 200
        drain(
            store,
            lake_url=settings.resolved_lake_url(),
            batch_size=100,
            lease=timedelta(seconds=60),
        )
        yield Site(base=base, admin_token=keys.admin_token, start=t)
    store.dispose()


def test_a_funnel_built_in_the_page_shows_the_api_numbers(browser: Browser, site: Site) -> None:  # noqa: F811
    headers = {"Authorization": f"Bearer {site.admin_token}"}
    context = browser.new_context(extra_http_headers=headers)
    page = context.new_page()
    page.goto(f"{site.base}/analytics/funnels")
    body = funnel_body(site.start)
    for i, event in enumerate([VIEW, ADD, ORDER]):
        page.locator(f"#step-{i}").fill(f'"{event}"')
    page.get_by_label("Conversion window (hours)").fill("24")
    page.get_by_label("From (UTC, included)").fill(body["from"])
    page.get_by_label("To (UTC, excluded)").fill(body["to"])
    page.get_by_role("button", name="Show funnel").click()

    # plotly.js drew the figure: one bar per step.
    expect(page.locator("#funnel-chart .chart-plot .main-svg").first).to_be_visible(timeout=15_000)
    expect(page.locator("#funnel-chart .chart-plot g.point")).to_have_count(3)
    shown = [int(n) for n in page.locator("#funnel-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.count)"
    )]  # fmt: skip
    api = httpx.post(f"{site.base}/api/analytics/funnels", headers=headers, json=body).json()
    assert shown == [s["count"] for s in api["steps"]] == [3, 2, 1]
    # The page's spec is the API's body: pasting it gives the same answer.
    spec = json.loads(page.locator("#report-spec").text_content() or "{}")
    again = httpx.post(f"{site.base}/api/analytics/funnels", headers=headers, json=spec).json()
    assert again == api
    context.close()
