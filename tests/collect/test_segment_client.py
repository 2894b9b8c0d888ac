"""Segment's own Python library against a real `accord serve` process.

Every call type goes through the library's sync and queued (batching) modes, with
and without gzip, and must come out intact in the inbox, on the profile read API
and in the lake.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow.dataset as ds
import pytest
import segment.analytics as analytics
import segment.analytics.request as segment_request
from segment.analytics import Client
from segment.analytics.request import APIError, DatetimeSerializer
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.collect.models import inbox
from accord.core.clock import parse_instant
from accord.lake.service import visible_files
from accord.store.db import Store
from tests.serverproc import ServerProcess, server_env

DRAIN_TIMEOUT = 60.0
# Stored instants have millisecond precision, truncated; the skew rule computed on
# the stored values can be off by that much from the one computed on exact values.
MS = timedelta(milliseconds=1)

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


@pytest.fixture
def server(tmp_path: Path, database_url: str, keys: Bootstrap) -> Iterator[ServerProcess]:
    env = server_env(data_dir=tmp_path, database_url=database_url, lake_url=str(tmp_path / "lake"))
    with ServerProcess(env, log_path=tmp_path / "server.log") as proc:
        yield proc


class Sent:
    """Records what the library put on the wire: headers and decoded bodies."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def wrap(self, post: Callable[..., Any]) -> Callable[..., Any]:
        def recording_post(url: str, **kwargs: Any) -> Any:
            response = post(url, **kwargs)
            with self.lock:
                self.requests.append(
                    {"url": url, "headers": dict(kwargs["headers"]), "status": response.status_code}
                )
            return response

        return recording_post


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    recorder = Sent()
    monkeypatch.setattr(
        segment_request._session, "post", recorder.wrap(segment_request._session.post)
    )
    return recorder


