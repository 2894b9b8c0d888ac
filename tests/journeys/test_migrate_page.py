"""Moving people from an older journey version from the journey page: how many are shown,
a confirmation, refusals next to the field with nothing moved, and no move without the task."""

from __future__ import annotations

import copy

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.journeys import service
from accord.journeys.models import journey_runs
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.journeys.helpers import ABANDONED_CART
from tests.profiles.test_pages import employee_session
from tests.web.sessions import admin_session

API = "/api/journeys/cart"


def _two_versions(client: TestClient, store: Store, keys: Bootstrap, people: int) -> None:
    """The cart journey with `people` waiting in version 1, then a version 2 whose wait
    node is renamed `wait_paid`."""
    auth = {"Authorization": f"Bearer {keys.admin_token}"}
    body = {"key": "cart", "name": "Abandoned cart", "definition": ABANDONED_CART}
    assert client.post("/api/journeys", json=body, headers=auth).status_code == 201
    with store.write() as conn:
        journey_id, _ = service.definition_of(conn, business_id=keys.business_id, key="cart")
        now = utcnow()
        for n in range(people):
            conn.execute(
                insert(journey_runs).values(
                    id=f"run-{n}",
                    business_id=keys.business_id,
                    journey_id=journey_id,
                    version=1,
                    profile_id=f"prof-{n}",
                    entry_key=f"cart-{n}",
                    node="wait_order",
                    status="active",
                    context="{}",
                    entered_at=now,
                    updated_at=now,
                )
            )
    second = copy.deepcopy(ABANDONED_CART)
    second["start"] = "wait_paid"
    second["nodes"]["wait_paid"] = second["nodes"].pop("wait_order")
    published = client.put(f"{API}/definition", json={"definition": second}, headers=auth)
    assert published.status_code == 200, published.text


def _versions(store: Store) -> list[tuple[int, str]]:
    with store.read() as conn:
        rows = conn.execute(
            select(journey_runs.c.version, journey_runs.c.node).order_by(journey_runs.c.id)
        ).all()
    return [(r.version, r.node) for r in rows]


def test_people_on_an_older_version_are_moved_after_confirmation(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    _two_versions(client, store, keys, people=3)
    admin = admin_session(client, store, keys.business_id)
    page = admin.get("/journeys/cart")
    assert page.status_code == 200, page.text
    assert 'id="older-1">version 1: 3 people<' in page.text and 'id="migrate-form"' in page.text

    unmapped = admin.post(
        "/journeys/cart/migrate", {"from_version": "1", "node_map": "", "confirm": "yes"}
    )
    assert unmapped.status_code == 400
    assert 'id="e-node_map"' in unmapped.text and "node_map.wait_order" in unmapped.text
    for form, field in (
        ({"from_version": "1", "node_map": "wait_order = wait_paid"}, "confirm"),
        ({"from_version": "1", "node_map": "wait_order", "confirm": "yes"}, "node_map"),
        (
            {"from_version": "", "node_map": "wait_order = wait_paid", "confirm": "yes"},
            "from_version",
        ),
    ):
        refused = admin.post("/journeys/cart/migrate", form)
        assert refused.status_code == 400, form
        assert f'id="e-{field}"' in refused.text
        assert form["node_map"] in refused.text
    assert _versions(store) == [(1, "wait_order")] * 3

    moved = admin.post(
        "/journeys/cart/migrate",
        {"from_version": "1", "node_map": "wait_order = wait_paid", "confirm": "yes"},
        follow=True,
    )
    assert moved.status_code == 200
    assert "3 people moved from version 1 to the current version" in moved.text
    assert _versions(store) == [(2, "wait_paid")] * 3
    assert 'id="migrate-form"' not in moved.text


def test_an_employee_without_the_task_moves_nobody(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    _two_versions(client, store, keys, people=2)
    session, csrf = employee_session(store, keys.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    refused = client.post(
        "/journeys/cart/migrate",
        data={
            "from_version": "1",
            "node_map": "wait_order = wait_paid",
            "confirm": "yes",
            "csrf_token": csrf,
        },
        headers={"Accept": "text/html"},
    )
    assert refused.status_code in (403, 404)
    assert _versions(store) == [(1, "wait_order")] * 2
