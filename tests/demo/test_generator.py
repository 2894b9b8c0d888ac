"""Tests for the demo-data generator: determinism, Segment shape and modelled behaviour."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import accord.demo.generator as generator_module
from accord.demo.generator import (
    CATALOG,
    DemoConfig,
    generate_events,
    generate_n_events,
    generate_visitor_events,
    summarise,
)

Event = dict[str, Any]

VALID_TYPES = {"track", "identify", "page", "screen", "group", "alias"}
DOC_NETWORKS = ("192.0.2.", "198.51.100.", "203.0.113.")
SERVER_CHANNELS = {"pos", "email"}


def _events(config: DemoConfig) -> list[Event]:
    return list(generate_events(config))


@pytest.fixture(scope="module")
def sample() -> list[Event]:
    # Large enough that rare behaviours (POS, alias, group, unsubscribe) all show up.
    return _events(DemoConfig(seed=7, visitors=2000, pos_share=0.1))


def _parse(timestamp: str) -> datetime:
    assert timestamp.endswith("Z") or timestamp.endswith("+00:00"), timestamp
    parsed = datetime.fromisoformat(timestamp)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def _is_server_side(event: Event) -> bool:
    return event["context"].get("channel") in SERVER_CHANNELS


def _cents(amount: float) -> int:
    return round(amount * 100)


def check_invariants(events: list[Event], config: DemoConfig) -> None:
    """Everything that must hold for any config, shared by example and property tests."""
    start = config.start
    end = config.start + timedelta(days=config.days)
    ids = [event["messageId"] for event in events]
    assert len(set(ids)) == len(ids)
    last_seen: dict[str, datetime] = {}
    for event in events:
        assert json.loads(json.dumps(event)) == event
        assert event["type"] in VALID_TYPES
        assert uuid.UUID(event["messageId"]).version == 4
        assert event.get("anonymousId") or event.get("userId")
        moment = _parse(event["timestamp"])
        assert start <= moment <= end
        context = event["context"]
        assert context["library"]["name"] and context["library"]["version"]
        for key in ("anonymousId", "userId"):
            if key in event:
                # Each person's own stream is chronological, so every id's events are too.
                assert last_seen.get(event[key], moment) <= moment
                last_seen[event[key]] = moment
        _check_shape(event)


def _check_shape(event: Event) -> None:
    context = event["context"]
    kind = event["type"]
    if _is_server_side(event):
        assert kind == "track"
        assert "anonymousId" not in event
        assert event["userId"].startswith("u_")
    else:
        assert context["ip"].startswith(DOC_NETWORKS)
        assert context["userAgent"]
        assert context["locale"]
        if kind != "screen" and "app" not in context:
            page = context["page"]
            assert page["url"].startswith("https://") and page["path"].startswith("/")
            assert "referrer" in page and page["title"]
        if "campaign" in context:
            assert set(context["campaign"]) == {"source", "medium", "name"}
    if kind == "track":
        assert isinstance(event["event"], str) and isinstance(event["properties"], dict)
    elif kind in ("page", "screen"):
        assert event["name"] and isinstance(event["properties"], dict)
        if kind == "page":
            assert {"url", "path", "title", "referrer"} <= set(event["properties"])
    elif kind == "identify":
        assert event["userId"] and event["traits"]["email"].split("@")[1] in (
            "example.com",
            "example.org",
            "example.net",
        )
        assert event["traits"]["phone"].startswith("+") and event["traits"]["phone"][1:].isdigit()
    elif kind == "group":
        assert event["groupId"] and {"name", "industry", "employees"} <= set(event["traits"])
    elif kind == "alias":
        assert event["previousId"] == event["anonymousId"] and event["userId"]
    if event.get("event") in ("Order Completed", "Checkout Started"):
        properties = event["properties"]
        assert properties["currency"] == "EUR"
        line_cents = sum(_cents(p["price"]) * p["quantity"] for p in properties["products"])
        assert _cents(properties["revenue"]) == line_cents
        assert (
            round(sum(p["price"] * p["quantity"] for p in properties["products"]), 2)
            == (properties["revenue"])
        )
        for product in properties["products"]:
            assert {"product_id", "sku", "name", "category", "price", "quantity"} <= set(product)
    if context.get("channel") == "pos":
        assert event["event"] == "Order Completed"
        assert context["library"]["name"] == "accord-pos-import"
        assert event["properties"]["store_id"]


# -- determinism ------------------------------------------------------------------------


def test_same_config_gives_byte_identical_output() -> None:
    config = DemoConfig(seed=3, visitors=150)
    first = json.dumps(_events(config))
    second = json.dumps(_events(config))
    assert first == second


def test_different_seeds_give_different_data() -> None:
    assert _events(DemoConfig(seed=1, visitors=20)) != _events(DemoConfig(seed=2, visitors=20))


def test_output_does_not_depend_on_hash_randomisation() -> None:
    code = (
        "import hashlib, json; from accord.demo.generator import DemoConfig, generate_events; "
        "print(hashlib.sha256(json.dumps(list(generate_events(DemoConfig(visitors=60))))"
        ".encode()).hexdigest())"
    )
    src = str(Path(generator_module.__file__).resolve().parents[2])
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": src}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    local = hashlib.sha256(json.dumps(_events(DemoConfig(visitors=60))).encode()).hexdigest()
    assert digests == {local}


# -- generate_n_events --------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000, 12_345])
def test_generate_n_events_returns_exactly_n(n: int) -> None:
    assert sum(1 for _ in generate_n_events(n, seed=11)) == n


def test_generate_n_events_is_a_prefix_of_generate_events() -> None:
    n = 3000
    expected = list(itertools.islice(generate_events(DemoConfig(seed=5, visitors=10_000)), n))
    assert list(generate_n_events(n, seed=5)) == expected


def test_visitor_ranges_are_the_same_visitors_as_the_whole_stream() -> None:
    config = DemoConfig(seed=5, visitors=40)
    whole = list(generate_events(config))
    shards = [
        list(generate_visitor_events(range(lo, lo + 10), seed=5, first_position=lo << 40))
        for lo in range(0, 40, 10)
    ]
    assert [e for shard in shards for e in shard] != whole  # ids differ by position
    strip = [{k: v for k, v in e.items() if k != "messageId"} for e in whole]
    assert [{k: v for k, v in e.items() if k != "messageId"} for s in shards for e in s] == strip
    # From position 0 the first range is exactly the stream's start, ids included.
    assert shards[0] == whole[: len(shards[0])]
    # Disjoint positions: no id is shared across ranges.
    ids = [e["messageId"] for shard in shards for e in shard]
    assert len(set(ids)) == len(ids)


def test_generate_n_events_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        generate_n_events(-1)


def test_streams_lazily() -> None:
    # A billion visitors would never fit in memory: the first event must come at once.
    first = next(generate_events(DemoConfig(visitors=10**9)))
    assert first["type"] in VALID_TYPES


def test_memory_does_not_grow_with_event_count() -> None:
    def peak(n: int) -> int:
        tracemalloc.start()
        for _ in generate_n_events(n):
            pass
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    small, large = peak(1_000), peak(12_000)
    assert large < small * 2 + 200_000


# -- invariants on a fixed sample ---------------------------------------------------------


def test_sample_invariants(sample: list[Event]) -> None:
    check_invariants(sample, DemoConfig(seed=7, visitors=2000, pos_share=0.1))


def test_invariants_hold_for_an_odd_window() -> None:
    start = datetime(2027, 3, 28, 13, 45, 10, 500_500, tzinfo=timezone(timedelta(hours=2)))
    config = DemoConfig(seed=9, visitors=300, start=start, days=1, pos_share=0.5)
    events = _events(config)
    assert events
    check_invariants(events, config)


def test_every_event_type_and_funnel_step_occurs(sample: list[Event]) -> None:
    counts = summarise(sample)
    for key in (
        "page",
        "screen",
        "identify",
        "alias",
        "group",
        "Consent Updated",
        "Product List Viewed",
        "Product Viewed",
        "Products Searched",
        "Product Added",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
        "Signed Up",
        "Email Delivered",
        "Email Opened",
        "Email Link Clicked",
        "Unsubscribed",
    ):
        assert counts.get(key, 0) > 0, key
    # A funnel narrows at every step.
    assert counts["Product Viewed"] > counts["Product Added"] > counts["Checkout Started"]
    assert counts["Checkout Started"] > counts["Order Completed"] - _pos_orders(sample)


def _pos_orders(events: Iterable[Event]) -> int:
    return sum(1 for e in events if e["context"].get("channel") == "pos")


def test_pos_share_is_respected(sample: list[Event]) -> None:
    orders = [e for e in sample if e.get("event") == "Order Completed"]
    share = _pos_orders(orders) / len(orders)
    assert 0.05 < share < 0.16
    assert _pos_orders(_events(DemoConfig(seed=7, visitors=300, pos_share=0.0))) == 0


def test_first_page_view_of_each_device_carries_a_consent_choice(sample: list[Event]) -> None:
    by_device: dict[str, list[Event]] = defaultdict(list)
    for event in sample:
        if "anonymousId" in event:
            by_device[event["anonymousId"]].append(event)
    choices: Counter[str] = Counter()
    for events in by_device.values():
        assert events[0]["type"] in ("page", "screen")
        assert "consent" not in events[0]["context"]
        consent = events[1]
        assert consent["event"] == "Consent Updated"
        assert consent["properties"]["regime"] == "gdpr"
        purposes = consent["properties"]["purposes"]
        assert set(purposes) == {"necessary", "preferences", "statistics", "marketing"}
        assert purposes["necessary"] is True
        assert consent["context"]["consent"]["categoryPreferences"] == purposes
        optional = {purposes["preferences"], purposes["statistics"], purposes["marketing"]}
        choices["all" if optional == {True} else "none" if optional == {False} else "custom"] += 1
    total = sum(choices.values())
    assert abs(choices["all"] / total - 0.60) < 0.05
    assert abs(choices["none"] / total - 0.25) < 0.05
    assert abs(choices["custom"] / total - 0.15) < 0.05


def test_returning_visitors_and_second_devices(sample: list[Event]) -> None:
    sessions_per_device: Counter[str] = Counter(
        e["anonymousId"]
        for e in sample
        if e.get("event") == "Consent Updated"
        or (e["type"] == "page" and e["properties"]["referrer"] == "")
    )
    assert any(count > 1 for count in sessions_per_device.values())
    devices_per_user: dict[str, set[str]] = defaultdict(set)
    for event in sample:
        if "userId" in event and "anonymousId" in event:
            devices_per_user[event["userId"]].add(event["anonymousId"])
    assert sum(1 for devices in devices_per_user.values() if len(devices) > 1) >= 5
    app_events = [e for e in sample if "app" in e["context"]]
    assert app_events and all(e["type"] != "page" for e in app_events)


def test_marketing_email_only_after_identify_with_marketing_consent(sample: list[Event]) -> None:
    first_identify: dict[str, Event] = {}
    for event in sample:
        user: str = event.get("userId", "")
        if event["type"] == "identify" and user not in first_identify:
            first_identify[user] = event
        if event["context"].get("channel") == "email":
            identify = first_identify[user]
            assert identify["timestamp"] <= event["timestamp"]
            assert identify["context"]["consent"]["categoryPreferences"]["marketing"] is True
            assert {"campaign_id", "email_id"} <= set(event["properties"])


def test_no_email_after_unsubscribing(sample: list[Event]) -> None:
    unsubscribed: set[str] = set()
    for event in sample:
        if event["context"].get("channel") != "email":
            continue
        assert event["userId"] not in unsubscribed
        if event["event"] == "Unsubscribed":
            unsubscribed.add(event["userId"])


def test_identify_traits_are_unique_per_user(sample: list[Event]) -> None:
    traits_by_user: dict[str, tuple[str, str]] = {}
    for event in sample:
        if event["type"] == "identify":
            traits = (event["traits"]["email"], event["traits"]["phone"])
            assert traits_by_user.setdefault(event["userId"], traits) == traits
    emails = [email for email, _ in traits_by_user.values()]
    phones = [phone for _, phone in traits_by_user.values()]
    assert len(set(emails)) == len(emails) and len(set(phones)) == len(phones)


def test_order_ids_are_unique(sample: list[Event]) -> None:
    order_ids = [e["properties"]["order_id"] for e in sample if e.get("event") == "Order Completed"]
    assert len(set(order_ids)) == len(order_ids)


def test_evening_traffic_beats_night_traffic(sample: list[Event]) -> None:
    hours = Counter(_parse(e["timestamp"]).hour for e in sample if e["type"] == "page")
    assert sum(hours[h] for h in (18, 19, 20)) > 4 * sum(hours[h] for h in (2, 3, 4))


# -- catalogue, config and summary -------------------------------------------------------


def test_catalog_is_stable_and_consistent() -> None:
    assert len(CATALOG) == 40
    assert len({p.product_id for p in CATALOG}) == 40
    assert len({p.sku for p in CATALOG}) == 40
    assert {p.category for p in CATALOG} == {"shoes", "jackets", "bags", "accessories"}
    assert CATALOG[0].product_id == "prd_1001" and CATALOG[0].price == 149.95


@pytest.mark.parametrize(
    "kwargs",
    [
        {"visitors": -1},
        {"days": 0},
        {"pos_share": 1.5},
        {"pos_share": -0.1},
        {"start": datetime(2026, 10, 1)},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DemoConfig(**kwargs)


def test_summarise_counts_every_event() -> None:
    events = _events(DemoConfig(seed=4, visitors=50))
    counts = summarise(events)
    assert sum(counts.values()) == len(events)
    assert list(counts) == sorted(counts)
    assert counts["page"] == sum(1 for e in events if e["type"] == "page")
    assert summarise([]) == {}


# -- property test ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=-(2**40), max_value=2**40),
    visitors=st.integers(min_value=0, max_value=12),
    days=st.integers(min_value=1, max_value=60),
    offset_minutes=st.integers(min_value=0, max_value=60 * 24 * 400),
    pos_share=st.floats(min_value=0.0, max_value=1.0),
)
def test_invariants_hold_for_any_config(
    seed: int, visitors: int, days: int, offset_minutes: int, pos_share: float
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=offset_minutes)
    config = DemoConfig(seed=seed, visitors=visitors, start=start, days=days, pos_share=pos_share)
    events = _events(config)
    check_invariants(events, config)
    assert events == _events(config)
    if visitors:
        assert events
