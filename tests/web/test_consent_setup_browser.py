"""The banner designer in Chromium: the preview is the real cmp.js, and it records nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.store.db import open_store
from accord.store.migrate import upgrade
from accord.web.app import create_app
from tests.live_app import free_port, serving

pytestmark = pytest.mark.browser


@dataclass
class Site:
    base: str
    admin: dict[str, str]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")
    upgrade(settings.resolved_database_url())
    store = open_store(settings.resolved_database_url())
    keys = bootstrap(store, name="Shoe Shop")
    store.dispose()
    with serving(create_app(settings), port=port) as base:
        admin = {"Authorization": f"Bearer {keys.admin_token}"}
        created = httpx.post(
            f"{base}/api/consent/properties", headers=admin, json={"key": "shop", "name": "Shop"}
        )
        assert created.status_code == 200, created.text
        yield Site(base=base, admin=admin)


def test_the_designer_preview_draws_the_draft_banner_with_cmp_js(
    browser: Browser, site: Site
) -> None:
    context = browser.new_context(extra_http_headers=site.admin)
    page = context.new_page()
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.url.endswith("/cmp.js") else None)
    page.goto(f"{site.base}/consent/properties/shop/banner")
    preview = page.frame_locator("#banner-preview")
    banner = preview.locator(".acc")
    expect(preview.locator(".acc-d h2")).to_have_text("We value your privacy")
    expect(banner).to_have_class(re.compile(r"\bacc-bar\b"))
    assert scripts, "the preview did not load /cmp.js"

    # Unsaved changes show in the preview as they are made.
    page.check("input[name=layout][value=box]")
    page.fill("input[name=background]", "#102030")
    expect(banner).to_have_class(re.compile(r"\bacc-box\b"), timeout=10_000)
    expect(banner).to_have_attribute("style", re.compile(r"--acc-bg:\s*#102030"), timeout=10_000)

    # A choice made in the preview is neither stored in a cookie nor recorded.
    preview.locator("[data-accord=accept]").click()
    expect(preview.locator(".acc-d")).to_have_count(0)
    expect(preview.locator("[data-accord=reopen]")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "accord_consent"]
    page.reload()
    expect(page.frame_locator("#banner-preview").locator(".acc-d h2")).to_be_visible()
    ledger = httpx.get(f"{site.base}/api/consent/verify", headers=site.admin).json()
    assert ledger["records"] == 0, ledger
    notices = httpx.get(f"{site.base}/api/consent/properties/shop/notices", headers=site.admin)
    assert [n["version"] for n in notices.json()] == [1]

    # Publishing makes version 2 with the new look, which the preview then shows as published.
    page.check("input[name=layout][value=box]")
    page.fill("input[name=background]", "#102030")
    page.click("#publish-button")
    expect(page.locator(".alert.notice")).to_contain_text("Version 2 published")
    expect(page.frame_locator("#banner-preview").locator(".acc")).to_have_class(
        re.compile(r"\bacc-box\b")
    )
    context.close()
