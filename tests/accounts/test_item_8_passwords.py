"""Issue 19, item 8: common and email passwords, trusted proxies, Retry-After, safe links,
and the secret key's mode."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accord.accounts import people
from accord.accounts.models import Bootstrap
from accord.core.errors import InvalidInput
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.app import create_app
from accord.web.proxies import client_address, parse_networks
from tests.accounts.ui import Browser, sign_up


@pytest.mark.parametrize("password", ["1234567890", "Password123", "qwertyuiop", "Manchester"])
def test_item_8_common_passwords_are_refused(store: Store, password: str) -> None:
    assert password.lower() in people._common_passwords()
    with pytest.raises(InvalidInput) as caught, store.write() as conn:
        people.sign_up(conn, email="ann@acme.test", name="Ann", password=password)
    assert caught.value.problems[0].field == "password"
    assert "common" in caught.value.problems[0].reason


def test_item_8_the_common_list_ships_ten_thousand_passwords() -> None:
    assert len(people._common_passwords()) >= 9_900


@pytest.mark.parametrize("password", ["ann.long@acme.test", "ANN.LONG@ACME.TEST", "ann.long"])
def test_item_8_password_equal_to_the_email_is_refused(store: Store, password: str) -> None:
    with pytest.raises(InvalidInput) as caught, store.write() as conn:
        people.sign_up(conn, email="ann.long@acme.test", name="Ann", password=password)
    assert caught.value.problems[0].field == "password"
    with store.write() as conn:
        person = people.sign_up(
            conn, email="ann.long@acme.test", name="Ann", password="correct horse battery"
        )
    with pytest.raises(InvalidInput), store.write() as conn:
        people.set_password(conn, person_id=person.id, password=password)


def test_item_8_forwarded_for_is_not_trusted_by_default(settings: Settings) -> None:
    settings.login_max_failures_per_ip = 2
    settings.login_max_failures_per_account = 100
    with TestClient(create_app(settings)) as client:
        sign_up(client, "ann@acme.test")
        browser = Browser(client)
        statuses = []
        for n in range(4):
            # A different forged address each time must not reset the per-IP count.
            client.headers["X-Forwarded-For"] = f"203.0.113.{n}"
            response = browser.submit(
                "/sign-in", "/sign-in", {"email": f"x{n}@acme.test", "password": "wrong one!"}
            )
            statuses.append(response.status_code)
    assert statuses[-1] == 429, statuses


def test_item_8_trusted_proxies_are_configurable() -> None:
    trusted = parse_networks("10.0.0.0/8, 192.168.1.1")
    assert client_address("198.51.100.7", "203.0.113.9", trusted) == "198.51.100.7"
    assert client_address("10.1.2.3", "203.0.113.9", trusted) == "203.0.113.9"
    # The right-most untrusted hop: what the client wrote at the left is not believed.
    assert client_address("10.1.2.3", "1.1.1.1, 203.0.113.9, 192.168.1.1", trusted) == (
        "203.0.113.9"
    )
    with pytest.raises(ValueError, match="not an address"):
        parse_networks("10.0.0.0/8, proxy.local")


def test_item_8_trusted_proxy_sets_client_and_scheme(settings: Settings) -> None:
    settings.trusted_proxies = "10.0.0.0/8"
    app = create_app(settings)
    with TestClient(app, client=("10.0.0.2", 4000)) as client:
        page = client.get(
            "/sign-in",
            headers={"accept": "text/html", "X-Forwarded-Proto": "https"},
        )
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    with TestClient(app, client=("198.51.100.7", 4000)) as client:
        page = client.get("/sign-in", headers={"accept": "text/html", "X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in page.headers


def test_item_8_serve_does_not_let_uvicorn_trust_forwarded_headers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    from accord.cli import app as cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["serve", "--no-worker"])
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is False


def test_item_8_every_429_says_retry_after(settings: Settings) -> None:
    settings.login_max_failures_per_account = 1
    with TestClient(create_app(settings)) as client:
        sign_up(client, "ann@acme.test")
        browser = Browser(client)
        for _ in range(2):
            page = browser.submit(
                "/sign-in", "/sign-in", {"email": "ann@acme.test", "password": "wrong one!"}
            )
    assert page.status_code == 429
    assert int(page.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "JavaScript:alert(1)", " java\tscript:alert(1)", "data:,x"]
)
def test_item_8_javascript_links_are_refused_at_save_time(
    client: TestClient, keys: Bootstrap, url: str
) -> None:
    h = {"Authorization": f"Bearer {keys.admin_token}"}
    vendor = client.put(
        "/api/consent/vendors/ads", json={"name": "Ads", "policy_url": url}, headers=h
    )
    assert vendor.status_code == 400, vendor.text
    assert vendor.json()["problems"][0]["field"] == "policy_url"
    created = client.post("/api/consent/properties", json={"key": "web", "name": "Web"}, headers=h)
    assert created.status_code in (200, 201), created.text
    key = "web"
    for variant, field in (
        ({"logo_url": url, "texts": {"en": {"title": "Hi"}}}, "variants[0].logo_url"),
        (
            {"texts": {"en": {"privacy_policy_url": url}}},
            "variants[0].texts.en.privacy_policy_url",
        ),
    ):
        notice = client.post(
            f"/api/consent/properties/{key}/notices", json={"variants": [variant]}, headers=h
        )
        assert notice.status_code == 400, notice.text
        assert [p["field"] for p in notice.json()["problems"]] == [field]
    fine = client.put(
        "/api/consent/vendors/ads",
        json={"name": "Ads", "policy_url": "https://ads.example/privacy"},
        headers=h,
    )
    assert fine.status_code in (200, 201), fine.text


def test_item_8_secret_key_is_private_from_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    modes: list[int] = []
    real_open = os.open

    def watching_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_open(path, flags, mode, **kw)
        if str(path).endswith("secret.key"):
            modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    monkeypatch.setattr(os, "umask", os.umask)
    previous = os.umask(0)
    try:
        key = Settings(data_dir=tmp_path).resolved_secret_key()
    finally:
        os.umask(previous)
    assert key
    assert modes == [0o600]
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600


def test_item_8_a_429_without_retry_after_gets_one() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from accord.web.headers import DEFAULT_RETRY_AFTER, SecurityHeaders

    def slow_down(request: object) -> PlainTextResponse:
        return PlainTextResponse("slow down", status_code=429)

    def told(request: object) -> PlainTextResponse:
        return PlainTextResponse("later", status_code=429, headers={"Retry-After": "7"})

    app = SecurityHeaders(Starlette(routes=[Route("/a", slow_down), Route("/b", told)]))
    with TestClient(app) as client:
        assert client.get("/a").headers["Retry-After"] == DEFAULT_RETRY_AFTER
        assert client.get("/b").headers["Retry-After"] == "7"
