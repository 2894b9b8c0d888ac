"""Schedules of jobs: five-field cron expressions (in a time zone) or fixed intervals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from accord.core.errors import FieldProblem, InvalidInput

_EVERY = re.compile(r"^every\s+(\d{1,6})\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
# Shorter intervals would make the scheduler itself the busiest job.
MIN_INTERVAL = timedelta(seconds=5)
MAX_INTERVAL = timedelta(days=366)


@dataclass(frozen=True)
class Schedule:
    """`every 30s` (or m, h, d) from the last due time, or cron fields read in `timezone`."""

    text: str
    interval: timedelta | None
    cron: str | None
    timezone: str

    def next_after(self, moment: datetime) -> datetime:
        """The first due time strictly after `moment` (an aware datetime)."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        local = moment.astimezone(ZoneInfo(self.timezone))
        following: datetime = next(CronSim(self.cron, local))
        return following.astimezone(moment.tzinfo)


def _invalid(field: str, reason: str) -> InvalidInput:
    return InvalidInput([FieldProblem(field=field, reason=reason)])


def parse_timezone(text: str, *, field: str = "timezone") -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(field, f"unknown time zone {text!r}") from exc
    return text


def parse_schedule(text: str, *, timezone: str = "UTC", field: str = "schedule") -> Schedule:
    """Read a schedule or raise `InvalidInput` naming `field` and what is wrong."""
    cleaned = " ".join(text.strip().lower().split())
    tz = parse_timezone(timezone)
    if not cleaned:
        raise _invalid(field, "empty schedule: write `every 15m` or five cron fields")
    every = _EVERY.match(cleaned)
    if every:
        interval = timedelta(seconds=int(every.group(1)) * _UNITS[every.group(2)])
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise _invalid(field, "an interval must be between 5 seconds and 366 days")
        return Schedule(text=cleaned, interval=interval, cron=None, timezone=tz)
    if cleaned.startswith("every"):
        raise _invalid(field, "write an interval as `every N` and one of s, m, h, d (`every 15m`)")
    cron = _ALIASES.get(cleaned, cleaned)
    if len(cron.split(" ")) != 5:
        raise _invalid(field, "a cron expression has five fields: minute hour day month weekday")
    try:
        # Building the iterator checks every field; the first step checks it can ever fire.
        next(CronSim(cron, datetime(2000, 1, 1, tzinfo=ZoneInfo(tz))))
    except CronSimError as exc:
        raise _invalid(field, f"bad cron expression: {exc}") from exc
    except StopIteration as exc:
        raise _invalid(field, "this cron expression never fires") from exc
    return Schedule(text=cleaned, interval=None, cron=cron, timezone=tz)
