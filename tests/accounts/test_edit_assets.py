"""Pixels edited where their owner looks: renamed and disabled on the pixel page and by
`PATCH /api/accounts/pixels/{id}`; a disabled write key stops at once; only enabled
pixels count toward the limit; employees without the task change nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts import people, service, team
from accord.accounts.models import Actor, InvitationIn, assets, sources
from accord.accounts.service import Access
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.app import create_app
from accord.web.auth import SESSION_COOKIE
from tests.accounts.ui import Browser, create_business, sign_up

SYSTEM = Actor(kind="system", label="test")
HTML = {"accept": "text/html"}


def employee(
    client: TestClient,
    store: Store,
    business_id: str,
    email: str,
    grants: Mapping[str, list[str]],
) -> tuple[TestClient, dict[str, str]]:
    """A signed-in employee of the business holding `grants`, with the session's CSRF
    header, so what a test sees is the permission, not CSRF."""
    with store.write() as conn:
        person = people.sign_up(conn, email=email, name="Employee", password="p" * 12)
        invitation = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email=email, role="employee"),
            invited_by=None,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        team.accept_invitation(conn, token=invitation.token, person_id=person.id, ip=None)
        if grants:
            team.set_grants(
                conn,
                business_id=business_id,
                person_id=person.id,
                grants=dict(grants),
                by=Access(business_id=business_id, role="admin"),
                actor=SYSTEM,
                ip=None,
            )
        token = people.start_session(conn, person_id=person.id, stage="full", ip=None, hours=1)
        session = people.session_for(conn, token=token)
    assert session is not None
    their = TestClient(client.app)
    their.cookies.set(SESSION_COOKIE, token)
    return their, {**HTML, "x-csrf-token": session.csrf_token}


def new_pixel(browser: Browser, name: str) -> str:
    page = browser.submit("/assets", "/assets/pixels", {"name": name, "kind": "web"})
    assert page.status_code == 200 and f"Pixel {name} created" in page.text, page.text
    found = re.search(rf'href="/assets/pixels/(src_[0-9a-f]+)">{re.escape(name)}<', page.text)
    assert found, page.text
    return found.group(1)


def pixel_row(store: Store, pixel_id: str) -> dict[str, Any]:
    with store.read() as conn:
        source = conn.execute(select(sources).where(sources.c.id == pixel_id)).one()
        asset = conn.execute(select(assets.c.name).where(assets.c.id == pixel_id)).scalar_one()
    return {**source._mapping, "asset_name": asset}


def audit_actions(store: Store, business_id: str, prefix: str) -> list[str]:
    with store.read() as conn:
        return [
            e.action for e in service.audit_entries(conn, business_id=business_id, action=prefix)
        ]


def track(client: TestClient, write_key: str) -> int:
    response = client.post(
        "/v1/track", json={"userId": "u-1", "event": "Viewed"}, auth=(write_key, "")
    )
    return response.status_code


def test_a_pixel_is_renamed_on_its_page_and_bad_names_save_nothing(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    pixel_id = new_pixel(browser, "Shop")
    page = f"/assets/pixels/{pixel_id}"
    assert 'id="rename-form"' in browser.get(page).text

    renamed = browser.submit(page, page, {"name": "  Web shop  "})
    assert renamed.status_code == 200 and "Pixel renamed Web shop" in renamed.text
    row = pixel_row(store, pixel_id)
    assert row["name"] == row["asset_name"] == "Web shop"
    assert "Web shop" in browser.get("/assets").text
    assert audit_actions(store, business_id, "pixel.rename") == ["pixel.rename"]

    before = pixel_row(store, pixel_id)
    for typed, reason in (("   ", "give it a name"), ("x" * 51, "at most 50 characters")):
        refused = browser.submit(page, page, {"name": typed})
        assert refused.status_code == 400
        error = re.search(r'<p class="error-text" id="e-name">([^<]*)</p>', refused.text)
        assert error and reason in error.group(1)
        assert f'value="{typed}"' in refused.text and 'aria-invalid="true"' in refused.text
        assert pixel_row(store, pixel_id) == before
    assert audit_actions(store, business_id, "pixel.rename") == ["pixel.rename"]


def test_a_disabled_pixel_stops_collecting_at_once_and_collects_again_when_enabled(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    pixel_id = new_pixel(browser, "Shop")
    write_key = pixel_row(store, pixel_id)["write_key"]
    page = f"/assets/pixels/{pixel_id}"
    # The write key is now in the collection cache (30 s by default).
    assert track(client, write_key) == 200

    disabled = browser.submit(page, f"{page}/enabled", {"enabled": "false"})
    assert disabled.status_code == 200 and "its write key takes no events" in disabled.text
    assert "Enable pixel" in disabled.text and pixel_row(store, pixel_id)["enabled"] is False
    assert track(client, write_key) == 401

    enabled = browser.submit(page, f"{page}/enabled", {"enabled": "true"})
    assert enabled.status_code == 200 and "Pixel enabled" in enabled.text
    assert track(client, write_key) == 200
    assert audit_actions(store, business_id, "pixel.") == [
        "pixel.enable",
        "pixel.disable",
        "pixel.create",
    ]


def test_only_enabled_pixels_count_toward_the_limit(settings: Settings, store: Store) -> None:
    limited = settings.model_copy(update={"max_pixels_per_business": 2})
    with TestClient(create_app(limited)) as client:
        browser = sign_up(client, "ann@acme.test")
        create_business(browser)
        first = new_pixel(browser, "One")
        new_pixel(browser, "Two")
        refused = browser.submit("/assets", "/assets/pixels", {"name": "Three"})
        assert "at most 2 pixels enabled" in refused.text and "disable or reuse one" in refused.text
        # The advice holds: disabling one makes room for another.
        page = f"/assets/pixels/{first}"
        browser.submit(page, f"{page}/enabled", {"enabled": "false"})
        new_pixel(browser, "Three")
        # Enabling the first again would make three enabled: refused next to the switch.
        again = browser.submit(page, f"{page}/enabled", {"enabled": "true"})
        assert again.status_code == 400
        error = re.search(
            r'<p class="error-text" id="e-pixels" role="alert">([^<]*)</p>', again.text
        )
        assert error and "at most 2 pixels enabled" in error.group(1)
        assert pixel_row(store, first)["enabled"] is False


def test_the_api_renames_and_disables_and_refuses_bad_input(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    pixel_id = new_pixel(browser, "Shop")
    keys = service.bootstrap(store, name="Token Shop")
    api = {"authorization": f"Bearer {keys.admin_token}"}
    own = f"/api/accounts/pixels/{keys.source_id}"

    changed = client.patch(own, json={"name": "Main site", "enabled": False}, headers=api)
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Main site" and changed.json()["enabled"] is False
    assert track(client, keys.write_key) == 401
    assert audit_actions(store, keys.business_id, "pixel.") == ["pixel.disable", "pixel.rename"]

    before = pixel_row(store, keys.source_id)
    bad = client.patch(own, json={"name": "", "enabled": True}, headers=api)
    assert bad.status_code == 400 and bad.json()["problems"][0]["field"] == "name"
    assert pixel_row(store, keys.source_id) == before  # nothing half-saved: still disabled

    # Another business's pixel is not found, and stays as it was.
    theirs = pixel_row(store, pixel_id)
    other = client.patch(f"/api/accounts/pixels/{pixel_id}", json={"name": "Mine"}, headers=api)
    assert other.status_code == 404 and pixel_row(store, pixel_id) == theirs
    assert "/api/accounts/pixels/{pixel_id}" in client.get("/openapi.json").json()["paths"]


def test_an_employee_without_the_task_changes_no_pixel(client: TestClient, store: Store) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    pixel_id = new_pixel(browser, "Shop")
    before = pixel_row(store, pixel_id)
    page = f"/assets/pixels/{pixel_id}"
    analyst, headers = employee(
        client, store, business_id, "bob@acme.test", {pixel_id: ["analyse"]}
    )
    assert analyst.get(page, headers=headers).status_code == 200
    assert 'id="rename-form"' not in analyst.get(page, headers=headers).text
    stranger, other = employee(client, store, business_id, "eve@acme.test", {})
    for who, headers_of in ((analyst, headers), (stranger, other)):
        renamed = who.post(page, data={"name": "Hijacked"}, headers=headers_of)
        disabled = who.post(f"{page}/enabled", data={"enabled": "false"}, headers=headers_of)
        patched = who.patch(
            f"/api/accounts/pixels/{pixel_id}", json={"enabled": False}, headers=headers_of
        )
        assert {renamed.status_code, disabled.status_code, patched.status_code} <= {403, 404}
    assert pixel_row(store, pixel_id) == before


def test_a_pixel_lists_its_allowed_origins_and_other_sites_are_refused(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    pixel_id = new_pixel(browser, "Shop")
    write_key = pixel_row(store, pixel_id)["write_key"]
    page = f"/assets/pixels/{pixel_id}"
    shown = browser.get(page).text
    assert 'id="origins-form"' in shown and "any origin" in shown
    assert f'src="http://testserver/accord.js" data-write-key="{write_key}"' in shown.replace(
        "&#34;", '"'
    ).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")

    refused = browser.submit(page, f"{page}/origins", {"allowed_origins": "shop.example/x"})
    assert refused.status_code == 400 and 'id="e-origins"' in refused.text
    assert "allowed_origins.0" in refused.text and "shop.example/x" in refused.text
    assert pixel_row(store, pixel_id)["allowed_origins"] is None

    typed = "https://shop.example\nhttps://*.shop.example\n"
    saved = browser.submit(page, f"{page}/origins", {"allowed_origins": typed})
    assert saved.status_code == 200 and "Browsers allowed from https://shop.example" in saved.text
    body = {"event": "Viewed", "userId": "u", "writeKey": write_key}

    def send(origin: str) -> int:
        headers = {"Content-Type": "text/plain", "Origin": origin}
        return client.post("/v1/t", json=body, headers=headers).status_code

    assert send("https://eu.shop.example") == 200
    assert send("https://other.example") == 403
    assert audit_actions(store, business_id, "pixel.origins") == ["pixel.origins"]
