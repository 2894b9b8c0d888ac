"""The audience builder in headless Chromium: typing a definition updates the live size
estimate through the preview API, and a broken one shows the problem by condition path."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
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
from tests.audiences.test_service import ago
from tests.conftest import opt_out_where_unknown
from tests.live_app import serving
from tests.web.conftest import browser  # noqa: F401  (the session's Chromium)

pytestmark = pytest.mark.browser


@dataclass
class Site:
    base: str
    admin_token: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")
    url = settings.resolved_database_url()
    upgrade(url)
    store = open_store(url)
    keys = bootstrap(store, name="Outdoor Shop")
    # Events here carry no consent and no location: this business keeps them (rule XX).
    opt_out_where_unknown(store, keys.business_id)
    with serving(create_app(settings)) as base:
        auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
        batch = [
            {"type": "identify", "userId": f"u{n}", "traits": {"plan": "pro" if n < 3 else "free"}}
            for n in range(5)
        ] + [{"type": "track", "userId": "u4", "event": "Order Completed", "timestamp": ago(2)}]
        response = httpx.post(
            f"{base}/v1/batch", headers={"Authorization": auth}, json={"batch": batch}
        )
        assert response.status_code == 200
        drain(
            store,
            lake_url=settings.resolved_lake_url(),
            batch_size=100,
            lease=timedelta(seconds=60),
        )
        yield Site(base=base, admin_token=keys.admin_token)
    store.dispose()


def test_typing_a_definition_updates_the_estimate(browser: Browser, site: Site) -> None:  # noqa: F811
    context = browser.new_context(
        extra_http_headers={"Authorization": f"Bearer {site.admin_token}"}
    )
    page = context.new_page()
    page.goto(f"{site.base}/audiences/new")
    text = page.get_by_role("textbox", name="Text form")
    estimate = page.locator("#estimate")

    text.fill('trait plan = "pro"')
    expect(page.locator("#estimate-size")).to_have_text("3", timeout=15_000)
    expect(page.locator("#estimate-sample li")).to_have_count(3)

    text.press_sequentially(' and did "Order Completed" in the last 7 days', delay=5)
    expect(page.locator("#estimate-size")).to_have_text("0", timeout=15_000)

    text.fill('trait plan = "free" and did "Order Completed" in the last 7 days')
    expect(page.locator("#estimate-size")).to_have_text("1", timeout=15_000)
    expect(page.locator("#estimate-sample")).to_contain_text("plan=free")

    text.fill('trait plan > "a"')
    expect(estimate).to_contain_text("definition.condition.op", timeout=15_000)
    expect(estimate).to_contain_text("cannot order a string")
    context.close()
