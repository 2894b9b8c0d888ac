"""What the overview and the event volume page share: a window of UTC days and the
chart of events per day stacked by a column of the volume rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from accord.web.charts import Chart, Series


@dataclass(frozen=True)
class Window:
    """UTC days from `since` to `until`, both included."""

    since: date
    until: date

    @classmethod
    def last(cls, days: int, *, today: date) -> Window:
        return cls(since=today - timedelta(days=days - 1), until=today)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time(), UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the window."""
        return datetime.combine(self.until + timedelta(days=1), time(), UTC)

    def days(self) -> list[date]:
        return [self.since + timedelta(days=i) for i in range((self.until - self.since).days + 1)]


def events_by_day(
    rows: Sequence[Mapping[str, Any]],
    window: Window,
    *,
    by: str,
    title: str,
    chart_id: str,
    names: Mapping[str, str] | None = None,
) -> Chart:
    """Events per day of the window (days without events count 0), one stacked series per
    value of the rows' column `by` (named through `names` when given), largest first."""
    labels = [day.isoformat() for day in window.days()]
    position = {label: i for i, label in enumerate(labels)}
    counts: dict[str, list[int]] = {}
    for row in rows:
        i = position.get(str(row["day"]))
        if i is None:
            continue
        values = counts.setdefault(str(row[by]), [0] * len(labels))
        values[i] += int(row["events"])
    order = sorted(counts, key=lambda key: (-sum(counts[key]), key))
    shown = names or {}
    return Chart(
        title=title,
        x=labels,
        series=[Series(shown.get(key, key), counts[key]) for key in order],
        kind="stacked",
        x_title="day (UTC)",
        y_title="events",
        id=chart_id,
    )
