"""Issue 19, item 5: nobody grants more than they hold (roles, grants, invitations,
tokens, partner shares)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from accord.accounts import ceiling, people, service, team
from accord.accounts.models import Actor, Bootstrap, InvitationIn
from accord.accounts.service import Access
from accord.core.errors import Forbidden
from accord.store.db import Store

SYSTEM = Actor(kind="system", label="test")


def _employee(store: Store, business_id: str, email: str = "emp@acme.test") -> str:
    with store.write() as conn:
        person = people.sign_up(conn, email=email, name="Emp", password="correct horse battery")
        conn.execute(
            service.memberships.insert().values(
                business_id=business_id,
                person_id=person.id,
                role="employee",
                created_at=service.utcnow(),
            )
        )
    return person.id


def _token(client: TestClient, admin: dict[str, str], scope: list[str]) -> dict[str, str]:
    made = client.post(
        "/api/accounts/tokens", json={"name": "limited", "permissions": scope}, headers=admin
    )
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def test_item_5_limited_token_cannot_promote_to_admin_or_invite_admins(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    person_id = _employee(store, keys.business_id)
    pixel = client.post("/api/accounts/pixels", json={"name": "Shop"}, headers=admin)
    assert pixel.status_code == 201, pixel.text
    pixel_id = pixel.json()["id"]
    limited = _token(client, admin, ["accounts.manage", "accounts.read"])

    promote = client.put(
        f"/api/accounts/people/{person_id}/role", json={"role": "admin"}, headers=limited
    )
    assert promote.status_code == 403, promote.text
    invite = client.post(
        "/api/accounts/invitations",
        json={"email": "eve@evil.test", "role": "admin"},
        headers=limited,
    )
    assert invite.status_code == 403, invite.text
    grant = client.put(
        f"/api/accounts/people/{person_id}/grants",
        json={"grants": {pixel_id: ["manage"]}},
        headers=limited,
    )
    assert grant.status_code == 403, grant.text
    invite_with_tasks = client.post(
        "/api/accounts/invitations",
        json={"email": "eve@evil.test", "role": "employee", "grants": {pixel_id: ["analyse"]}},
        headers=limited,
    )
    assert invite_with_tasks.status_code == 403, invite_with_tasks.text
    wider_token = client.post(
        "/api/accounts/tokens",
        json={"name": "wider", "permissions": ["profiles.read"]},
        headers=limited,
    )
    assert wider_token.status_code == 403, wider_token.text

    # Nothing changed.
    people_now = {
        p["person_id"]: p for p in client.get("/api/accounts/people", headers=admin).json()
    }
    assert people_now[person_id]["role"] == "employee"
    assert people_now[person_id]["grants"] == {}
    assert client.get("/api/accounts/invitations", headers=admin).json() == []

    # The full admin token may do all of it.
    assert (
        client.put(
            f"/api/accounts/people/{person_id}/role", json={"role": "admin"}, headers=admin
        ).status_code
        == 200
    )


def test_item_5_limited_token_cannot_demote_or_remove_an_admin(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    person_id = _employee(store, keys.business_id)
    client.put(f"/api/accounts/people/{person_id}/role", json={"role": "admin"}, headers=admin)
    limited = _token(client, admin, ["accounts.manage", "accounts.read"])
    demote = client.put(
        f"/api/accounts/people/{person_id}/role", json={"role": "employee"}, headers=limited
    )
    assert demote.status_code == 403, demote.text
    remove = client.delete(f"/api/accounts/people/{person_id}", headers=limited)
    assert remove.status_code == 403, remove.text
    with store.read() as conn:
        assert service.role_of(conn, business_id=keys.business_id, person_id=person_id) == "admin"


def test_item_5_partner_share_needs_the_tasks_shared(
    store: Store, keys: Bootstrap, client: TestClient
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    pixel_id = client.post("/api/accounts/pixels", json={"name": "Shop"}, headers=admin).json()[
        "id"
    ]
    other = service.bootstrap(store, name="Agency")
    limited = _token(client, admin, ["accounts.manage", "accounts.read"])
    share = client.post(
        "/api/accounts/partners",
        json={"partner_business_id": other.business_id, "asset_id": pixel_id, "tasks": ["manage"]},
        headers=limited,
    )
    assert share.status_code == 403, share.text
    with store.read() as conn:
        given, _ = team.shares(conn, business_id=keys.business_id)
    assert given == []


def test_item_5_a_person_cannot_give_tasks_they_do_not_hold(store: Store, keys: Bootstrap) -> None:
    with store.write() as conn:
        pixel = service.register_asset(
            conn, business_id=keys.business_id, kind="pixel", name="Shop"
        )
        other = service.register_asset(
            conn, business_id=keys.business_id, kind="pixel", name="Other"
        )
    giver = _employee(store, keys.business_id, "giver@acme.test")
    root = Access(business_id=keys.business_id, role="admin")
    with store.write() as conn:
        team.set_grants(
            conn,
            business_id=keys.business_id,
            person_id=giver,
            grants={pixel: ["analyse"]},
            by=root,
            actor=SYSTEM,
            ip=None,
        )
    by_giver = Access(business_id=keys.business_id, role="employee", person_id=giver)
    with store.read() as conn:
        # Analyse on the pixel they hold: allowed; manage, or analyse elsewhere: refused.
        ceiling.check_tasks(conn, by=by_giver, grants={pixel: ["analyse"]})
        with pytest.raises(Forbidden):
            ceiling.check_tasks(conn, by=by_giver, grants={pixel: ["manage"]})
        with pytest.raises(Forbidden):
            ceiling.check_tasks(conn, by=by_giver, grants={other: ["analyse"]})
        with pytest.raises(Forbidden):
            ceiling.check_role(conn, by=by_giver, role="analyst")
    with pytest.raises(Forbidden), store.write() as conn:
        team.invite(
            conn,
            business_id=keys.business_id,
            data=InvitationIn(email="x@acme.test", role="employee", grants={pixel: ["manage"]}),
            invited_by=giver,
            days=7,
            by=by_giver,
            actor=SYSTEM,
            ip=None,
        )
    with store.read() as conn:
        assert team.list_invitations(conn, business_id=keys.business_id) == []
