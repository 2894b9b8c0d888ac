"""Issue 19, item 6: security headers on every HTML page, and no inline script anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.consent import config
from accord.consent.models import PropertyIn
from accord.core.settings import Settings
from accord.store.db import Store
from accord.web.app import create_app
from accord.web.headers import content_security_policy, frame_ancestors
from accord.web.ui import STATIC_DIR, TEMPLATES_DIR
from tests.accounts.ui import create_business, sign_up

HTML = {"accept": "text/html"}


def _directives(csp: str) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2]
        for part in csp.split(";")
        if part.strip()
    }


def _assert_page_headers(response: object, ancestors: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = _directives(headers["Content-Security-Policy"])
    assert csp["script-src"] == "'self'", csp
    assert "unsafe-inline" not in csp["script-src"] and "unsafe-eval" not in csp["script-src"]
    assert csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == ancestors
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    if ancestors == "'none'":
        assert headers["X-Frame-Options"] == "DENY"


def test_item_6_every_html_page_gets_security_headers(client: TestClient) -> None:
    for path in ("/sign-in", "/sign-up", "/no-such-page"):
        page = client.get(path, headers=HTML)
        assert page.headers["content-type"].startswith("text/html"), path
        _assert_page_headers(page, "'none'")
        assert "Strict-Transport-Security" not in page.headers
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    # Every page of the navigation (they are the admin's).
    paths = {entry.path for entry in client.app.state.ui.nav}  # type: ignore[attr-defined]
    assert len(paths) >= 20
    for path in sorted(paths):
        page = client.get(path, headers=HTML)
        assert page.status_code == 200, path
        _assert_page_headers(page, "'none'")
    api = client.get("/healthz")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in api.headers


def test_item_6_hsts_only_over_https(settings: Settings, keys: Bootstrap) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get("/sign-in", headers=HTML)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_item_6_consent_preview_is_framed_by_the_same_origin_only(
    client: TestClient, store: Store
) -> None:
    browser = sign_up(client, "ann@acme.test")
    business_id = create_business(browser)
    with store.write() as conn:
        config.create_property(
            conn, business_id=business_id, spec=PropertyIn(key="web", name="Web")
        )
    preview = client.get("/consent/properties/web/preview", headers=HTML)
    assert preview.status_code == 200, preview.text
    _assert_page_headers(preview, "'self'")
    assert preview.headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize(
    ("path", "ancestors"),
    [
        ("/consent/properties/web/preview", "'self'"),
        ("/l/welcome", "*"),
        ("/l/confirm/abc", "'none'"),
        ("/l/download/abc", "'none'"),
        ("/app", "'none'"),
        ("/consent/properties/web/preview/x", "'none'"),
    ],
)
def test_item_6_only_landing_pages_may_be_framed_by_other_sites(path: str, ancestors: str) -> None:
    assert frame_ancestors(path) == ancestors
    assert content_security_policy(path).endswith(f"frame-ancestors {ancestors}")


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"""<[a-z][^>]*\s on[a-z]+\s*=""", re.IGNORECASE | re.VERBOSE)
JS_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def test_item_6_no_template_or_static_script_has_inline_code() -> None:
    """The CSP forbids inline code; a template or script that added some would break."""
    checked = 0
    for path in sorted(TEMPLATES_DIR.rglob("*.html")) + sorted(Path(STATIC_DIR).rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        assert not INLINE_SCRIPT.search(text), f"inline <script> in {path}"
        assert not INLINE_HANDLER.search(text), f"inline event handler in {path}"
        assert not JS_URL.search(text), f"javascript: URL in {path}"
        checked += 1
    assert checked > 50
