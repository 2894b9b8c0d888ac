"""The audience API: define, validate, preview, refresh, sizes, overlap, export, suppress."""

from __future__ import annotations

import base64
import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap, audit_log
from accord.accounts.service import bootstrap
from accord.audiences import destinations
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.store.db import Store
from tests.audiences.test_service import Grants, ago
from tests.webhook_receiver import running_receiver

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The webhook receivers listen on loopback: the operator allows it here."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


PROS = {
    "name": "Pros",
    "slug": "pros",
    "definition": {"kind": "trait", "trait": "plan", "op": "=", "value": "pro"},
}


def collect_two_people(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    """u1 (pro, bought) and u2 (free, viewed a product), through the collection API."""
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    headers = {"Authorization": auth}
    batch = [
        {"type": "identify", "userId": "u1", "traits": {"email": "one@example.com", "plan": "pro"}},
        {
            "type": "identify",
            "userId": "u2",
            "traits": {"email": "two@example.com", "plan": "free"},
        },
        {"type": "track", "userId": "u1", "event": "Order Completed", "timestamp": ago(1)},
        {"type": "track", "userId": "u2", "event": "Product Viewed", "timestamp": ago(1)},
    ]
    assert client.post("/v1/batch", headers=headers, json={"batch": batch}).status_code == 200
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


def test_audience_lifecycle(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect_two_people(client, keys, store, settings)
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    Grants({"u1": {"marketing"}, "u2": {"marketing"}}).record(store, keys.business_id)

    listed = client.get("/api/audiences", headers=admin).json()
    assert {"purchased-30d", "low-nps", "cart-abandoners"} <= {a["slug"] for a in listed}

    bad = client.post("/api/audiences/validate", headers=admin, json={"text": 'trait plan > "a"'})
    assert bad.status_code == 400
    assert bad.json()["problems"] == [
        {"field": "definition.condition.op", "reason": "'>' cannot order a string (trait 'plan')"}
    ]
    syntax = client.post("/api/audiences/validate", headers=admin, json={"text": "did"})
    assert syntax.json()["problems"][0]["field"] == "text"
    ok = client.post(
        "/api/audiences/validate",
        headers=admin,
        json={"text": 'trait plan = "pro" or did "Product Viewed"'},
    ).json()
    assert ok["text"] == 'trait plan = "pro" or did "Product Viewed"'
    assert ok["definition"]["kind"] == "or" and ok["realtime"] is False

    created = client.post(
        "/api/audiences",
        headers=admin,
        json={
            "name": "Pros",
            "slug": "pros",
            "definition": {"kind": "trait", "trait": "plan", "op": "=", "value": "pro"},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["text"] == 'trait plan = "pro"'
    assert created.json()["realtime"] is True

    preview = client.post(
        "/api/audiences/preview", headers=admin, json={"text": 'did "Product Viewed"'}
    ).json()
    assert preview["size"] == 1 and preview["sample"][0]["traits"]["email"] == "two@example.com"

    refreshed = client.post("/api/audiences/pros/refresh", headers=admin).json()
    assert refreshed["size"] == 1
    assert len(client.post("/api/audiences/refresh", headers=admin).json()) == len(listed) + 1
    assert [p["size"] for p in client.get("/api/audiences/pros/sizes", headers=admin).json()] == [
        1,
        1,
    ]
    assert len(client.get("/api/audiences/pros/members", headers=admin).json()) == 1
    assert [
        c["change"] for c in client.get("/api/audiences/pros/changes", headers=admin).json()
    ] == ["entered"]
    overlap = client.get("/api/audiences/pros/overlap/purchased-7d", headers=admin).json()
    assert (overlap["both"], overlap["jaccard"]) == (1, 1.0)

    exported = client.get("/api/audiences/new-visitors/export/meta", headers=admin)
    assert exported.status_code == 200
    assert exported.headers["x-accord-included"] == "2"
    assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 2
    assert (
        client.post(
            "/api/suppressions",
            headers=admin,
            json={"kind": "email", "value": "TWO@example.com", "reason": "complaint"},
        ).status_code
        == 204
    )
    assert client.get("/api/suppressions", headers=admin).json()[0]["value"] == "two@example.com"
    exported = client.get("/api/audiences/new-visitors/export/meta", headers=admin)
    assert exported.headers["x-accord-included"] == "1"
    assert orjson.loads(exported.headers["x-accord-left-out"]) == {"suppressed: complaint": 1}
    csv_export = client.get("/api/audiences/new-visitors/export/csv", headers=admin)
    # The CSV export needs the same marketing consent, so it leaves out the same person.
    assert orjson.loads(csv_export.headers["x-accord-left-out"]) == {"suppressed: complaint": 1}
    # Item 15 of issue 19: every export is in the audit log, with what left and what not.
    with store.read() as conn:
        audited = conn.execute(
            select(audit_log.c.after).where(audit_log.c.action == "audience.export")
        ).scalars()
        exports = [orjson.loads(after) for after in audited]
    assert [e["destination"] for e in exports] == ["meta", "meta", "csv"]
    assert exports[-1]["left_out"] == {"suppressed: complaint": 1}
    groups = client.get("/api/audiences/new-visitors/export/interest_groups", headers=admin)
    assert groups.status_code == 400
    groups = client.get(
        "/api/audiences/new-visitors/export/interest_groups?owner=https://dsp.example&bidding_logic_url=https://dsp.example/b.js",
        headers=admin,
    )
    assert groups.json()["interestGroup"]["owner"] == "https://dsp.example"
    assert (
        client.delete("/api/suppressions/email/two@example.com", headers=admin).status_code == 204
    )

    hook = client.post(
        "/api/audiences/pros/webhooks", headers=admin, json={"url": "https://hooks.example/x"}
    )
    assert hook.status_code == 201 and hook.json()["secret"].startswith("whsec_")
    assert client.delete("/api/audiences/low-nps", headers=admin).status_code == 400
    assert client.get("/api/audiences/nope", headers=admin).status_code == 404


def test_audiences_need_an_admin_token(client: TestClient) -> None:
    assert client.get("/api/audiences").status_code == 401
    response: Any = client.post("/api/audiences", json={})
    assert response.status_code == 401


def test_dead_letters_are_listed_replayed_and_discarded_within_the_business(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect_two_people(client, keys, store, settings)
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    Grants({"u1": {"marketing"}}).record(store, keys.business_id)
    created = client.post("/api/audiences", headers=admin, json=PROS)
    assert created.status_code == 201
    with running_receiver() as receiver:
        receiver.status = 410
        hooks = [
            client.post("/api/audiences/pros/webhooks", headers=admin, json={"url": receiver.url})
            for _ in range(2)
        ]
        assert [h.status_code for h in hooks] == [201, 201]
        client.post("/api/audiences/pros/refresh", headers=admin)
        with httpx.Client(timeout=5) as http:
            runs = destinations.deliver_webhooks(store, business_id=keys.business_id, client=http)
        assert all(run.parked for run in runs)

        states = client.get("/api/audiences/pros/webhooks", headers=admin).json()
        assert [(s["failures"], s["parked"], s["url"]) for s in states] == [
            (0, 1, receiver.url),
            (0, 1, receiver.url),
        ]
        assert all("secret" not in s for s in states)
        listed = client.get("/api/audiences/pros/webhooks/dead-letters", headers=admin).json()
        assert [(d["status"], d["changes"], d["erasures"]) for d in listed] == [
            ("parked", 1, 0),
            ("parked", 1, 0),
        ]
        first, second = (d["id"] for d in listed)
        base = "/api/audiences/pros/webhooks/dead-letters"

        # A reader sees them but cannot act on them.
        made = client.post(
            "/api/accounts/tokens",
            headers=admin,
            json={"name": "reader", "permissions": ["audiences.read"]},
        )
        assert made.status_code == 201, made.text
        reader = {"Authorization": f"Bearer {made.json()['token']}"}
        assert len(client.get(base, headers=reader).json()) == 2
        assert client.post(f"{base}/{first}/replay", headers=reader).status_code == 403
        assert client.post(f"{base}/{first}/discard", headers=reader).status_code == 403

        # Another business: neither its audience nor the dead letter exists for it.
        other = {"Authorization": f"Bearer {bootstrap(store, name='Other').admin_token}"}
        assert client.get(base, headers=other).status_code == 404
        assert client.post(f"{base}/{first}/replay", headers=other).status_code == 404
        client.get("/api/audiences", headers=other)  # its predefined audiences
        foreign = f"/api/audiences/purchased-30d/webhooks/dead-letters/{first}"
        assert client.post(f"{foreign}/replay", headers=other).status_code == 404
        assert client.post(f"{foreign}/discard", headers=other).status_code == 404
        assert client.get(foreign.rsplit("/", 1)[0], headers=other).json() == []
        sent = len(receiver.received)

        failed = client.post(f"{base}/{first}/replay", headers=admin)
        assert failed.status_code == 502
        assert failed.json()["code"] == "webhook_not_delivered"
        assert failed.json()["problems"] == [
            {"field": "webhook", "reason": "refused with HTTP 410"}
        ]
        receiver.status = 200
        replayed = client.post(f"{base}/{first}/replay", headers=admin)
        assert replayed.status_code == 200 and replayed.json()["status"] == "replayed"
        assert len(receiver.received) == sent + 2
        original = next(
            r
            for r in receiver.received
            if r.headers["webhook-id"].startswith(listed[0]["webhook_id"])
        )
        assert receiver.received[-1].body == original.body
        assert receiver.received[-1].headers["webhook-id"] == listed[0]["message_id"]
        assert client.post(f"{base}/{first}/replay", headers=admin).status_code == 409

        discarded = client.post(f"{base}/{second}/discard", headers=admin)
        assert discarded.status_code == 200 and discarded.json()["status"] == "discarded"
        assert client.post(f"{base}/{second}/replay", headers=admin).status_code == 409
        assert len(receiver.received) == sent + 2
    assert client.get(f"{base}?status=parked", headers=admin).json() == []
    assert [d["status"] for d in client.get(base, headers=admin).json()] == [
        "replayed",
        "discarded",
    ]
    schema = client.get("/openapi.json").json()["paths"]
    assert schema[base.replace("pros", "{audience}")]["get"]["summary"].startswith("Batches")
    assert (
        "502"
        in schema[base.replace("pros", "{audience}") + "/{dead_letter}/replay"]["post"]["responses"]
    )


def test_item_1_ssrf_audience_webhook_destination_refused_at_save(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect_two_people(client, keys, store, settings)
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    assert client.post("/api/audiences", headers=admin, json=PROS).status_code == 201
    # This module's operator allows 127.0.0.1 only: metadata and private ranges stay refused.
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://[::1]/",
    ):
        added = client.post("/api/audiences/pros/webhooks", headers=admin, json={"url": url})
        assert added.status_code == 400, added.text
        [problem] = added.json()["problems"]
        assert problem["field"] == "url" and "refused" in problem["reason"]
    assert client.get("/api/audiences/pros/webhooks", headers=admin).json() == []
