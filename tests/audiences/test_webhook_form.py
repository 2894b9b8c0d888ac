"""Adding a webhook destination from the audience page: the secret shown once, refusals next
to the field with what was typed, and nothing for an employee without the task."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.audiences import destinations
from accord.audiences.models import WebhookView
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.audiences.test_api import collect_two_people
from tests.audiences.test_pages import _save_pros
from tests.profiles.test_pages import employee_session
from tests.web.sessions import admin_session

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def _webhooks(store: Store, business_id: str) -> list[WebhookView]:
    with store.read() as conn:
        return destinations.list_webhooks(conn, business_id=business_id, audience="pros")


def test_a_destination_is_added_and_its_secret_shown_once(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect_two_people(client, keys, store, settings)
    _save_pros(client, keys)
    admin = admin_session(client, store, keys.business_id)
    page = admin.get("/audiences/pros")
    assert 'id="webhook-form"' in page.text and "No webhook destination yet." in page.text
    added = admin.post(
        "/audiences/pros/webhooks", {"url": "https://crm.example/hook", "purpose": "marketing"}
    )
    assert added.status_code == 200, added.text
    secret = added.text.split('<code id="webhook-secret">', 1)[1].split("<", 1)[0]
    assert len(secret) >= 20
    (webhook,) = _webhooks(store, keys.business_id)
    assert (webhook.url, webhook.purpose) == ("https://crm.example/hook", "marketing")
    again = admin.get("/audiences/pros").text
    assert "https://crm.example/hook" in again
    assert secret not in again and 'id="webhook-secret"' not in again


def test_bad_destinations_are_refused_next_to_the_field(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect_two_people(client, keys, store, settings)
    _save_pros(client, keys)
    admin = admin_session(client, store, keys.business_id)
    for form, field in (
        ({"url": "ftp://crm.example/hook", "purpose": "marketing"}, "url"),
        ({"url": "", "purpose": "marketing"}, "url"),
        ({"url": "https://crm.example/hook", "purpose": ""}, "purpose"),
        # An address Accord may not call: the outbound guard refuses it at save time.
        ({"url": "http://169.254.169.254/latest", "purpose": "marketing"}, "url"),
    ):
        refused = admin.post("/audiences/pros/webhooks", form)
        assert refused.status_code == 400, (form, refused.text)
        assert f'id="e-{field}"' in refused.text
        assert f'value="{form["url"]}"' in refused.text
        assert 'id="webhook-secret"' not in refused.text
    assert admin.post("/audiences/nope/webhooks", {"url": "https://a.example/x"}).status_code == 404
    assert _webhooks(store, keys.business_id) == []


def test_an_employee_without_the_task_adds_nothing(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect_two_people(client, keys, store, settings)
    _save_pros(client, keys)
    session, csrf = employee_session(store, keys.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    refused = client.post(
        "/audiences/pros/webhooks",
        data={"url": "https://crm.example/hook", "purpose": "marketing", "csrf_token": csrf},
        headers={"Accept": "text/html"},
    )
    assert refused.status_code in (403, 404)
    assert _webhooks(store, keys.business_id) == []
