"""Drive the admin UI through a TestClient the way a browser does: forms with CSRF tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pyotp
from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Browser:
    client: TestClient

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path, headers={"accept": "text/html"})

    def submit(
        self, page: str, action: str, data: dict[str, object], *, follow: bool = True
    ) -> httpx.Response:
        """Open `page`, take its CSRF token, post `data` to `action`."""
        token = csrf_of(self.get(page).text)
        return self.client.post(
            action,
            data={**data, "csrf_token": token},
            headers={"accept": "text/html"},
            follow_redirects=follow,
        )


def sign_up(client: TestClient, email: str, password: str = "correct horse battery") -> Browser:
    browser = Browser(client)
    response = browser.submit(
        "/sign-up", "/sign-up", {"email": email, "name": email.split("@")[0], "password": password}
    )
    assert response.status_code == 200, response.text
    return browser


def create_business(browser: Browser, name: str = "Acme Shoes") -> str:
    response = browser.submit(
        "/businesses",
        "/businesses",
        {"name": name, "contact_email": "owner@acme.test", "kind": "advertiser"},
    )
    assert response.status_code == 200, response.text
    found = re.search(r"Business id <code>(biz_[0-9a-f]+)</code>", response.text)
    assert found, response.text
    return found.group(1)


def enrol_two_factor(browser: Browser) -> tuple[str, list[str]]:
    page = browser.get("/account/two-factor").text
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)
    assert secret
    response = browser.submit(
        "/account/two-factor",
        "/account/two-factor",
        {"code": pyotp.TOTP(secret.group(1)).now()},
    )
    assert response.status_code == 200, response.text
    codes = re.findall(r"<li><code>([0-9a-f]{6}-[0-9a-f]{6})</code></li>", response.text)
    assert len(codes) == 10
    return secret.group(1), codes
