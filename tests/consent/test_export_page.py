"""The consent export on the ledger page: a purpose chosen, the same CSV as the API, a
purpose that is not the business's refused next to the field, nothing for an employee."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.consent.test_insight_pages import Seeded, seed_decisions
from tests.profiles.test_pages import employee_session
from tests.web.sessions import admin_session


def test_the_ledger_page_downloads_who_agreed_to_a_purpose(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    seed_decisions(store, keys.business_id)
    admin = admin_session(client, store, keys.business_id)
    page = admin.get("/consent/ledger")
    assert page.status_code == 200, page.text
    assert 'action="/consent/export.csv"' in page.text
    assert '<option value="marketing"' in page.text and '<option value="statistics"' in page.text

    download = admin.get("/consent/export.csv?purpose=marketing")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="consent-marketing.csv"' in download.headers["content-disposition"]
    api = client.get(
        "/api/consent/export",
        params={"purpose": "marketing"},
        headers={"Authorization": f"Bearer {keys.admin_token}"},
    )
    assert download.text == api.text
    lines = download.text.strip().splitlines()
    # A quarter of variant A's 40 visitors, three quarters of B's, and user-42.
    assert len(lines) == 1 + 10 + 30 + 1
    assert any("user-42" in line for line in lines)


def test_an_unknown_purpose_is_refused_next_to_the_field(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    seed_decisions(store, keys.business_id)
    admin = admin_session(client, store, keys.business_id)
    for asked, reason in (("", "choose a purpose"), ("shoes", "is not a purpose of yours")):
        refused = admin.get(f"/consent/export.csv?purpose={asked}")
        assert refused.status_code == 400
        assert 'id="e-purpose"' in refused.text and reason in refused.text
        assert refused.headers["content-type"].startswith("text/html")


def test_an_employee_without_consent_permission_exports_nothing(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    seeded: Seeded = seed_decisions(store, keys.business_id)
    assert seeded.decisions > 0
    client.cookies.set(SESSION_COOKIE, employee_session(store, keys.business_id)[0])
    refused = client.get("/consent/export.csv?purpose=marketing", headers={"Accept": "text/html"})
    assert refused.status_code == 403
    assert "user-42" not in refused.text
