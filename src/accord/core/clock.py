"""Time in UTC and ISO-8601 parsing as Segment clients write it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_instant(value: str) -> datetime:
    """Parse an ISO-8601 instant; a value without offset is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def day_labels(first: date, last: date) -> list[str]:
    """Every day from `first` to `last` as `YYYY-MM-DD`: a count per day shows the quiet
    days too."""
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
