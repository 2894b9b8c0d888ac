"""Pure checks and normalisation of Segment-spec events: one raw dict in, one clean dict out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from accord.core.clock import iso, parse_instant
from accord.core.errors import FieldProblem

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
# Fields Segment clients send that are objects when present.
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
ID_MAX_LENGTH = 255


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_future: timedelta
    max_age: timedelta


class EventProblems(Exception):
    """Raised with every problem found in one event, so a client can fix them all at once."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))
        self.problems = problems


def _identifier(value: Any, field: str, problems: list[FieldProblem]) -> str | None:
    """Segment ids are strings; numbers are accepted and kept as their decimal text."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.append(FieldProblem(field, "must be a string"))
        return None
    text = str(value)
    if not text.strip():
        problems.append(FieldProblem(field, "must not be empty"))
        return None
    if len(text) > ID_MAX_LENGTH:
        problems.append(FieldProblem(field, f"must be at most {ID_MAX_LENGTH} characters"))
        return None
    if "\x00" in text:
        # Refused per event here, not by the store's guard, which would fail the whole
        # group of requests the inbox writer inserts together.
        problems.append(FieldProblem(field, "must not contain the NUL character"))
        return None
    return text


def _instant(value: Any, field: str, problems: list[FieldProblem]) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(FieldProblem(field, "must be an ISO-8601 date-time string"))
        return None
    try:
        return parse_instant(value)
    except ValueError:
        problems.append(FieldProblem(field, "is not a valid ISO-8601 date-time"))
        return None


def corrected_timestamp(
    *, original: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew correction: shift the device time by the device's clock error."""
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def normalise_event(
    raw: Any,
    *,
    path: str,
    implied_type: str | None,
    received_at: datetime,
    batch_sent_at: datetime | None,
    limits: Limits,
) -> dict[str, Any]:
    """Check one event and return it in the stored envelope, or raise `EventProblems`."""
    if not isinstance(raw, dict):
        raise EventProblems([FieldProblem(path or "body", "must be a JSON object")])
    problems: list[FieldProblem] = []
    prefix = f"{path}." if path else ""

    try:
        size = len(orjson.dumps(raw))
    except TypeError as exc:
        # Only reachable from Python callers: HTTP bodies were parsed by orjson already.
        raise EventProblems([FieldProblem(path or "body", f"cannot be stored: {exc}")]) from exc
    if size > limits.max_event_bytes:
        raise EventProblems(
            [
                FieldProblem(
                    path or "body", f"event is {size} bytes; the limit is {limits.max_event_bytes}"
                )
            ]
        )

    event_type = raw.get("type", implied_type)
    if implied_type is not None:
        event_type = implied_type
    if event_type is None:
        problems.append(FieldProblem(f"{prefix}type", "is required"))
    elif not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        problems.append(
            FieldProblem(f"{prefix}type", f"must be one of {', '.join(sorted(EVENT_TYPES))}")
        )

    user_id = _identifier(raw.get("userId"), f"{prefix}userId", problems)
    anonymous_id = _identifier(raw.get("anonymousId"), f"{prefix}anonymousId", problems)
    if (
        user_id is None
        and anonymous_id is None
        and not any(p.field in (f"{prefix}userId", f"{prefix}anonymousId") for p in problems)
    ):
        problems.append(FieldProblem(f"{prefix}userId", "userId or anonymousId is required"))

    message_id = _identifier(raw.get("messageId"), f"{prefix}messageId", problems)

    for name in OBJECT_FIELDS:
        value = raw.get(name)
        if value is not None and not isinstance(value, dict):
            problems.append(FieldProblem(f"{prefix}{name}", "must be a JSON object"))

    out: dict[str, Any] = {"type": event_type}
    if event_type == "track":
        event_name = raw.get("event")
        if not isinstance(event_name, str) or not event_name.strip():
            problems.append(
                FieldProblem(f"{prefix}event", "is required for track and must be a string")
            )
        elif len(event_name) > ID_MAX_LENGTH:
            problems.append(
                FieldProblem(f"{prefix}event", f"must be at most {ID_MAX_LENGTH} characters")
            )
        out["event"] = event_name
    elif event_type in ("page", "screen"):
        for key in ("name", "category"):
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(FieldProblem(f"{prefix}{key}", "must be a string"))
            elif value is not None:
                out[key] = value
    elif event_type == "group":
        group_id = _identifier(raw.get("groupId"), f"{prefix}groupId", problems)
        if group_id is None and not any(p.field == f"{prefix}groupId" for p in problems):
            problems.append(FieldProblem(f"{prefix}groupId", "is required for group"))
        out["groupId"] = group_id
    elif event_type == "alias":
        previous_id = _identifier(raw.get("previousId"), f"{prefix}previousId", problems)
        if previous_id is None and not any(p.field == f"{prefix}previousId" for p in problems):
            problems.append(FieldProblem(f"{prefix}previousId", "is required for alias"))
        if user_id is None and not any(p.field == f"{prefix}userId" for p in problems):
            problems.append(FieldProblem(f"{prefix}userId", "is required for alias"))
        out["previousId"] = previous_id

    original = _instant(
        raw.get("timestamp", raw.get("originalTimestamp")), f"{prefix}timestamp", problems
    )
    sent_at = _instant(raw.get("sentAt"), f"{prefix}sentAt", problems) or batch_sent_at

    if problems:
        raise EventProblems(problems)

    try:
        timestamp = corrected_timestamp(original=original, sent_at=sent_at, received_at=received_at)
    except OverflowError:
        # Clocks thousands of years apart: the correction leaves the calendar.
        raise EventProblems(
            [FieldProblem(f"{prefix}sentAt", "is too far from timestamp to correct the clock")]
        ) from None
    if timestamp - received_at > limits.max_future:
        hours = limits.max_future.total_seconds() / 3600
        problems.append(
            FieldProblem(f"{prefix}timestamp", f"is more than {hours:g} h in the future")
        )
    elif received_at - timestamp > limits.max_age:
        problems.append(
            FieldProblem(f"{prefix}timestamp", f"is older than {limits.max_age.days} days")
        )
    if problems:
        raise EventProblems(problems)

    out["messageId"] = message_id or f"accord-{uuid.uuid4()}"
    if user_id is not None:
        out["userId"] = user_id
    if anonymous_id is not None:
        out["anonymousId"] = anonymous_id
    for name in OBJECT_FIELDS:
        value = raw.get(name)
        if value is not None:
            out[name] = value
    if event_type in ("identify", "group") and "traits" not in out:
        # Older clients put traits in context.traits.
        context_traits = out.get("context", {}).get("traits")
        if isinstance(context_traits, dict):
            out["traits"] = context_traits
    out["originalTimestamp"] = iso(original) if original is not None else None
    out["sentAt"] = iso(sent_at) if sent_at is not None else None
    out["receivedAt"] = iso(received_at)
    out["timestamp"] = iso(timestamp)
    return out
