"""Pure decisions of the runner: when a wait ends, which path a split takes, whether a
message may go now, later, or not at all."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from accord.audiences.conditions import (
    Condition,
    PropertyFilter,
    TraitCondition,
    loose_catalog,
    walk,
)
from accord.audiences.evaluate import (
    ProfileFacts,
    filters_match,
    matches,
    path_value,
    raw_event_facts,
)
from accord.journeys.graph import QuietHours, SplitPath
from accord.reach import decide as reach


def zone_of(traits: dict[str, Any], trait: str, default: str) -> ZoneInfo:
    """The person's time zone from a trait (IANA name), else the journey's default."""
    value = traits.get(trait)
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(default)


def next_local_time(now: datetime, at: str, zone: ZoneInfo) -> datetime:
    """The next instant, strictly after `now`, when the clock in `zone` shows `at`."""
    wanted = time.fromisoformat(at)
    local = now.astimezone(zone)
    for days in range(0, 3):
        day = local.date() + timedelta(days=days)
        candidate = datetime.combine(day, wanted, tzinfo=zone)
        # Across a DST gap the wall time may not exist; normalising through UTC moves
        # it to the first valid instant after the gap.
        candidate = candidate.astimezone(UTC)
        if candidate > now:
            return candidate
    raise AssertionError("a time of day recurs within two days")


def trait_instant(value: Any, zone: ZoneInfo) -> datetime | None:
    """A date or date-time trait as an instant (a bare date means its midnight in `zone`)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=zone)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def bucket(*parts: str) -> float:
    """A uniform number in [0, 1) from the parts: the same parts always give the same one."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_path(paths: list[SplitPath], *, run_id: str, node: str) -> SplitPath:
    total = sum(path.weight for path in paths)
    point = bucket(run_id, node) * total
    for path in paths:
        point -= path.weight
        if point < 0:
            return path
    return paths[-1]


def holds(condition: Condition, traits: dict[str, Any], now: datetime) -> bool:
    """Whether a branch's condition holds for the person: the audiences' evaluator over
    their traits (a name may be a dotted path into a nested trait)."""
    names = {leaf.trait for _, leaf in walk(condition) if isinstance(leaf, TraitCondition)}
    values = {name: path_value(traits, name) for name in names}
    facts = ProfileFacts(profile_id="", traits=values, first_seen=now, last_seen=now)
    return matches(condition, facts, catalog=loose_catalog(condition, values), now=now)


def passes(where: list[PropertyFilter], event: dict[str, Any], now: datetime) -> bool:
    """Whether an event passes an entry's or a wait's filters."""
    return not where or filters_match(where, raw_event_facts(event, now))


@dataclass(frozen=True)
class SendDecision:
    action: Literal["send", "delay", "skip"]
    reason: str = ""
    until: datetime | None = None


def decide_send(
    *,
    reachable: bool,
    unreachable_reason: str,
    now: datetime,
    zone: ZoneInfo,
    quiet: QuietHours | None,
    sent_in_window: int,
    cap: int | None,
) -> SendDecision:
    """May a message go to this person on this channel now?

    Consent, suppression and a missing address skip the message; the frequency cap skips
    it; quiet hours delay it to the end of the quiet period or skip it, as configured.
    """
    if not reachable:
        return SendDecision("skip", unreachable_reason or "unreachable")
    if cap is not None and sent_in_window >= cap:
        return SendDecision("skip", "frequency cap reached")
    if quiet is not None and reach.in_quiet_hours(
        now.astimezone(zone).time(),
        reach.QuietHours(start=time.fromisoformat(quiet.start), end=time.fromisoformat(quiet.end)),
    ):
        if quiet.mode == "skip":
            return SendDecision("skip", "quiet hours")
        return SendDecision("delay", "quiet hours", next_local_time(now, quiet.end, zone))
    return SendDecision("send")


def anniversary(
    value: Any, zone: ZoneInfo, now: datetime, offset_days: int, at: str
) -> datetime | None:
    """This year's occurrence of a date trait (month and day), shifted by `offset_days`,
    at local time `at`: the instant a date-triggered journey enters the person.

    A 29 February falls on 28 February in other years.
    """
    moment = trait_instant(value, zone)
    if moment is None:
        return None
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    for year in (today.year - 1, today.year, today.year + 1):
        day = local.day
        if local.month == 2 and day == 29 and not _leap(year):
            day = 28
        occurrence = date(year, local.month, day) + timedelta(days=offset_days)
        start = datetime.combine(occurrence, time.fromisoformat(at), tzinfo=zone).astimezone(UTC)
        if start <= now < start + timedelta(days=1):
            return start
    return None


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
