"""Public bodies are refused while they arrive, not after they are read whole (issue 19, item 3)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap

CHUNK = b" " * 1024
# Far more than any public limit (32 KB, 64 KB, 500 KB, 5 MB for ad logs).
SENT_CHUNKS = 8 * 1024


def _stream(
    client: TestClient, path: str, *, headers: dict[str, str], chunks: int = SENT_CHUNKS
) -> tuple[int, int]:
    """POST `chunks` KiB straight through ASGI; the status and how many bytes the app took."""
    taken = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken >= chunks * len(CHUNK):
            return {"type": "http.request", "body": b"", "more_body": False}
        taken += len(CHUNK)
        return {"type": "http.request", "body": CHUNK, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def call() -> None:
        await client.app(scope, receive, send)  # type: ignore[arg-type]

    assert client.portal is not None
    client.portal.call(call)
    return status, taken


def _form(client: TestClient, keys: Bootstrap) -> str:
    body = {
        "slug": "spring",
        "title": {"en": "Spring"},
        "fields": [{"key": "email", "kind": "email", "label": {"en": "Email"}}],
        "languages": ["en"],
        "privacy_policy_url": "https://shop.example/privacy",
        "from_address": "hello@shop.example",
    }
    created = client.post(
        "/api/leads/forms", json=body, headers={"Authorization": f"Bearer {keys.admin_token}"}
    )
    assert created.status_code == 201, created.text
    return "/l/spring"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/batch", "application/json"),
        ("/v1/track", "application/json"),
        ("/v1/consent", "application/json"),
        ("/v1/experiments/homepage/ad-logs", "application/json"),
        ("form", "application/x-www-form-urlencoded"),
    ],
)
def test_item_3_chunked_body_is_refused_at_its_limit(
    client: TestClient, keys: Bootstrap, path: str, content_type: str
) -> None:
    if path == "form":
        path = _form(client, keys)
    status, taken = _stream(client, path, headers={"content-type": content_type})
    assert status == 413
    # The app stops at the chunk that crosses the limit instead of taking all 8 MiB.
    assert taken < SENT_CHUNKS * len(CHUNK) * 3 // 4


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/consent", "form"])
def test_item_3_declared_length_over_the_limit_is_refused_unread(
    client: TestClient, keys: Bootstrap, path: str
) -> None:
    if path == "form":
        path = _form(client, keys)
    headers = {"content-type": "application/json", "content-length": str(100 * 1024 * 1024)}
    status, taken = _stream(client, path, headers=headers)
    assert (status, taken) == (413, 0)


def test_item_3_bodies_within_the_limit_still_arrive(client: TestClient, keys: Bootstrap) -> None:
    response = client.post(
        "/v1/track",
        json={"type": "track", "event": "Viewed", "userId": "u1"},
        auth=(keys.write_key, ""),
    )
    assert response.status_code == 200, response.text