def wire(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the library serialises it."""
    result: dict[str, Any] = json.loads(json.dumps(message, cls=DatetimeSerializer))
    return result


def inbox_payloads(store: Store) -> dict[str, dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(select(inbox.c.message_id, inbox.c.payload)).all()
    payloads = {row.message_id: json.loads(row.payload) for row in rows}
    assert len(payloads) == len(rows)
    return payloads


def lake_rows(lake: Path) -> dict[str, dict[str, Any]]:
    # Through the visible files: the scheduler's lake.compact job may have merged them.
    table = ds.dataset(
        visible_files(str(lake)),
        format="parquet",
        partitioning=ds.partitioning(flavor="hive"),
        partition_base_dir=str(lake),
    ).to_table()
    rows = {row["message_id"]: row for row in table.to_pylist()}
    assert len(rows) == table.num_rows, "a messageId appears twice in the lake"
    return rows


def profile(server: ServerProcess, token: str, **query: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/api/profiles",
        params=query,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def instant(value: str) -> datetime:
    return parse_instant(value)


def check_envelope(
    stored: dict[str, Any], message: dict[str, Any], *, skew: timedelta = timedelta(0)
) -> None:
    """Everything the library sent is stored unchanged, and the times follow Segment's rules."""
    for key, value in message.items():
        if key == "timestamp" or value is None:
            continue
        assert stored[key] == value, key
    assert stored["context"]["library"]["name"] == "analytics-python"
    original = instant(message["timestamp"])
    assert instant(stored["originalTimestamp"]) == original
    sent_at = instant(stored["sentAt"])
    received_at = instant(stored["receivedAt"])
    timestamp = instant(stored["timestamp"])
    # Clock-skew correction: timestamp = receivedAt - (sentAt - originalTimestamp).
    assert abs(timestamp - (received_at - (sent_at - original))) <= MS
    # sentAt is the device's clock at sending, `skew` ahead of this server's.
    assert abs(sent_at - skew - received_at) < timedelta(seconds=5)


def check_lake_row(row: dict[str, Any], stored: dict[str, Any]) -> None:
    assert row["type"] == stored["type"]
    assert row["user_id"] == stored.get("userId")
    assert row["anonymous_id"] == stored.get("anonymousId")
    for column, field in (
        ("timestamp", "timestamp"),
        ("original_timestamp", "originalTimestamp"),
        ("sent_at", "sentAt"),
        ("received_at", "receivedAt"),
    ):
        assert row[column] == instant(stored[field]), column
    for column in ("properties", "traits", "context"):
        expected = stored.get(column) or None
        assert (json.loads(row[column]) if row[column] else None) == expected, column
    assert row["source_id"]
    assert row["day"] == instant(stored["timestamp"]).date().isoformat()


def test_every_call_type_arrives_intact(
    server: ServerProcess, store: Store, keys: Bootstrap, tmp_path: Path, sent: Sent
) -> None:
    client = Client(write_key=keys.write_key, host=server.base_url, sync_mode=True, max_retries=0)
    user, anon = "user-42", "anon-42"
    earlier = (datetime.now(UTC) - timedelta(days=3, hours=5)).replace(microsecond=123000)
    calls: dict[str, tuple[bool, dict[str, Any]]] = {
        "identify": client.identify(
            user_id=user,
            anonymous_id=anon,
            traits={"email": "Ada.Lovelace@Example.COM", "name": "Ada", "age": 36, "vip": True},
            context={"ip": "203.0.113.7", "locale": "en-GB", "traits": {"ignored": 1}},
            message_id="msg-identify",
        ),
        "track": client.track(
            user_id=user,
            anonymous_id=anon,
            event="Order Completed",
            properties={
                "order_id": "ord-1",
                "revenue": Decimal("42.50"),
                "currency": "EUR",
                "products": [{"product_id": "sku-7", "category": "Shoes", "quantity": 2}],
                "placed_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                "tags": ("gift", "express"),
                "note": "naïve café ✓",
            },
            context={
                "channel": "server",
                "campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
                "page": {"url": "https://shop.example.com/checkout"},
            },
            timestamp=earlier,
            message_id="msg-track",
        ),
        "page": client.page(
            user_id=user,
            category="Docs",
            name="Getting Started",
            properties={
                "url": "https://shop.example.com/docs?ref=x",
                "path": "/docs",
                "referrer": "https://search.example.org/",
            },
            message_id="msg-page",
        ),
        "screen": client.screen(
            user_id=user,
            category="Main",
            name="Home",
            properties={"variant": "b"},
            message_id="msg-screen",
        ),
        "group": client.group(
            user_id=user,
            group_id="grp-1",
            traits={"name": "Acme Ltd", "employees": 42},
            message_id="msg-group",
        ),
        "alias": client.alias(
            previous_id="anon-before-login", user_id=user, message_id="msg-alias"
        ),
    }
    assert all(ok for ok, _ in calls.values())
    messages = {kind: wire(msg) for kind, (_, msg) in calls.items()}
    assert len(sent.requests) == len(calls)
    assert all(r["url"].endswith("/v1/batch") and r["status"] == 200 for r in sent.requests)

    # The inbox holds each message as sent, plus Segment's time fields.
    payloads = inbox_payloads(store)
    assert set(payloads) == {m["messageId"] for m in messages.values()}
    for kind, message in messages.items():
        stored = payloads[message["messageId"]]
        assert stored["type"] == kind
        check_envelope(stored, message)
    track = payloads["msg-track"]
    assert track["event"] == "Order Completed"
    assert track["properties"]["revenue"] == 42.5
    assert track["properties"]["placed_at"] == "2026-01-02T03:04:05+00:00"
    assert track["properties"]["tags"] == ["gift", "express"]
    assert track["properties"]["note"] == "naïve café ✓"
    # The device and this server share a clock, so the corrected time is the event's time.
    assert instant(track["originalTimestamp"]) == earlier
    assert abs(instant(track["timestamp"]) - earlier) < timedelta(seconds=5)
    assert payloads["msg-page"]["name"] == "Getting Started"
    assert payloads["msg-page"]["category"] == "Docs"
    assert payloads["msg-screen"]["name"] == "Home"
    assert payloads["msg-group"]["groupId"] == "grp-1"
    assert payloads["msg-group"]["traits"] == {"name": "Acme Ltd", "employees": 42}
    assert payloads["msg-alias"]["previousId"] == "anon-before-login"
    assert payloads["msg-identify"]["traits"]["email"] == "Ada.Lovelace@Example.COM"

    server.wait_drained(DRAIN_TIMEOUT)

    # One profile, found by each of its identifiers, with the identify traits.
    found = profile(server, keys.admin_token, user_id=user)
    assert found["business_id"] == keys.business_id
    assert {(i["kind"], i["value"]) for i in found["identifiers"]} == {
        ("user_id", user),
        ("anonymous_id", anon),
        ("anonymous_id", "anon-before-login"),
        ("email", "ada.lovelace@example.com"),
    }
    assert found["traits"] == {
        "email": "Ada.Lovelace@Example.COM",
        "name": "Ada",
        "age": 36,
        "vip": True,
    }
    assert instant(found["first_seen"]) == instant(track["timestamp"])
    # Newest first: sync mode stored the calls in the order they were made.
    assert [e["messageId"] for e in found["recent_events"]] == [
        m["messageId"] for m in reversed(messages.values())
    ]
    for event in found["recent_events"]:
        assert event == payloads[event["messageId"]]
    for query in (
        {"anonymous_id": anon},
        {"anonymous_id": "anon-before-login"},
        {"email": "ADA.LOVELACE@example.com"},
    ):
        assert profile(server, keys.admin_token, **query)["id"] == found["id"]

    # The lake holds each event once, with its typed columns filled.
    rows = lake_rows(tmp_path / "lake")
    assert set(rows) == set(payloads)
    for message_id, row in rows.items():
        check_lake_row(row, payloads[message_id])
        assert row["business_id"] == keys.business_id
        assert row["source_id"] == keys.source_id
        assert json.loads(row["context"])["library"]["name"] == "analytics-python"
    assert rows["msg-track"]["event"] == "Order Completed"
    assert rows["msg-track"]["revenue"] == 42.5
    assert rows["msg-track"]["currency"] == "EUR"
    assert rows["msg-track"]["order_id"] == "ord-1"
    assert rows["msg-track"]["product_id"] == "sku-7"
    assert rows["msg-track"]["category"] == "Shoes"
    assert rows["msg-track"]["channel"] == "server"
    assert rows["msg-track"]["utm_source"] == "newsletter"
    assert rows["msg-track"]["utm_medium"] == "email"
    assert rows["msg-track"]["utm_campaign"] == "spring"
    assert rows["msg-track"]["page_url"] == "https://shop.example.com/checkout"
    assert rows["msg-page"]["name"] == "Getting Started"
    assert rows["msg-page"]["category"] == "Docs"
    assert rows["msg-page"]["page_url"] == "https://shop.example.com/docs?ref=x"
    assert rows["msg-page"]["page_path"] == "/docs"
    assert rows["msg-page"]["page_referrer"] == "https://search.example.org/"
    assert rows["msg-screen"]["name"] == "Home"
    assert rows["msg-screen"]["category"] == "Main"
    assert rows["msg-group"]["group_id"] == "grp-1"
    assert rows["msg-alias"]["previous_id"] == "anon-before-login"
    assert json.loads(rows["msg-identify"]["traits"])["email"] == "Ada.Lovelace@Example.COM"


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_queued_batches(
    server: ServerProcess, store: Store, keys: Bootstrap, tmp_path: Path, sent: Sent, gzip: bool
) -> None:
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = Client(
        write_key=keys.write_key,
        host=server.base_url,
        gzip=gzip,
        upload_size=100,
        upload_interval=0.05,
        max_retries=2,
        on_error=lambda exc, batch: errors.append((exc, batch)),
    )
    messages = []
    try:
        for i in range(450):
            user = f"batch-user-{i % 15}"
            if i % 15 == i // 15 % 15:
                ok, msg = client.identify(
                    user_id=user, traits={"email": f"{user}@example.com", "n": i}
                )
            else:
                ok, msg = client.track(
                    user_id=user, event=f"Event {i % 7}", properties={"i": i, "even": i % 2 == 0}
                )
            assert ok
            messages.append(wire(msg))
        client.flush()
    finally:
        client.join()
    assert errors == []
    assert sent.requests, "the client sent nothing"
    assert all(r["status"] == 200 for r in sent.requests)
    assert all(
        r["headers"].get("Content-Encoding") == ("gzip" if gzip else None) for r in sent.requests
    )
    # The library batched: fewer requests than messages.
    assert len(sent.requests) < len(messages)

    payloads = inbox_payloads(store)
    assert set(payloads) == {m["messageId"] for m in messages}
    for message in messages:
        check_envelope(payloads[message["messageId"]], message)

    server.wait_drained(DRAIN_TIMEOUT)
    rows = lake_rows(tmp_path / "lake")
    assert set(rows) == set(payloads)
    for message_id, row in rows.items():
        check_lake_row(row, payloads[message_id])
    for u in range(15):
        user = f"batch-user-{u}"
        found = profile(server, keys.admin_token, user_id=user)
        assert {(i["kind"], i["value"]) for i in found["identifiers"]} == {
            ("user_id", user),
            ("email", f"{user}@example.com"),
        }
        assert found["traits"]["email"] == f"{user}@example.com"
        assert len(found["recent_events"]) == 30


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_skewed_device_clock_is_corrected(
    server: ServerProcess,
    store: Store,
    keys: Bootstrap,
    monkeypatch: pytest.MonkeyPatch,
    gzip: bool,
) -> None:
    """A device whose clock is an hour fast: the event's time is shifted back by an hour."""
    skew = timedelta(hours=1)

    class FastClock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + skew

    # The library stamps sentAt with this clock when it posts.
    monkeypatch.setattr(segment_request, "datetime", FastClock)
    client = Client(
        write_key=keys.write_key, host=server.base_url, sync_mode=True, gzip=gzip, max_retries=0
    )
    device_time = (datetime.now(UTC) + skew - timedelta(minutes=10)).replace(microsecond=0)
    before = datetime.now(UTC)
    _, msg = client.track(
        user_id="skewed", event="Clicked", timestamp=device_time, message_id="msg-skew"
    )
    after = datetime.now(UTC)
    stored = inbox_payloads(store)["msg-skew"]
    check_envelope(stored, wire(msg), skew=skew)
    assert instant(stored["originalTimestamp"]) == device_time
    assert before + skew - MS <= instant(stored["sentAt"]) <= after + skew
    # The event happened ten minutes before it was sent, by the server's clock: its
    # age on the device (sentAt - device_time) is measured back from receipt.
    age_low, age_high = before + skew - device_time, after + skew - device_time
    assert timedelta(minutes=9) < age_low <= age_high < timedelta(minutes=11)
    corrected = instant(stored["timestamp"])
    assert before - age_high - MS <= corrected <= after - age_low + MS
    assert abs(corrected - (device_time - skew)) < timedelta(seconds=5)

    server.wait_drained(DRAIN_TIMEOUT)
    found = profile(server, keys.admin_token, user_id="skewed")
    assert instant(found["first_seen"]) == corrected


def test_module_level_api(server: ServerProcess, store: Store, keys: Bootstrap) -> None:
    """`analytics.write_key = …; analytics.track(…)`, the way most applications use it."""
    saved = {name: getattr(analytics, name) for name in ("write_key", "host", "sync_mode")}
    analytics.write_key = keys.write_key
    analytics.host = server.base_url
    analytics.sync_mode = True
    analytics.default_client = None
    try:
        analytics.identify("mod-user", {"email": "mod@example.com"}, message_id="msg-mod-1")
        analytics.track("mod-user", "Signed Up", {"plan": "free"}, message_id="msg-mod-2")
        analytics.flush()
    finally:
        analytics.default_client = None
        for name, value in saved.items():
            setattr(analytics, name, value)
    payloads = inbox_payloads(store)
    assert payloads["msg-mod-1"]["traits"] == {"email": "mod@example.com"}
    assert payloads["msg-mod-2"]["event"] == "Signed Up"
    assert payloads["msg-mod-2"]["properties"] == {"plan": "free"}
    server.wait_drained(DRAIN_TIMEOUT)
    found = profile(server, keys.admin_token, email="mod@example.com")
    assert {e["messageId"] for e in found["recent_events"]} == {"msg-mod-1", "msg-mod-2"}


def test_wrong_write_key_is_reported_not_retried(
    server: ServerProcess, store: Store, sent: Sent
) -> None:
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = Client(
        write_key="wk_not_a_real_key",
        host=server.base_url,
        upload_interval=0.05,
        on_error=lambda exc, batch: errors.append((exc, batch)),
    )
    try:
        client.track(user_id="u", event="Lost", message_id="msg-lost")
        client.flush()
    finally:
        client.join()
    assert len(errors) == 1
    error, batch = errors[0]
    assert isinstance(error, APIError)
    assert error.status == 401
    # The library reads the error's name from `code`.
    assert error.code == "unknown_write_key"
    assert [m["messageId"] for m in batch] == ["msg-lost"]
    # 401 is not retryable for the library: one request only.
    assert [r["status"] for r in sent.requests] == [401]
    assert inbox_payloads(store) == {}

    sync_client = Client(write_key="wk_not_a_real_key", host=server.base_url, sync_mode=True)
    with pytest.raises(APIError) as raised:
        sync_client.track(user_id="u", event="Lost")
    assert raised.value.status == 401
