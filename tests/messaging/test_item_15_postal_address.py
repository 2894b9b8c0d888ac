"""Item 15 of issue 19: no marketing email leaves without the sender's postal address."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from accord.accounts.models import Bootstrap, businesses
from accord.store.db import Store
from tests.web.sessions import admin_session


def test_item_15_no_postal_address_no_campaign_nor_test_send(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    with store.write() as conn:
        conn.execute(
            update(businesses).where(businesses.c.id == keys.business_id).values(address=None)
        )
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    template = client.post(
        "/api/email/templates",
        json={"name": "t", "subject": "Hi", "html": "<p>Hi</p>"},
        headers=admin,
    ).json()
    mailing = client.post("/api/email/lists", json={"name": "news"}, headers=admin).json()
    campaign = client.post(
        "/api/email/campaigns",
        json={
            "name": "c",
            "template_id": template["id"],
            "list_id": mailing["id"],
            "from_address": "news@shop.example",
        },
        headers=admin,
    ).json()
    base = f"/api/email/campaigns/{campaign['id']}"
    for path, body in (
        (f"{base}/send", None),
        (f"{base}/test", {"to": ["me@shop.example"]}),
    ):
        refused = client.post(path, json=body, headers=admin)
        assert refused.status_code == 400, (path, refused.text)
        (problem,) = refused.json()["problems"]
        assert problem["field"] == "business.address"
        assert "/business/settings" in problem["reason"], problem
    # The campaign page says why and links to where the address is set.
    session = admin_session(client, store, keys.business_id)
    page = session.get(f"/email/campaigns/{campaign['id']}").text
    assert 'id="no-postal-address"' in page and 'href="/business/settings#address"' in page
    sent = session.post(f"/email/campaigns/{campaign['id']}/send", {}, follow=True)
    assert "has no postal address" in sent.text
    # Once the address is set, the same campaign goes out.
    with store.write() as conn:
        conn.execute(
            update(businesses)
            .where(businesses.c.id == keys.business_id)
            .values(address="Via Roma 1, 20121 Milano, Italy")
        )
    assert client.post(f"{base}/send", headers=admin).status_code == 200
