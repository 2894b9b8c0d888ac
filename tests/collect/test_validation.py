"""Checks and normalisation of single events, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.collect.validation import (
    EventProblems,
    Limits,
    corrected_timestamp,
    normalise_event,
)
from accord.core.clock import parse_instant

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LIMITS = Limits(
    max_event_bytes=32 * 1024, max_future=timedelta(days=1), max_age=timedelta(days=3650)
)


def check(raw: Any, implied: str | None = None, sent_at: datetime | None = None) -> dict[str, Any]:
    return normalise_event(
        raw, path="", implied_type=implied, received_at=NOW, batch_sent_at=sent_at, limits=LIMITS
    )


def problems(raw: Any, implied: str | None = None) -> dict[str, str]:
    with pytest.raises(EventProblems) as info:
        check(raw, implied)
    return {p.field: p.reason for p in info.value.problems}


def test_track_is_kept_with_its_fields() -> None:
    event = check(
        {
            "userId": "u1",
            "event": "Order Completed",
            "properties": {"revenue": 10},
            "context": {"ip": "192.0.2.1"},
            "messageId": "m-1",
            "timestamp": "2026-11-23T11:00:00Z",
        },
        implied="track",
    )
    assert event["type"] == "track"
    assert event["event"] == "Order Completed"
    assert event["properties"] == {"revenue": 10}
    assert event["messageId"] == "m-1"
    assert event["timestamp"] == "2026-11-23T11:00:00.000Z"
    assert event["receivedAt"] == "2026-11-23T12:00:00.000Z"


def test_numeric_ids_become_text() -> None:
    assert check({"type": "identify", "userId": 42})["userId"] == "42"


def test_missing_message_id_gets_one() -> None:
    first = check({"type": "page", "anonymousId": "a"})
    second = check({"type": "page", "anonymousId": "a"})
    assert first["messageId"] != second["messageId"]


def test_identify_traits_fall_back_to_context_traits() -> None:
    event = check({"type": "identify", "userId": "u", "context": {"traits": {"plan": "pro"}}})
    assert event["traits"] == {"plan": "pro"}


@pytest.mark.parametrize(
    ("raw", "implied", "field", "reason_part"),
    [
        ([], None, "body", "JSON object"),
        ({"userId": "u"}, None, "type", "required"),
        ({"type": "click", "userId": "u"}, None, "type", "must be one of"),
        ({"type": "track", "userId": "u"}, None, "event", "required"),
        ({"type": "track", "userId": "u", "event": 5}, None, "event", "required"),
        ({"type": "track", "event": "x"}, None, "userId", "userId or anonymousId"),
        ({"type": "track", "event": "x", "userId": ""}, None, "userId", "empty"),
        ({"type": "track", "event": "x", "userId": {"a": 1}}, None, "userId", "string"),
        ({"type": "track", "event": "x", "userId": True}, None, "userId", "string"),
        ({"type": "track", "event": "x", "userId": "u" * 256}, None, "userId", "255"),
        (
            {"type": "track", "event": "x", "userId": "u", "properties": []},
            None,
            "properties",
            "JSON object",
        ),
        ({"type": "identify", "userId": "u", "traits": "x"}, None, "traits", "JSON object"),
        (
            {"type": "track", "event": "x", "userId": "u", "context": 1},
            None,
            "context",
            "JSON object",
        ),
        ({"type": "group", "userId": "u"}, None, "groupId", "required"),
        ({"type": "alias", "userId": "u"}, None, "previousId", "required"),
        ({"type": "alias", "previousId": "p", "anonymousId": "a"}, None, "userId", "required"),
        ({"type": "page", "userId": "u", "name": 3}, None, "name", "string"),
        (
            {"type": "track", "event": "x", "userId": "u", "timestamp": "yesterday"},
            None,
            "timestamp",
            "ISO-8601",
        ),
        (
            {"type": "track", "event": "x", "userId": "u", "timestamp": 1700000000},
            None,
            "timestamp",
            "ISO-8601",
        ),
        (
            {"type": "track", "event": "x", "userId": "u", "sentAt": "nope"},
            None,
            "sentAt",
            "ISO-8601",
        ),
        (
            {"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-25T12:00:01Z"},
            None,
            "timestamp",
            "future",
        ),
        (
            {"type": "track", "event": "x", "userId": "u", "timestamp": "1990-01-01T00:00:00Z"},
            None,
            "timestamp",
            "older than 3650 days",
        ),
        (
            {"type": "track", "event": "x", "userId": "u", "properties": {"b": "x" * 40000}},
            None,
            "body",
            "limit is 32768",
        ),
    ],
)
def test_bad_events_name_the_field_and_reason(
    raw: Any, implied: str | None, field: str, reason_part: str
) -> None:
    found = problems(raw, implied)
    assert field in found, found
    assert reason_part in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"type": "track", "properties": 1, "context": []})
    assert set(found) == {"event", "userId", "properties", "context"}


def test_path_prefixes_fields_inside_a_batch() -> None:
    with pytest.raises(EventProblems) as info:
        normalise_event(
            {"type": "track", "userId": "u"},
            path="batch[7]",
            implied_type=None,
            received_at=NOW,
            batch_sent_at=None,
            limits=LIMITS,
        )
    assert info.value.problems[0].field == "batch[7].event"


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # The device clock runs 10 minutes fast: it says it sent at 12:10 what happened at 12:05.
    event = check(
        {
            "type": "track",
            "event": "x",
            "userId": "u",
            "timestamp": "2026-11-23T12:05:00Z",
            "sentAt": "2026-11-23T12:10:00Z",
        }
    )
    assert event["timestamp"] == "2026-11-23T11:55:00.000Z"
    assert event["originalTimestamp"] == "2026-11-23T12:05:00.000Z"
    assert event["sentAt"] == "2026-11-23T12:10:00.000Z"


def test_batch_sent_at_applies_when_the_event_has_none() -> None:
    event = check(
        {"type": "track", "event": "x", "userId": "u", "timestamp": "2026-11-23T11:00:00Z"},
        sent_at=datetime(2026, 11, 23, 11, 30, tzinfo=UTC),
    )
    assert event["timestamp"] == "2026-11-23T11:30:00.000Z"


def test_without_timestamp_the_receive_time_is_used() -> None:
    assert check({"type": "page", "anonymousId": "a"})["timestamp"] == "2026-11-23T12:00:00.000Z"


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@given(original=instants, skew=st.integers(-86400 * 30, 86400 * 30), delay=st.integers(0, 3600))
def test_skew_correction_recovers_true_time(original: datetime, skew: int, delay: int) -> None:
    """A device whose clock is off by `skew` reports times shifted by it; correction undoes it."""
    true_sent = original + timedelta(seconds=delay)
    received = true_sent  # network time is negligible next to the skew
    corrected = corrected_timestamp(
        original=original + timedelta(seconds=skew),
        sent_at=true_sent + timedelta(seconds=skew),
        received_at=received,
    )
    assert corrected == original


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


ids = st.one_of(st.text(max_size=12), st.integers(), json_scalars)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "x"]),
        "userId": ids,
        "anonymousId": ids,
        "event": ids,
        "messageId": ids,
        "groupId": ids,
        "previousId": ids,
        "name": ids,
        "timestamp": st.one_of(instants.map(lambda d: d.isoformat()), st.text(max_size=12)),
        "sentAt": st.one_of(instants.map(lambda d: d.isoformat()), json_scalars),
        "properties": json_values,
        "traits": json_values,
        "context": json_values,
    },
)


@given(raw=event_like)
def test_any_json_either_normalises_or_names_its_problems(raw: dict[str, Any]) -> None:
    try:
        event = check(raw)
    except EventProblems as exc:
        assert exc.problems
        assert all(p.field and p.reason for p in exc.problems)
        return
    assert event["type"] in {"track", "identify", "page", "screen", "group", "alias"}
    assert event.get("userId") or event.get("anonymousId")
    assert parse_instant(event["timestamp"]) <= NOW + LIMITS.max_future
