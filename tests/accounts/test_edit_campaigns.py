"""Ad campaigns edited from the assets page → ad account → campaign, and by
`PATCH /api/accounts/ad-accounts/{id}/campaigns/{id}`, with the checks of creating one."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts import service
from accord.accounts.models import campaigns
from accord.store.db import Store
from tests.accounts.test_edit_assets import audit_actions, employee
from tests.accounts.ui import Browser, create_business, sign_up


def ad_account(browser: Browser, name: str = "EU ads", limit: str = "1000.00") -> str:
    page = browser.submit(
        "/assets",
        "/assets/ad-accounts",
        {"name": name, "currency": "EUR", "timezone": "Europe/Paris", "spend_limit": limit},
    )
    found = re.search(rf'href="/assets/ad-accounts/(ad_[0-9a-z_]+)">{re.escape(name)}<', page.text)
    assert found, page.text
    return found.group(1)


def new_campaign(browser: Browser, account_id: str, name: str = "Spring") -> str:
    where = f"/assets/ad-accounts/{account_id}"
    page = browser.submit(
        where,
        f"{where}/campaigns",
        {"name": name, "objective": "leads", "pricing": "CPL", "budget": "100", "status": "draft"},
    )
    found = re.search(rf'href="{where}/campaigns/(cmp_[0-9a-f]+)">{re.escape(name)}<', page.text)
    assert found, page.text
    return found.group(1)


def row(store: Store, campaign_id: str) -> dict[str, Any]:
    with store.read() as conn:
        return dict(
            conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one()._mapping
        )


def error_of(page: str, field: str) -> str:
    found = re.search(rf'<p class="error-text" id="e-{field}">([^<]*)</p>', page)
    assert found, f"no error next to {field}"
    return html.unescape(found.group(1))


FORM = {
    "name": "Spring sale",
    "budget": "500.00",
    "starts_at": "2026-05-01T09:00",
    "ends_at": "2026-05-31T18:00",
    "status": "active",
}


def test_a_campaign_is_changed_on_its_page_in_the_ad_accounts_time_zone(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    account_id = ad_account(browser)
    campaign_id = new_campaign(browser, account_id)
    page = f"/assets/ad-accounts/{account_id}/campaigns/{campaign_id}"
    assert 'id="campaign-form"' in browser.get(page).text

    saved = browser.submit(page, page, FORM)
    assert saved.status_code == 200 and "Campaign Spring sale saved" in saved.text
    stored = row(store, campaign_id)
    assert stored["name"] == "Spring sale" and stored["budget_minor"] == 50_000
    assert stored["status"] == "active"
    # 09:00 in Paris in May is 07:00 UTC; the page shows it back in Paris time.
    assert stored["starts_at"] == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)
    assert stored["ends_at"] == datetime(2026, 5, 31, 16, 0, tzinfo=UTC)
    assert 'value="2026-05-01T09:00"' in saved.text
    with store.read() as conn:
        entry = service.audit_entries(conn, business_id=business_id, action="campaign.update")[0]
    assert entry.before["budget_minor"] == 10_000 and entry.after["budget_minor"] == 50_000
    assert entry.after["campaign_id"] == campaign_id


def test_bad_changes_show_next_to_their_field_keep_what_was_typed_and_save_nothing(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    account_id = ad_account(browser, limit="1000.00")
    campaign_id = new_campaign(browser, account_id)
    page = f"/assets/ad-accounts/{account_id}/campaigns/{campaign_id}"
    before = row(store, campaign_id)
    cases = [
        ({"budget": "1500.50"}, "budget_minor", "spend limit of 1,000.00 EUR", 'value="1500.50"'),
        ({"budget": "inf"}, "budget_minor", "a number such as 250.00", 'value="inf"'),
        ({"budget": "lots"}, "budget_minor", "a number such as 250.00", 'value="lots"'),
        ({"budget": "-5"}, "budget_minor", "must not be negative", 'value="-5"'),
        ({"ends_at": "2026-04-01T09:00"}, "ends_at", "after starts_at", "2026-04-01T09:00"),
        ({"starts_at": "someday"}, "starts_at", "a date and time", 'value="someday"'),
        ({"name": "  "}, "name", "give it a name", 'id="c-name"'),
        ({"status": "deleted"}, "status", "one of draft, active", 'id="c-status"'),
    ]
    for change, field, reason, kept in cases:
        refused = browser.submit(page, page, {**FORM, **change})
        assert refused.status_code == 400, change
        assert reason in error_of(refused.text, field), change
        assert kept in refused.text and "Nothing was saved" in refused.text
        assert row(store, campaign_id) == before, change
    assert audit_actions(store, business_id, "campaign.update") == []

    browser.submit(page, page, {**FORM, "status": "ended"})
    for status in ("active", "draft"):
        ended = browser.submit(page, page, {**FORM, "status": status})
        assert "an ended campaign stays ended" in error_of(ended.text, "status")
    assert row(store, campaign_id)["status"] == "ended"


def test_the_api_changes_a_campaign_with_the_same_checks(client: TestClient, store: Store) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    theirs = ad_account(browser)
    their_campaign = new_campaign(browser, theirs)
    keys = service.bootstrap(store, name="Token Shop")
    api = {"authorization": f"Bearer {keys.admin_token}"}
    account = client.post(
        "/api/accounts/ad-accounts",
        json={
            "name": "US",
            "currency": "USD",
            "timezone": "America/New_York",
            "spend_limit_minor": 90_000,
        },
        headers=api,
    ).json()
    base = f"/api/accounts/ad-accounts/{account['id']}/campaigns"
    made = client.post(
        base,
        json={"name": "Fall", "objective": "awareness", "pricing": "CPM", "budget_minor": 1_000},
        headers=api,
    ).json()
    where = f"{base}/{made['id']}"

    changed = client.patch(
        where,
        json={"budget_minor": 90_000, "status": "paused", "starts_at": "2026-09-01T00:00:00Z"},
        headers=api,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["budget_minor"] == 90_000 and body["status"] == "paused"
    assert body["name"] == "Fall" and body["starts_at"].startswith("2026-09-01T00:00:00")

    before = row(store, made["id"])
    over = client.patch(where, json={"budget_minor": 90_001}, headers=api)
    assert over.status_code == 400 and over.json()["problems"][0]["field"] == "budget_minor"
    backwards = client.patch(where, json={"ends_at": "2026-08-01T00:00:00Z"}, headers=api)
    assert backwards.status_code == 400
    assert backwards.json()["problems"][0]["field"] == "ends_at"
    naive = client.patch(where, json={"ends_at": "2026-10-01T00:00:00"}, headers=api)
    assert naive.status_code == 400
    assert row(store, made["id"]) == before
    # Another business's campaign, by its own ad account or ours, is not found.
    before_theirs = row(store, their_campaign)
    for path in (
        f"/api/accounts/ad-accounts/{theirs}/campaigns/{their_campaign}",
        f"{base}/{their_campaign}",
    ):
        assert client.patch(path, json={"name": "Mine"}, headers=api).status_code == 404
    assert row(store, their_campaign) == before_theirs
    documented = client.get("/openapi.json").json()["paths"]
    assert (
        "patch" in documented["/api/accounts/ad-accounts/{ad_account_id}/campaigns/{campaign_id}"]
    )


def test_an_employee_without_the_task_changes_no_campaign(client: TestClient, store: Store) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    account_id = ad_account(browser)
    other_account = ad_account(browser, "Other ads")
    campaign_id = new_campaign(browser, account_id)
    page = f"/assets/ad-accounts/{account_id}/campaigns/{campaign_id}"
    api = f"/api/accounts/ad-accounts/{account_id}/campaigns/{campaign_id}"
    before = row(store, campaign_id)
    reader, reads = employee(client, store, business_id, "bob@acme.test", {account_id: ["analyse"]})
    shown = reader.get(page, headers=reads)
    assert shown.status_code == 200 and 'id="campaign-form"' not in shown.text
    # Advertising on another ad account grants ads.manage, but not on this one.
    elsewhere, other = employee(
        client, store, business_id, "eve@acme.test", {other_account: ["advertise"]}
    )
    for who, headers in ((reader, reads), (elsewhere, other)):
        posted = who.post(page, data={**FORM, "budget": "1"}, headers=headers)
        patched = who.patch(api, json={"budget_minor": 1}, headers=headers)
        assert posted.status_code in (403, 404) and patched.status_code in (403, 404)
    assert row(store, campaign_id) == before


def test_item_15_budget_error_in_currency_units_not_cents(client: TestClient, store: Store) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    account_id = ad_account(browser, limit="1000.00")
    where = f"/assets/ad-accounts/{account_id}"
    refused = browser.submit(
        where,
        f"{where}/campaigns",
        {"name": "Big", "objective": "leads", "pricing": "CPL", "budget": "1500"},
    )
    assert "spend limit of 1,000.00 EUR" in refused.text and "100000" not in refused.text
    assert 'href="/assets/ad-accounts/{account_id}/campaigns/cmp_' not in refused.text
    keys = service.bootstrap(store, name="Token Shop")
    api = {"authorization": f"Bearer {keys.admin_token}"}
    account = client.post(
        "/api/accounts/ad-accounts",
        json={"name": "US", "currency": "USD", "timezone": "UTC", "spend_limit_minor": 90_000},
        headers=api,
    ).json()
    refused_api = client.post(
        f"/api/accounts/ad-accounts/{account['id']}/campaigns",
        json={"name": "Big", "objective": "leads", "pricing": "CPL", "budget_minor": 150_000},
        headers=api,
    )
    assert refused_api.status_code == 400 and "spend limit of 900.00 USD" in refused_api.text


def test_item_15_advertise_only_employee_sees_the_ad_account_they_advertise_in(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    account_id = ad_account(browser)
    other_account = ad_account(browser, "Other ads")
    campaign_id = new_campaign(browser, account_id)
    advertiser, headers = employee(
        client, store, business_id, "eve@acme.test", {account_id: ["advertise"]}
    )
    listed = advertiser.get("/assets", headers=headers)
    assert listed.status_code == 200
    assert f"/assets/ad-accounts/{account_id}" in listed.text
    assert f"/assets/ad-accounts/{other_account}" not in listed.text
    page = advertiser.get(f"/assets/ad-accounts/{account_id}", headers=headers)
    assert page.status_code == 200 and "Spring" in page.text
    shown = advertiser.get(
        f"/assets/ad-accounts/{account_id}/campaigns/{campaign_id}", headers=headers
    )
    assert shown.status_code == 200 and 'id="campaign-form"' in shown.text
    listed_api = advertiser.get(
        f"/api/accounts/ad-accounts/{account_id}/campaigns", headers=headers
    )
    assert listed_api.status_code == 200 and [c["id"] for c in listed_api.json()] == [campaign_id]
    assert advertiser.get(f"/assets/ad-accounts/{other_account}", headers=headers).status_code in (
        403,
        404,
    )
