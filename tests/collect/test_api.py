"""The tracking API over HTTP, on SQLite and PostgreSQL: acceptance, dedupe and refusals."""

from __future__ import annotations

import base64
import gzip
from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap
from accord.collect.models import inbox
from accord.core.clock import iso, utcnow
from accord.store.db import Store

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def basic(write_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def stored_count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def post(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=content, headers=headers)


@pytest.mark.parametrize("kind", ["track", "identify", "page", "screen", "group", "alias"])
def test_each_call_is_stored(client: TestClient, keys: Bootstrap, store: Store, kind: str) -> None:
    body = {
        "userId": "u1",
        "event": "Signed Up",
        "groupId": "g1",
        "previousId": "a0",
        "messageId": f"m-{kind}",
    }
    response = post(client, f"/v1/{kind}", body, basic(keys.write_key))
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    with store.read() as conn:
        row = conn.execute(select(inbox).where(inbox.c.message_id == f"m-{kind}")).one()
    assert row.type == kind
    assert row.business_id == keys.business_id
    assert row.source_id == keys.source_id


def test_write_key_in_body_is_accepted(client: TestClient, keys: Bootstrap, store: Store) -> None:
    body = {"writeKey": keys.write_key, "batch": [{"type": "track", "event": "e", "userId": "u"}]}
    response = post(client, "/v1/batch", body, {"Content-Type": "application/json"})
    assert response.status_code == 200
    assert stored_count(store) == 1


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
def test_batch_aliases(client: TestClient, keys: Bootstrap, store: Store, path: str) -> None:
    body = {"batch": [{"type": "page", "anonymousId": "a", "messageId": path}]}
    assert post(client, path, body, basic(keys.write_key)).status_code == 200
    assert stored_count(store) == 1


def test_gzip_bodies_are_accepted(client: TestClient, keys: Bootstrap, store: Store) -> None:
    body = gzip.compress(orjson.dumps({"batch": [{"type": "page", "anonymousId": "a"}]}))
    headers = {**basic(keys.write_key), "Content-Encoding": "gzip"}
    assert post(client, "/v1/batch", body, headers).status_code == 200
    assert stored_count(store) == 1


def test_duplicate_message_ids_are_stored_once(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    event = {"type": "track", "event": "e", "userId": "u", "messageId": "same"}
    for _ in range(3):
        assert (
            post(client, "/v1/batch", {"batch": [event, event]}, basic(keys.write_key)).status_code
            == 200
        )
    assert stored_count(store) == 1


def _big_batch() -> dict[str, Any]:
    events = [
        {"type": "track", "event": "e", "userId": "u", "properties": {"pad": "x" * 30000}}
        for _ in range(20)
    ]
    return {"batch": events}


NOW_ISO = iso(utcnow())
BAD_INPUTS = [
    # (name, path, body, headers override, status, field, reason fragment)
    ("malformed JSON", "/v1/track", b'{"userId": "u",', None, 400, "body", "malformed JSON"),
    ("not an object", "/v1/track", b"[1, 2]", None, 400, "body", "JSON object"),
    (
        "missing type",
        "/v1/batch",
        {"batch": [{"userId": "u", "event": "e"}]},
        None,
        400,
        "batch[0].type",
        "required",
    ),
    ("missing event", "/v1/track", {"userId": "u"}, None, 400, "event", "required"),
    (
        "wrong type of userId",
        "/v1/track",
        {"userId": ["u"], "event": "e"},
        None,
        400,
        "userId",
        "string",
    ),
    (
        "wrong type of properties",
        "/v1/track",
        {"userId": "u", "event": "e", "properties": "p"},
        None,
        400,
        "properties",
        "JSON object",
    ),
    ("batch not a list", "/v1/batch", {"batch": {"type": "track"}}, None, 400, "batch", "list"),
    ("empty batch", "/v1/batch", {"batch": []}, None, 400, "batch", "at least one"),
    (
        "oversized event",
        "/v1/track",
        {"userId": "u", "event": "e", "properties": {"pad": "x" * 33000}},
        None,
        413,
        "body",
        "limit is 32768",
    ),
    (
        "oversized event in batch",
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "event": "e", "userId": "u", "properties": {"pad": "x" * 33000}}
            ]
        },
        None,
        400,
        "batch[0]",
        "limit is 32768",
    ),
    ("oversized batch", "/v1/batch", _big_batch(), None, 413, "body", "limit is 512000"),
    (
        "wrong content type",
        "/v1/track",
        {"userId": "u", "event": "e"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "Content-Type",
        "application/json",
    ),
    (
        "unknown write key",
        "/v1/track",
        {"userId": "u", "event": "e"},
        {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()},
        401,
        "writeKey",
        "unknown",
    ),
    (
        "no write key",
        "/v1/track",
        {"userId": "u", "event": "e"},
        {"Authorization": ""},
        401,
        "writeKey",
        "missing",
    ),
    (
        "future timestamp",
        "/v1/track",
        {"userId": "u", "event": "e", "timestamp": iso(utcnow() + timedelta(days=3))},
        None,
        400,
        "timestamp",
        "future",
    ),
    (
        "ancient timestamp",
        "/v1/track",
        {"userId": "u", "event": "e", "timestamp": "1969-07-20T20:17:00Z"},
        None,
        400,
        "timestamp",
        "older than",
    ),
    (
        "bad sentAt",
        "/v1/batch",
        {"sentAt": "soon", "batch": [{"type": "track", "event": "e", "userId": "u"}]},
        None,
        400,
        "sentAt",
        "ISO-8601",
    ),
    ("bad gzip", "/v1/track", b"not gzip", {"Content-Encoding": "gzip"}, 400, "body", "gzip"),
]


@pytest.mark.parametrize(
    ("name", "path", "body", "override", "status", "field", "reason"),
    BAD_INPUTS,
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_refused_and_loses_nothing(
    client: TestClient,
    keys: Bootstrap,
    store: Store,
    name: str,
    path: str,
    body: Any,
    override: dict[str, str] | None,
    status: int,
    field: str,
    reason: str,
) -> None:
    good = {"type": "track", "event": "Kept", "userId": "u", "messageId": "kept-1"}
    assert post(client, "/v1/batch", {"batch": [good]}, basic(keys.write_key)).status_code == 200

    headers = {**basic(keys.write_key), **(override or {})}
    response = post(client, path, body, headers)

    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False
    problems = {p["field"]: p["reason"] for p in payload["problems"]}
    assert field in problems, problems
    assert reason in problems[field]
    # The refusal stored nothing new and lost nothing already accepted.
    with store.read() as conn:
        ids = list(conn.execute(select(inbox.c.message_id)).scalars())
    assert ids == ["kept-1"]


def test_a_batch_with_one_bad_event_is_refused_whole(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    batch = [{"type": "track", "event": "e", "userId": "u"}, {"type": "track", "userId": "u"}]
    response = post(client, "/v1/batch", {"batch": batch}, basic(keys.write_key))
    assert response.status_code == 400
    assert [p["field"] for p in response.json()["problems"]] == ["batch[1].event"]
    assert stored_count(store) == 0


def test_openapi_describes_collection(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for kind in ("track", "identify", "page", "screen", "group", "alias", "batch"):
        assert f"/v1/{kind}" in spec["paths"]
    assert "/api/profiles" in spec["paths"]


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "cdn" not in page.lower()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
