"""Issue 19, item 4: a task on one asset opens that asset, never the business's data.

An employee with `analyse` on one pixel used to read profiles fed by every pixel, leads,
the consent export and journeys, because tasks held on any asset were added up into
business-wide permissions. Now those routes need a business role."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accord.accounts import people, permissions, service, team
from accord.accounts.models import Actor, Bootstrap
from accord.accounts.service import Access
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE

SYSTEM = Actor(kind="system", label="test")
BUSINESS_WIDE = [
    "/api/profiles?email=ann@acme.test",
    "/api/leads/leads?email=ann@acme.test",
    "/api/leads/funnel",
    "/api/consent/export?purpose=marketing",
    "/api/consent/purposes",
    "/api/journeys",
    "/api/audiences",
    "/api/reports/volume",
]


def _employee_on(store: Store, keys: Bootstrap, asset_id: str, tasks: list[str]) -> str:
    with store.write() as conn:
        person = people.sign_up(
            conn, email="emp@acme.test", name="Emp", password="correct horse battery"
        )
        conn.execute(
            service.memberships.insert().values(
                business_id=keys.business_id,
                person_id=person.id,
                role="employee",
                created_at=service.utcnow(),
            )
        )
        team.set_grants(
            conn,
            business_id=keys.business_id,
            person_id=person.id,
            grants={asset_id: tasks},
            by=Access(business_id=keys.business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        return people.start_session(conn, person_id=person.id, stage="full", ip=None, hours=1)


def test_item_4_tasks_on_one_pixel_read_no_business_wide_data(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    mine = client.post("/api/accounts/pixels", json={"name": "Mine"}, headers=admin).json()["id"]
    other = client.post("/api/accounts/pixels", json={"name": "Other"}, headers=admin).json()["id"]
    client.cookies.set(SESSION_COOKIE, _employee_on(store, keys, mine, ["manage"]))
    for path in BUSINESS_WIDE:
        response = client.get(path)
        assert response.status_code == 403, (path, response.status_code, response.text)
    # The asset held is open; another asset of the business is not even visible.
    assert client.get(f"/api/accounts/assets/{mine}").status_code == 200
    assert client.get(f"/api/accounts/assets/{other}").status_code == 404
    listed = {a["id"] for a in client.get("/api/accounts/assets").json()}
    assert mine in listed and other not in listed
    # The navigation offers none of the business-wide areas either.
    page = client.get("/app", headers={"accept": "text/html"})
    assert page.status_code == 200
    for label in ('href="/profiles"', 'href="/leads"', 'href="/journeys"', 'href="/consent"'):
        assert label not in page.text, label
    # The admin, with the business role, reads them.
    client.cookies.clear()
    assert client.get("/api/journeys", headers=admin).status_code == 200


def test_item_4_tasks_grant_only_per_asset_permissions() -> None:
    for task, granted in permissions.TASKS.items():
        assert granted <= permissions.PER_ASSET, task
    for permission in set(permissions.PERMISSIONS) - permissions.PER_ASSET:
        assert not permissions.allowed("employee", list(permissions.TASKS), permission)
