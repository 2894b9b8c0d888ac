"""Acceptance in headless Chromium: landing page → double opt-in → coupon → campaign."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.store.db import open_store
from accord.store.migrate import upgrade
from accord.web.app import create_app
from tests.conftest import with_postal_address
from tests.live_app import free_port, serving
from tests.smtp_sink import SmtpSink, body_text, running_sink

pytestmark = pytest.mark.browser


@dataclass
class Site:
    base: str
    sink: SmtpSink
    admin: dict[str, str]
    list_id: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with ExitStack() as stack:
        sink = stack.enter_context(running_sink())
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            data_dir=tmp_path,
            sqlite_synchronous="NORMAL",
            smtp_port=sink.port,
            public_url=base,
            email_rate_per_second=0,
            email_min_human_seconds=0,
            form_rate_limit=6,
        )
        upgrade(settings.resolved_database_url())
        store = open_store(settings.resolved_database_url())
        keys = bootstrap(store, name="Outdoor Shop")
        # Campaigns go out only from a business with a postal address (CAN-SPAM).
        with_postal_address(store, keys.business_id)
        store.dispose()
        stack.enter_context(serving(create_app(settings), port=port))
        admin = {"Authorization": f"Bearer {keys.admin_token}"}
        pool = httpx.post(
            f"{base}/api/leads/coupon-pools",
            headers=admin,
            json={"name": "welcome", "codes": ["WELCOME-7Q2", "WELCOME-8R3"]},
        )
        mailing = httpx.post(f"{base}/api/email/lists", headers=admin, json={"name": "news"})
        form = httpx.post(
            f"{base}/api/leads/forms",
            headers=admin,
            json={
                "slug": "welcome",
                "title": {"en": "10% off your first order", "it": "10% sul primo ordine"},
                "welcome": {"en": "Join our list and get a coupon."},
                "fields": [
                    {"key": "email", "kind": "email", "label": {"en": "Email"}},
                    {"key": "name", "kind": "name", "label": {"en": "Name"}, "required": True},
                    {
                        "key": "sport",
                        "kind": "choice",
                        "label": {"en": "Favourite sport"},
                        "options": ["Hiking", "Climbing"],
                        "required": True,
                    },
                ],
                "consents": [
                    {
                        "purpose": "marketing",
                        "label": {"en": "Email me offers", "it": "Offerte via email"},
                    }
                ],
                "privacy_policy_url": "https://shop.example/privacy",
                "next_url": "https://shop.example/",
                "from_address": "hello@shop.example",
                "coupon_pool_id": pool.json()["id"],
                "list_id": mailing.json()["id"],
                "languages": ["en", "it"],
            },
        )
        assert form.status_code == 201, form.text
        yield Site(base=base, sink=sink, admin=admin, list_id=mailing.json()["id"])


def _no_outside_requests(route: Route) -> None:
    if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        route.abort()


def test_landing_page_to_coupon_to_campaign(site: Site, browser: Browser) -> None:
    page = browser.new_page(locale="en-GB", viewport={"width": 390, "height": 844})
    page.route("**/*", _no_outside_requests)
    page.goto(f"{site.base}/l/welcome?utm_source=instagram")
    expect(page.get_by_role("heading", name="10% off your first order")).to_be_visible()
    consent = page.get_by_label("Email me offers")
    expect(consent).not_to_be_checked()

    # A bad submission: invalid email and a missing answer, explained on the page.
    page.get_by_role("textbox", name="Email", exact=True).fill("ada@")
    page.get_by_role("textbox", name="Name", exact=True).fill("Ada")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("email")
    expect(alert).to_contain_text("sport")
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Ada")

    page.get_by_role("textbox", name="Email", exact=True).fill("ada@people.example")
    page.get_by_role("combobox", name="Favourite sport").select_option("Climbing")
    page.get_by_label("Email me offers").check()
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#check-inbox")).to_be_visible()

    confirmation = site.sink.wait_for("ada@people.example")
    link = re.search(r"(http://127\.0\.0\.1:\d+/l/confirm/\S+)", body_text(confirmation))
    assert link
    page.goto(link.group(1))
    expect(page.locator("#coupon")).to_have_text("WELCOME-7Q2")
    expect(page.get_by_role("link", name="Continue")).to_have_attribute(
        "href", "https://shop.example/"
    )

    # Another visitor who does not tick the consent, and one who never confirms.
    for email, tick in (("bo@people.example", False), ("cy@people.example", True)):
        page.goto(f"{site.base}/l/welcome")
        page.get_by_role("textbox", name="Email", exact=True).fill(email)
        page.get_by_role("textbox", name="Name", exact=True).fill(email[:2])
        page.get_by_role("combobox", name="Favourite sport").select_option("Hiking")
        if tick:
            page.get_by_label("Email me offers").check()
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#check-inbox")).to_be_visible()
    bo_link = re.search(
        r"(http://\S+/l/confirm/\S+)", body_text(site.sink.wait_for("bo@people.example"))
    )
    assert bo_link
    page.goto(bo_link.group(1))
    expect(page.locator("#coupon")).to_have_text("WELCOME-8R3")

    # The lead, its consent and its coupon are in Accord.
    lead = httpx.get(
        f"{site.base}/api/leads/leads", params={"email": "ada@people.example"}, headers=site.admin
    ).json()
    assert lead["status"] == "confirmed" and lead["name"] == "Ada"
    assert lead["answers"] == {"sport": "Climbing"} and lead["utm"] == {"utm_source": "instagram"}
    [consent] = lead["consents"]
    assert consent["purpose"] == "marketing" and consent["status"] == "recorded"
    assert consent["form_version"] == 1 and consent["confirmation_message_id"]
    assert consent["confirmed_at"] and consent["ip"] == "127.0.0.1"
    assert [c["code"] for c in lead["coupons"]] == ["WELCOME-7Q2"]
    members = httpx.post(
        f"{site.base}/api/email/lists/{site.list_id}/members",
        headers=site.admin,
        json={"email": "dee@people.example"},
    )
    assert members.status_code == 204

    template = httpx.post(
        f"{site.base}/api/email/templates",
        headers=site.admin,
        json={
            "name": "news",
            "subject": "New routes, {{ contact.name | default('friend') }}",
            "html": '<p>Hello</p><a href="https://shop.example/routes">See the routes</a>',
        },
    ).json()["id"]
    campaign = httpx.post(
        f"{site.base}/api/email/campaigns",
        headers=site.admin,
        json={
            "name": "routes",
            "template_id": template,
            "list_id": site.list_id,
            "from_address": "news@shop.example",
        },
    ).json()["id"]
    site.sink.messages.clear()
    report = httpx.post(
        f"{site.base}/api/email/campaigns/{campaign}/send", headers=site.admin, timeout=30
    ).json()
    assert report["sent"] == 1
    assert [r.envelope_to for r in site.sink.messages] == [["ada@people.example"]]
    received = site.sink.messages[0].message
    assert received["Subject"] == "New routes, Ada"

    # The tracked link leads to the page; a tampered one gets a clear error.
    html = body_text(received, "html")
    click = re.search(r'href="(http://127\.0\.0\.1:\d+/e/c/[^"]+)"', html)
    assert click
    followed = httpx.get(click.group(1), headers={"User-Agent": "Mozilla/5.0 Firefox/130"})
    assert followed.status_code == 302
    assert followed.headers["location"] == "https://shop.example/routes"
    tampered = page.goto(click.group(1)[:-3] + "xyz")
    assert tampered is not None and tampered.status == 400
    # A browser gets the error as a page, with the reason in words.
    expect(page.locator("body")).to_contain_text("the link is not valid")

    # One-click unsubscribe from the received message's headers, as a mailbox does it.
    target = received["List-Unsubscribe"].strip("<>")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    done = httpx.post(
        target,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    page.goto(target)
    expect(page.locator("#unsubscribed")).to_be_visible()
    again = httpx.post(
        f"{site.base}/api/email/campaigns",
        headers=site.admin,
        json={
            "name": "routes 2",
            "template_id": template,
            "list_id": site.list_id,
            "from_address": "news@shop.example",
        },
    ).json()["id"]
    second = httpx.post(
        f"{site.base}/api/email/campaigns/{again}/send", headers=site.admin, timeout=30
    ).json()
    assert second["sent"] == 0
    assert second["skipped"] == {"unsubscribed": 1, "no_consent": 2}
    page.close()
