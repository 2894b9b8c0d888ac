"""/cmp.js and the default banner texts: content type, gzip, ETag revalidation, size goal."""

from __future__ import annotations

import gzip
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from accord.web import errors
from accord.web.cmp import (
    CSS_PLACEHOLDER,
    build_script,
    router,
    script_asset,
    translation_languages,
)

# The goal stated in issue 3: script and styles together at most 15 KB gzipped.
SIZE_GOAL = 15 * 1024
TEXT_KEYS = {
    "title",
    "description",
    "accept_all",
    "reject_all",
    "customise",
    "save",
    "close",
    "privacy_policy_label",
    "reopen_label",
    "do_not_sell_label",
    "placeholder",
    "placeholder_button",
    "always_on",
    "vendors_label",
    # Shipped with Accord and shown to visitors who send GPC; not a business's own text.
    "gpc_notice",
}


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    return TestClient(app)


def test_script_is_served_gzipped_with_etag_and_cache_headers(client: TestClient) -> None:
    response = client.get("/cmp.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert "max-age=" in response.headers["cache-control"]
    assert response.text == build_script()  # httpx decodes the gzip body
    etag = response.headers["etag"]
    again = client.get("/cmp.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = client.head("/cmp.js")
    assert head.status_code == 200 and head.headers["etag"] == etag
    plain = client.get("/cmp.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == script_asset().body


def test_styles_are_inlined_and_the_placeholder_is_gone() -> None:
    script = build_script()
    assert CSS_PLACEHOLDER not in script
    assert ".acc-d{" in script and "/* Accord consent banner" not in script


def test_script_and_styles_meet_the_size_goal() -> None:
    assert len(gzip.compress(script_asset().body, 9)) <= SIZE_GOAL


def test_default_translations_have_every_text(client: TestClient) -> None:
    languages = translation_languages()
    assert {"en", "de", "fr"} <= set(languages)
    for language in languages:
        response = client.get(f"/cmp/i18n/{language}.json")
        assert response.status_code == 200
        texts = json.loads(response.content)
        assert set(texts) == TEXT_KEYS, language
        assert "{purpose}" in texts["placeholder"], language
    assert client.get("/cmp/i18n/xx.json").status_code == 404
    assert client.get("/cmp/i18n/..%2Fcmp.json").status_code == 404
