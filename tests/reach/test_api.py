"""Reach through the HTTP API, on SQLite and PostgreSQL: the one suppression list, phones
compared in E.164 whichever way they were written, and the decision with its reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.process.email import record_in_ledger
from accord.process.journeys import environment
from accord.process.worker import drain
from accord.store.db import Store

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


NATIONAL, INTERNATIONAL = "06 12 34 56 78", "+33 6 12 34 56 78"


def _person(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings, phone: str
) -> str:
    """A profile known by its phone (as identity stores it), with marketing consent."""
    with store.write() as conn:
        record_in_ledger(
            conn,
            business_id=keys.business_id,
            anonymous_id="anon-ann",
            user_id=None,
            purposes={"marketing": True},
            source="api",
            evidence={},
        )
    identify = {"anonymousId": "anon-ann", "traits": {"phone": phone, "email": "ann@example.org"}}
    assert client.post("/v1/identify", json=identify, auth=(keys.write_key, "")).status_code == 200
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    found = client.get("/api/profiles?anonymous_id=anon-ann", headers=admin).json()
    phones = [i["value"] for i in found["identifiers"] if i["kind"] == "phone"]
    assert phones == ["+33612345678"]
    return str(found["id"])


@pytest.mark.parametrize(
    ("on_profile", "suppressed"), [(INTERNATIONAL, NATIONAL), (NATIONAL, INTERNATIONAL)]
)
def test_a_suppressed_phone_is_refused_whichever_form_it_was_written_in(
    client: TestClient,
    keys: Bootstrap,
    store: Store,
    settings: Settings,
    on_profile: str,
    suppressed: str,
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    rules = client.get("/api/identity/rules", headers=admin).json()
    changed = client.put(
        "/api/identity/rules", headers=admin, json={**rules, "default_phone_region": "FR"}
    )
    assert changed.status_code == 200, changed.text
    profile_id = _person(client, keys, store, settings, on_profile)

    def sms() -> dict[str, object]:
        response = client.get(f"/api/reach?channel=sms&profile_id={profile_id}", headers=admin)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    assert sms()["allowed"] is True
    posted = client.post(
        "/api/suppressions", headers=admin, json={"kind": "phone", "value": suppressed}
    )
    assert posted.status_code == 204, posted.text
    listed = client.get("/api/suppressions", headers=admin).json()
    assert [(s["kind"], s["value"]) for s in listed] == [("phone", "+33612345678")]
    assert sms() == {
        "channel": "sms",
        "purpose": "marketing",
        "allowed": False,
        "reason": "suppressed",
        "detail": "manual",
        "profile_id": profile_id,
    }
    # Asked by the phone itself, in the other form, the answer is the same.
    by_phone = client.get(
        "/api/reach", headers=admin, params={"channel": "whatsapp", "phone": on_profile}
    ).json()
    assert (by_phone["reason"], by_phone["profile_id"]) == ("suppressed", profile_id)
    # A journey's SMS step skips the person.
    with store.read() as conn:
        step = environment().reachability.check(
            conn, business_id=keys.business_id, profile_id=profile_id, channel="sms"
        )
    assert (step.allowed, step.reason) == (False, "suppressed (manual)")
    # An audience export leaves the person out too.
    created = client.post(
        "/api/audiences",
        headers=admin,
        json={"name": "Known by phone", "slug": "with-phone", "text": "trait phone exists"},
    )
    assert created.status_code == 201, created.text
    assert client.post("/api/audiences/with-phone/refresh", headers=admin).status_code == 200
    export = client.get("/api/audiences/with-phone/export/csv", headers=admin)
    assert export.headers["x-accord-included"] == "0"
    assert export.headers["x-accord-left-out"] == '{"suppressed: manual":1}'


def test_reach_needs_a_person(client: TestClient, keys: Bootstrap) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    assert client.get("/api/reach?channel=sms", headers=admin).status_code == 400
    bad = client.post("/api/suppressions", headers=admin, json={"kind": "phone", "value": "12"})
    assert bad.status_code == 400
