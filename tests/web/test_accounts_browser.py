"""The accounts journey in headless Chromium: sign up, business, two-factor, invite, employee."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pyotp
import pytest
from playwright.sync_api import Browser, Page, Route, expect

pytestmark = pytest.mark.browser

# Screenshots land in docs/images when asked for (ACCORD_UPDATE_SCREENSHOTS=1), so an
# ordinary run leaves the documentation as committed.
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOC_IMAGES if os.environ.get("ACCORD_UPDATE_SCREENSHOTS") else tmp_path


def _local_only(page: Page, outside: list[str]) -> None:
    def guard(route: Route) -> None:
        if urlparse(route.request.url).hostname not in ("127.0.0.1", "localhost"):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)


def _shot(page: Page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_owner_sets_up_a_business_and_an_employee_sees_only_their_pixel(
    live_server: str, browser: Browser, shots: Path
) -> None:
    outside: list[str] = []
    owner_context = browser.new_context(viewport={"width": 1280, "height": 800})
    owner = owner_context.new_page()
    _local_only(owner, outside)

    owner.goto(f"{live_server}/sign-up")
    _shot(owner, shots, "sign-up")
    owner.get_by_label("Your name").fill("Ann Owner")
    owner.get_by_label("Email").fill("ann@acme.test")
    owner.get_by_label("Password").fill("correct horse battery")
    owner.get_by_role("button", name="Sign up").click()
    expect(owner.get_by_role("heading", name="Create a business")).to_be_visible()

    owner.get_by_label("Name").fill("Acme Shoes")
    owner.get_by_label("Contact email").fill("contact@acme.test")
    owner.get_by_label("Website").fill("https://acme.test")
    owner.get_by_role("button", name="Create business").click()
    expect(owner.get_by_role("heading", name="Acme Shoes")).to_be_visible()

    owner.goto(f"{live_server}/account/two-factor")
    secret = owner.locator("#totp-secret").inner_text()
    _shot(owner, shots, "two-factor-enrolment")
    owner.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    owner.get_by_role("button", name="Turn on").click()
    expect(owner.locator("#recovery-codes li")).to_have_count(10)

    owner.goto(f"{live_server}/assets")
    for name in ("Shop", "Blog"):
        owner.locator("#pixel-form").get_by_label("Name").fill(name)
        owner.locator("#pixel-form").get_by_role("button", name="Create pixel").click()
        expect(owner.get_by_role("status")).to_contain_text(f"Pixel {name} created")
    too_long = "x" * 51
    owner.locator("#pixel-form input[name=name]").evaluate("e => e.removeAttribute('maxlength')")
    owner.locator("#pixel-form").get_by_label("Name").fill(too_long)
    owner.locator("#pixel-form").get_by_role("button", name="Create pixel").click()
    expect(owner.get_by_role("alert")).to_contain_text("at most 50 characters")
    _shot(owner, shots, "assets")
    shop_id = _asset_id(owner, "Shop")
    blog_id = _asset_id(owner, "Blog")
    owner.get_by_role("link", name="Shop").click()
    expect(owner.locator("#install-snippet")).to_contain_text("data-write-key")
    _shot(owner, shots, "pixel")

    owner.goto(f"{live_server}/people")
    invite = owner.locator("#invite-form")
    invite.get_by_label("Email").fill("bob@acme.test")
    invite.get_by_label("Role").select_option("employee")
    invite.locator(f'input[name="grant:{shop_id}"][value="analyse"]').check()
    invite.get_by_role("button", name="Send invitation").click()
    notice = owner.get_by_role("status").inner_text()
    link = re.search(r"(http://\S+/invitations/accept\?token=\S+)", notice)
    assert link, notice
    _shot(owner, shots, "people")

    employee_context = browser.new_context(viewport={"width": 390, "height": 844})
    employee = employee_context.new_page()
    _local_only(employee, outside)
    employee.goto(link.group(1))
    expect(employee.get_by_role("heading", name="Join Acme Shoes")).to_be_visible()
    employee.get_by_label("Your name").fill("Bob Employee")
    employee.get_by_label("Choose a password").fill("bob's long password")
    employee.get_by_role("button", name="Create account and join").click()
    expect(employee.get_by_role("heading", name="Acme Shoes")).to_be_visible()
    expect(employee.locator(".asset-list li")).to_have_count(1)
    expect(employee.locator(".asset-list")).to_contain_text("Shop")
    _shot(employee, shots, "employee-overview-mobile")

    employee.goto(f"{live_server}/assets/pixels/{shop_id}")
    expect(employee.locator("#write-key")).to_be_visible()
    response = employee.goto(f"{live_server}/assets/pixels/{blog_id}")
    assert response is not None and response.status == 404
    expect(employee.get_by_role("heading", name="Not found")).to_be_visible()
    response = employee.goto(f"{live_server}/people")
    assert response is not None and response.status == 403
    employee.goto(f"{live_server}/assets")
    expect(employee.locator("main")).not_to_contain_text("Blog")

    for path, name in (
        ("/security", "security-centre"),
        ("/audit", "audit-log"),
        ("/partners", "partners"),
        ("/business/settings", "business-settings"),
        ("/tokens", "api-tokens"),
    ):
        owner.goto(f"{live_server}{path}")
        _shot(owner, shots, name)
    owner.goto(f"{live_server}/audit")
    expect(owner.locator("table.audit")).to_contain_text("invitation.accept")
    owner.get_by_role("button", name="Sign out").click()
    owner.goto(f"{live_server}/sign-in")
    _shot(owner, shots, "sign-in")
    assert outside == []
    owner_context.close()
    employee_context.close()


def _asset_id(page: Page, name: str) -> str:
    row = page.locator("tr", has=page.get_by_role("link", name=name, exact=True))
    return row.locator("code").first.inner_text()
