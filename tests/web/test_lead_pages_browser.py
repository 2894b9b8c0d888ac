"""In headless Chromium: build a form in the admin UI's builder and open its hosted page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Route, expect

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.store.db import open_store
from accord.store.migrate import upgrade
from accord.web.app import create_app
from tests.live_app import free_port, serving

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_site(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL", public_url=base)
    upgrade(settings.resolved_database_url())
    store = open_store(settings.resolved_database_url())
    keys = bootstrap(store, name="Outdoor Shop")
    store.dispose()
    with serving(create_app(settings), port=port):
        yield base, keys.admin_token


def _local_only(route: Route) -> None:
    if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def test_build_a_form_and_open_its_hosted_page(
    admin_site: tuple[str, str], browser: Browser
) -> None:
    base, token = admin_site
    context = browser.new_context(
        locale="en-GB", extra_http_headers={"Authorization": f"Bearer {token}"}
    )
    page = context.new_page()
    page.route("**/*", _local_only)
    page.goto(f"{base}/leads/forms/new")
    expect(page.get_by_role("heading", name="New form")).to_be_visible()
    page.get_by_label("Address (slug)").fill("trail-guide")
    page.get_by_label("Title (en)").fill("The trail guide")
    page.get_by_label("Sender of the confirmation email").fill("hello@shop.example")

    # Add an open question; the builder shows it with a label box of its own.
    page.get_by_label("New field key").fill("trail")
    page.locator('select[name="new_field_kind"]').select_option("text")
    page.get_by_role("button", name="Add field").click()
    question = page.locator('fieldset[data-field="trail"]')
    expect(question).to_be_visible()
    question.get_by_label("Label (en)").fill("Your favourite trail?")

    # Saving without the privacy-policy link is refused by the browser itself.
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="New form")).to_be_visible()
    page.get_by_label("Privacy-policy link (required)").fill("https://shop.example/privacy")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved as version 1")

    hosted = page.locator("#hosted-link")
    expect(hosted).to_have_text(f"{base}/l/trail-guide")
    hosted.click()
    expect(page.get_by_role("heading", name="The trail guide")).to_be_visible()
    expect(page.get_by_role("textbox", name="Your favourite trail?")).to_be_visible()
    expect(page.get_by_label("Email me news and offers")).not_to_be_checked()
    context.close()
