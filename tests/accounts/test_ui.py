"""The admin UI over HTTP: sign-in steps, CSRF, two-factor policy, email links, the API."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap, businesses, sources
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.app import create_app
from tests.accounts.ui import Browser, create_business, csrf_of, enrol_two_factor, sign_up
from tests.smtp_sink import SmtpSink, body_text

HTML = {"accept": "text/html"}


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    with store.read() as conn:
        before = conn.execute(select(func.count()).select_from(sources)).scalar_one()
    for data in ({"name": "Sneaky"}, {"name": "Sneaky", "csrf_token": "forged"}):
        response = client.post("/assets/pixels", data=data, headers=HTML)
        assert response.status_code == 403
        assert "security token" in response.text
    anonymous = TestClient(client.app)
    response = anonymous.post(
        "/sign-up", data={"email": "x@acme.test", "name": "X", "password": "p" * 12}
    )
    assert response.status_code == 403
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(sources)).scalar_one() == before
    assert browser.submit("/assets", "/assets/pixels", {"name": "Fine"}).status_code == 200


def test_sign_in_asks_for_the_second_factor_and_refuses_a_wrong_one(client: TestClient) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    secret, codes = enrol_two_factor(browser)
    browser.submit("/app", "/sign-out", {})
    assert browser.get("/app").url.path == "/sign-in"

    response = browser.submit(
        "/sign-in", "/sign-in", {"email": "ann@acme.test", "password": "correct horse battery"}
    )
    assert response.url.path == "/sign-in/two-factor"
    assert client.get("/app", headers=HTML).url.path == "/sign-in"  # half signed in only
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 500_000) % 1_000_000:06d}"
    response = browser.submit("/sign-in/two-factor", "/sign-in/two-factor", {"code": wrong})
    assert response.status_code == 401 and "wrong code" in response.text
    response = browser.submit("/sign-in/two-factor", "/sign-in/two-factor", {"code": codes[0]})
    assert response.url.path == "/app" and response.status_code == 200

    browser.submit("/app", "/sign-out", {})
    browser.submit(
        "/sign-in", "/sign-in", {"email": "ann@acme.test", "password": "correct horse battery"}
    )
    reused = browser.submit("/sign-in/two-factor", "/sign-in/two-factor", {"code": codes[0]})
    assert reused.status_code == 401 and "unused recovery code" in reused.text


def test_sign_in_lockout_message_is_clear(tmp_path: Path, database_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, login_max_failures_per_account=2
    )
    with TestClient(create_app(settings)) as client:
        sign_up(client, "ann@acme.test")
        browser = Browser(TestClient(client.app))
        for _ in range(2):
            r = browser.submit(
                "/sign-in", "/sign-in", {"email": "ann@acme.test", "password": "nope" * 3}
            )
            assert r.status_code == 401 and "wrong email or password" in r.text
        r = browser.submit(
            "/sign-in", "/sign-in", {"email": "ann@acme.test", "password": "correct horse battery"}
        )
        assert r.status_code == 429 and "locked after 2 failed sign-ins" in r.text


def test_policy_sends_people_without_two_factor_to_enrol(client: TestClient) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    assert (
        browser.submit("/security", "/security/policy", {"policy": "everyone"}).status_code == 200
    )
    assert browser.get("/people").url.path == "/account/two-factor"
    page = client.get("/people", headers=HTML)
    assert page.url.path == "/account/two-factor"
    enrol_two_factor(browser)
    assert browser.get("/people").status_code == 200


def test_email_confirmation_link_arrives_by_smtp_and_confirms(
    tmp_path: Path, database_url: str, sink: SmtpSink, store: Store
) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, smtp_host=sink.host, smtp_port=sink.port
    )
    with TestClient(create_app(settings)) as client:
        browser = sign_up(client, "ann@acme.test")
        business_id = create_business(browser)
        response = browser.submit("/business/settings", "/business/settings/verify", {})
        assert "Confirmation link sent to owner@acme.test" in response.text
        message = sink.wait_for("owner@acme.test", timeout=5)
        assert "Confirm" in str(message["Subject"])
        body = body_text(message)
        link = re.search(r"http://testserver(/confirm-email\?token=\S+)", body)
        assert link
        tampered = client.get(link.group(1)[:-3] + "abc", headers=HTML)
        assert tampered.status_code == 400
        assert client.get(link.group(1), headers=HTML).status_code == 200
    with store.read() as conn:
        verified = conn.execute(
            select(businesses.c.email_verified_at).where(businesses.c.id == business_id)
        ).scalar()
    assert verified is not None


def test_invitation_email_and_accept_flow_for_a_new_person(
    tmp_path: Path, database_url: str, sink: SmtpSink
) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, smtp_host=sink.host, smtp_port=sink.port
    )
    with TestClient(create_app(settings)) as client:
        admin = sign_up(client, "ann@acme.test")
        create_business(admin)
        response = admin.submit(
            "/people", "/people/invite", {"email": "bob@acme.test", "role": "analyst"}
        )
        assert "Invitation sent to bob@acme.test" in response.text
        invitation = body_text(sink.wait_for("bob@acme.test", timeout=5))
        link = re.search(r"http://testserver(/invitations/accept\?token=\S+)", invitation)
        assert link
        bob = Browser(TestClient(client.app))
        page = bob.get(link.group(1))
        assert "Join Acme Shoes" in page.text
        token = link.group(1).split("token=")[1]
        joined = bob.client.post(
            "/invitations/accept",
            data={
                "token": token,
                "name": "Bob",
                "password": "bob's long password",
                "csrf_token": csrf_of(page.text),
            },
            headers=HTML,
        )
        assert joined.url.path == "/app" and "analyst" in joined.text
        again = bob.get(link.group(1))
        assert again.status_code == 400 and "already accepted" in again.text


def test_api_with_a_bearer_token_and_the_one_error_shape(
    client: TestClient, keys: Bootstrap
) -> None:
    auth = {"authorization": f"Bearer {keys.admin_token}"}
    for n in range(9):
        assert (
            client.post("/api/accounts/pixels", json={"name": f"P{n}"}, headers=auth).status_code
            == 201
        )
    eleventh = client.post("/api/accounts/pixels", json={"name": "P10"}, headers=auth)
    assert eleventh.status_code == 400
    body = eleventh.json()
    assert body["code"] == "invalid_input" and body["problems"][0]["field"] == "pixels"
    assert "at most 10 pixels" in body["message"]
    too_long = client.post("/api/accounts/pixels", json={"name": "n" * 51}, headers=auth)
    assert too_long.status_code == 400 and "at most 50 characters" in too_long.json()["message"]
    assert len(client.get("/api/accounts/assets?kind=pixel", headers=auth).json()) == 10

    made = client.post(
        "/api/accounts/tokens",
        json={"name": "reports", "permissions": ["reports.read"]},
        headers=auth,
    )
    assert made.status_code == 201
    narrow = {"authorization": f"Bearer {made.json()['token']}"}
    assert client.get("/api/accounts/people", headers=narrow).status_code == 403
    audit = client.get("/api/accounts/audit?action=token.", headers=auth).json()
    assert audit[0]["action"] == "token.create" and audit[0]["actor_kind"] == "token"
    csv_text = client.get("/api/accounts/audit.csv", headers=auth).text
    assert csv_text.splitlines()[0].startswith("id,at,actor_kind") and "pixel.create" in csv_text
    assert (
        client.delete(f"/api/accounts/tokens/{made.json()['id']}", headers=auth).status_code == 204
    )
    assert client.get("/api/reports/volume", headers=narrow).status_code == 401
