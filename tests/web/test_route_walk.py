"""Every admin route and page, walked with the wrong credentials, leaks nothing of business A.

The walk reads the app's own OpenAPI document and its page routes, so routes added later
are walked without changing this test. A route counts as an admin route when one of its
dependencies is `web.auth.requires(...)`; every route is checked for leaks.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from accord.accounts import assets as asset_service
from accord.accounts import people, service, team, tokens
from accord.accounts.models import (
    Actor,
    AdAccountIn,
    Bootstrap,
    CampaignIn,
    InvitationIn,
    PartnerShareIn,
    PropertyIn,
    SocialAccountIn,
)
from accord.accounts.service import Access, bootstrap
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE

SYSTEM = Actor(kind="system", label="route walk")


@dataclass
class BusinessA:
    business_id: str
    ids: dict[str, str]  # path parameter name -> an object of business A
    markers: set[str]  # strings only business A's data contains
    employee_session: str
    employee_csrf: str


def _seed(store: Store, keys: Bootstrap) -> BusinessA:
    business_id = keys.business_id
    with store.write() as conn:
        owner = people.sign_up(conn, email="owner-a@alpha.test", name="Owner A", password="p" * 12)
        conn.execute(
            service.memberships.insert().values(
                business_id=business_id,
                person_id=owner.id,
                role="admin",
                created_at=service.utcnow(),
            )
        )
        second = asset_service.create_pixel(
            conn,
            business_id=business_id,
            name="Alpha Secret Pixel",
            kind="web",
            max_pixels=10,
            actor=SYSTEM,
            ip=None,
        )
        prop = asset_service.create_property(
            conn,
            business_id=business_id,
            data=PropertyIn(
                name="Alpha Secret Site", platform="site", address="https://alpha-secret.test"
            ),
            actor=SYSTEM,
            ip=None,
        )
        account = asset_service.create_ad_account(
            conn,
            business_id=business_id,
            data=AdAccountIn(name="Alpha Secret Ads", currency="EUR", timezone="Europe/Paris"),
            actor=SYSTEM,
            ip=None,
        )
        campaign = asset_service.create_campaign(
            conn,
            business_id=business_id,
            ad_account_id=account.id,
            data=CampaignIn(
                name="Alpha Secret Campaign", objective="leads", pricing="CPL", budget_minor=100
            ),
            actor=SYSTEM,
            ip=None,
        )
        social = asset_service.connect_social_account(
            conn,
            business_id=business_id,
            data=SocialAccountIn(
                name="Alpha Secret Page", network="instagram", page_reference="alpha.secret"
            ),
            actor=SYSTEM,
            ip=None,
        )
        invitation = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email="invitee-a@alpha.test", role="analyst"),
            invited_by=owner.id,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        token = tokens.create_token(
            conn,
            access=service.Access(business_id=business_id, role="admin", person_id=owner.id),
            name="Alpha Secret Token",
            scope=["reports.read"],
            actor=SYSTEM,
            ip=None,
        )
        partner = bootstrap  # the partner business is made below, outside this transaction
    partner_keys = partner(store, name="Partner C")
    with store.write() as conn:
        share = team.share_with_partner(
            conn,
            business_id=business_id,
            data=PartnerShareIn(
                partner_business_id=partner_keys.business_id, asset_id=second.id, tasks=["analyse"]
            ),
            by=Access(business_id=business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        employee = people.sign_up(
            conn, email="employee-a@alpha.test", name="Employee A", password="p" * 12
        )
        employee_invite = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email=employee.email, role="employee"),
            invited_by=owner.id,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        team.accept_invitation(conn, token=employee_invite.token, person_id=employee.id, ip=None)
        session_token = people.start_session(
            conn, person_id=employee.id, stage="full", ip=None, hours=1
        )
        csrf = people.session_for(conn, token=session_token)
    assert csrf is not None
    ids = {
        "business_id": business_id,
        "pixel_id": keys.source_id,
        "asset_id": second.id,
        "property_id": prop.id,
        "ad_account_id": account.id,
        "campaign_id": campaign.id,
        "social_account_id": social.id,
        "invitation_id": invitation.invitation.id,
        "token_id": token.id,
        "share_id": share.id,
        "person_id": owner.id,
        "source_id": keys.source_id,
    }
    markers = {
        keys.write_key,
        second.write_key,
        "Alpha Secret",
        "alpha-secret",
        "alpha.secret",
        "owner-a@alpha.test",
        "invitee-a@alpha.test",
        *(v for k, v in ids.items() if k != "business_id"),
    }
    return BusinessA(business_id, ids, markers, session_token, csrf.csrf_token)


def _api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, looking inside included routers."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            inner = prefix + getattr(route.include_context, "prefix", "")
            found.extend(_api_routes(route.original_router.routes, inner))
    return found


def _is_admin_route(route: APIRoute) -> bool:
    def walk(dependant: Any) -> bool:
        for dep in dependant.dependencies:
            call = getattr(dep, "call", None)
            if call is not None and getattr(call, "__qualname__", "").startswith("requires."):
                return True
            if walk(dep):
                return True
        return False

    return walk(route.dependant)


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _sample(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A small valid value for a JSON schema, so requests get past body validation."""
    schema = _resolve(schema, spec)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _sample(options[0], spec, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        props = schema.get("properties", {})
        return {name: _sample(props[name], spec, depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        item = schema.get("items", {})
        return [_sample(item, spec, depth + 1) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2030-01-01T00:00:00Z"
    if schema.get("format") == "email":
        return "walk@example.com"
    return "walk".ljust(schema.get("minLength", 0), "k")


@dataclass
class Call:
    method: str
    path: str
    template: str
    body: Any
    admin: bool
    form: dict[str, str] | None = None


def _calls(client: TestClient, a: BusinessA) -> list[Call]:
    spec = client.get("/openapi.json").json()
    every = _api_routes(client.app.routes)
    routes = {(m, path): r for path, r in every for m in r.methods}
    calls: list[Call] = []

    def fill(template: str) -> str:
        return re.sub(
            r"\{(\w+)\}",
            lambda m: a.ids.get(m.group(1), f"x_{uuid.uuid4().hex[:12]}"),
            template,
        )

    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = None
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = _sample(content["application/json"]["schema"], spec)
            query = [
                f"{p['name']}=walk"
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            ]
            path = fill(template) + ("?" + "&".join(query) if query else "")
            route = routes.get((method.upper(), template))
            admin = route is not None and _is_admin_route(route)
            calls.append(Call(method.upper(), path, template, body, admin))
    documented = {(c.method, c.template) for c in calls}
    for path, route in every:
        for method in route.methods:
            if (method, path) in documented or method == "HEAD":
                continue
            # Pages take forms: fill every form field the route declares.
            form = {field.name: "walk" for field in route.dependant.body_params} or None
            calls.append(Call(method, fill(path), path, None, _is_admin_route(route), form))
    return calls


def _leaks(text: str, markers: set[str], path: str) -> list[str]:
    return [m for m in markers if m in text and m not in path]


DENIED = {401, 403, 404}


@pytest.fixture
def walk(
    client: TestClient, store: Store, keys: Bootstrap
) -> tuple[BusinessA, list[Call], Bootstrap]:
    a = _seed(store, keys)
    calls = _calls(client, a)
    other = bootstrap(store, name="Other Business B")
    return a, calls, other


def test_the_walk_covers_the_admin_api_and_the_pages(
    client: TestClient, walk: tuple[BusinessA, list[Call], Bootstrap]
) -> None:
    _, calls, _ = walk
    admin = {(c.method, c.template) for c in calls if c.admin}
    assert ("GET", "/api/profiles") in admin
    assert ("POST", "/api/accounts/ad-accounts/{ad_account_id}/close") in admin
    assert ("GET", "/assets/pixels/{pixel_id}") in admin
    assert ("GET", "/audit.csv") in admin
    assert len(admin) >= 60


def _request(client: TestClient, call: Call, headers: dict[str, str]) -> Any:
    if call.form is not None:
        return client.request(
            call.method, call.path, data=call.form, headers=headers, follow_redirects=False
        )
    return client.request(
        call.method, call.path, json=call.body, headers=headers, follow_redirects=False
    )


def test_no_credentials_get_401_everywhere(
    client: TestClient, walk: tuple[BusinessA, list[Call], Bootstrap]
) -> None:
    a, calls, _ = walk
    client.cookies.clear()
    for call in calls:
        response = _request(client, call, {})
        assert not _leaks(response.text, a.markers, call.path), (call, response.text[:300])
        if call.admin:
            assert response.status_code == 401, (call, response.status_code, response.text[:300])


def test_a_token_of_another_business_reaches_nothing_of_business_a(
    client: TestClient, store: Store, walk: tuple[BusinessA, list[Call], Bootstrap]
) -> None:
    a, calls, other = walk
    client.cookies.clear()
    headers = {"authorization": f"Bearer {other.admin_token}"}
    before = _state_of_a(store, a)
    statuses: set[int] = set()
    for call in calls:
        response = _request(client, call, headers)
        statuses.add(response.status_code)
        assert not _leaks(response.text, a.markers, call.path), (call, response.text[:300])
        if call.admin and _names_a(call, a):
            assert response.status_code in DENIED, (call, response.status_code, response.text[:300])
    assert _state_of_a(store, a) == before
    assert 200 in statuses and 404 in statuses  # the token works, in its own business only


def test_an_employee_without_the_assets_reaches_none_of_them(
    client: TestClient, store: Store, walk: tuple[BusinessA, list[Call], Bootstrap]
) -> None:
    a, calls, _ = walk
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, a.employee_session)
    # The session's own CSRF token, so what is tested is the permission, not CSRF.
    headers = {"x-csrf-token": a.employee_csrf}
    before = _state_of_a(store, a)
    statuses: set[int] = set()
    for call in calls:
        if call.template in ("/sign-out",):
            continue
        response = _request(client, call, headers)
        statuses.add(response.status_code)
        assert not _leaks(response.text, a.markers, call.path), (call, response.text[:300])
        if call.admin and _names_a(call, a):
            assert response.status_code in DENIED, (call, response.status_code, response.text[:300])
    assert _state_of_a(store, a) == before
    assert {200, 403, 404} <= statuses  # signed in, denied by role, and by asset


def _names_a(call: Call, a: BusinessA) -> bool:
    return any(value in call.path for value in a.ids.values())


def _state_of_a(store: Store, a: BusinessA) -> dict[str, Any]:
    """What a wrong caller could have changed in business A."""
    from accord.accounts import assets as asset_service

    with store.read() as conn:
        found = service.visible_assets(
            conn, access=service.Access(business_id=a.business_id, role="admin")
        )
        return {
            "assets": sorted((r["id"], r["name"], str(r["closed_at"])) for r in found),
            "members": [m.model_dump() for m in team.members(conn, business_id=a.business_id)],
            "invitations": [
                i.model_dump() for i in team.list_invitations(conn, business_id=a.business_id)
            ],
            "tokens": [
                t.model_dump(exclude={"last_used_at"})
                for t in tokens.list_tokens(conn, business_id=a.business_id)
            ],
            "shares": [s.model_dump() for s in team.shares(conn, business_id=a.business_id)[0]],
            "business": service.get_business(conn, business_id=a.business_id).model_dump(),
            "campaigns": [
                c.model_dump()
                for c in asset_service.list_campaigns(
                    conn, business_id=a.business_id, ad_account_id=a.ids["ad_account_id"]
                )
            ],
        }
