"""CORS on the public write-key routes, short routes, /accord.js and a pixel's allowed origins."""

from __future__ import annotations

import gzip
import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap
from accord.collect.models import inbox
from accord.store.db import Store
from accord.web.cors import ALLOW_HEADERS
from accord.web.tag import tag_asset
from tests.conftest import opt_out_where_unknown

SITE = "https://shop.example"
# The size budget of issue 22: accord.js at most 6 KB gzipped.
TAG_BUDGET = 6 * 1024


def preflight(client: TestClient, path: str, origin: str = SITE, headers: str = "content-type"):  # type: ignore[no-untyped-def]
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


def count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


PUBLIC_PATHS = [
    "/v1/b",
    "/v1/t",
    "/v1/batch",
    "/v1/consent",
    "/v1/consent/config",
    "/v1/consent/anon-1",
    "/v1/recommendations",
    "/v1/experiments/banner/assignment",
]


def test_public_routes_answer_preflights_and_admin_routes_do_not(
    client: TestClient, keys: Bootstrap
) -> None:
    for path in PUBLIC_PATHS:
        answer = preflight(client, path, headers="authorization, content-type, anonymousid")
        assert answer.status_code == 204, path
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in answer.headers
    for header in ("Authorization", "AnonymousId", "SentAt", "Rsa-Retry-Attempt"):
        assert header in ALLOW_HEADERS.split(", ")
    assert preflight(client, "/api/profiles").status_code == 405
    answer = client.get("/api/profiles", headers={"Origin": SITE, **admin(keys)})
    assert "access-control-allow-origin" not in answer.headers


def test_short_routes_take_text_plain_with_the_key_in_the_body(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    # No consent and no location here: the business keeps such events (rule XX).
    opt_out_where_unknown(store, keys.business_id)
    calls = {
        "t": {"event": "Viewed"},
        "i": {"traits": {"plan": "pro"}},
        "p": {"name": "Home"},
        "s": {"name": "Home"},
        "g": {"groupId": "g1"},
        "a": {"previousId": "anon-0"},
    }
    for short, fields in calls.items():
        body = {"userId": "u1", "writeKey": keys.write_key, "messageId": short, **fields}
        answer = client.post(
            f"/v1/{short}",
            content=json.dumps(body),
            headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE},
        )
        assert answer.status_code == 200, (short, answer.text)
        assert answer.headers["access-control-allow-origin"] == "*"
    with store.read() as conn:
        types = dict(conn.execute(select(inbox.c.message_id, inbox.c.type)).all())
    assert types == {
        "t": "track",
        "i": "identify",
        "p": "page",
        "s": "screen",
        "g": "group",
        "a": "alias",
    }


def test_errors_carry_cors_and_store_nothing(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    plain = {"Content-Type": "text/plain", "Origin": SITE}
    cases = [
        ("/v1/t", b'{"event": "x", "userId": "u"}', 401, "writeKey"),
        ("/v1/t", b"{broken", 400, "body"),
        ("/v1/t", b"x" * (40 * 1024), 413, "body"),
        ("/v1/nowhere", b"{}", 404, None),
    ]
    for path, body, status, field in cases:
        answer = client.post(path, content=body, headers=plain)
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == "*"
        if field is not None:
            assert answer.json()["problems"][0]["field"] == field
    assert count(store) == 0


def test_allowed_origins_refuse_other_sites(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    path = f"/api/accounts/pixels/{keys.source_id}"
    bad = client.patch(path, json={"allowed_origins": ["shop.example/path"]}, headers=admin(keys))
    assert bad.status_code == 400
    assert bad.json()["problems"][0]["field"] == "allowed_origins.0"
    changed = client.patch(
        path, json={"allowed_origins": [SITE, "https://*.shop.example:443"]}, headers=admin(keys)
    )
    assert changed.status_code == 200
    assert changed.json()["allowed_origins"] == [SITE, "https://*.shop.example"]
    event = {"event": "Viewed", "userId": "u", "writeKey": keys.write_key}

    def send(origin: str) -> int:
        headers = {"Content-Type": "text/plain", "Origin": origin}
        return client.post("/v1/t", content=json.dumps(event), headers=headers).status_code

    assert send(SITE) == 200
    assert send("https://eu.shop.example") == 200
    assert send("https://evil.example") == 403
    assert preflight(client, "/v1/t", origin="https://evil.example").status_code == 403
    # Server libraries send no Origin and are not restricted.
    no_origin = client.post(
        "/v1/t", content=json.dumps(event), headers={"Content-Type": "text/plain"}
    )
    assert no_origin.status_code == 200
    assert count(store) == 3
    reset = client.patch(path, json={"allowed_origins": ["*"]}, headers=admin(keys))
    assert reset.json()["allowed_origins"] is None
    assert send("https://evil.example") == 200


def test_the_tag_is_served_within_its_budget(client: TestClient) -> None:
    answer = client.get("/accord.js", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["content-encoding"] == "gzip"
    assert len(tag_asset().gzipped) <= TAG_BUDGET
    assert gzip.decompress(tag_asset().gzipped) == tag_asset().body
    again = client.get("/accord.js", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304
