"""Plain Python versions of the funnel, path and retention reports, written from their
definitions in docs/analytics.md, and random event sets for them (hypothesis)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from accord.analytics import funnels, paths, retention
from accord.analytics.people import Step, micros
from accord.audiences.evaluate import EventFacts, event_facts, filters_match
from accord.lake.schema import lake_row
from accord.lake.service import write_batch

BUSINESS = "biz_test"
BASE = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
NAMES = ("A", "B", "C", "D")


def _period_index(us: int, period: str) -> int:
    """The cohort period of an instant in microseconds: what the engine's column computes."""
    return (us - retention.PERIOD_ORIGIN[period]) // retention.PERIOD_MICROS[period]


@dataclass(frozen=True)
class Event:
    seq: int
    profile_id: str | None  # None: someone the business has no profile of
    call: dict[str, Any]
    facts: EventFacts

    @property
    def us(self) -> int:
        return micros(self.facts.timestamp)


@st.composite
def event_sets(draw: Any, *, unit: timedelta, span: int, people: int = 5) -> list[Event]:
    """Events of a few people (and a stranger) over `span` units of time from BASE, many
    at the same instant; some page calls (no event name)."""
    out: list[Event] = []
    n_people = draw(st.integers(1, people))
    seq = 0
    for person in range(n_people + 1):
        stranger = person == n_people
        for j in range(draw(st.integers(0, 8))):
            seq += 1
            at = BASE + unit * draw(st.integers(0, span))
            properties = {
                "category": draw(st.sampled_from(["x", "y", None])),
                "revenue": draw(st.sampled_from([None, 5.0, 50.0])),
            }
            call: dict[str, Any] = {
                "messageId": f"m{seq}",
                "timestamp": at.isoformat(),
                "properties": {k: v for k, v in properties.items() if v is not None},
            }
            if draw(st.integers(0, 9)) == 0:
                call.update(type="page", name="Home")
            else:
                call.update(type="track", event=draw(st.sampled_from(NAMES)))
            if stranger:
                call["anonymousId"] = "nobody"
            else:
                call["anonymousId"] = f"a{person}-{j % 2}"
                if person % 2 == 0 and j % 3 == 0:
                    call["userId"] = f"u{person}"
            row = lake_row(seq, "src", call)
            out.append(Event(seq, None if stranger else f"p{person}", call, event_facts(row)))
    return out


def write(lake: Path, events: list[Event]) -> pa.Table:
    """The events in the lake (also under another business), and the identifiers."""
    rows = [(BUSINESS, lake_row(e.seq, "src", e.call)) for e in events]
    rows += [("biz_other", lake_row(e.seq, "src", e.call)) for e in events]
    if rows:
        write_batch(str(lake), batch_id="bat_1", rows=rows)
    identifiers: dict[tuple[str, str], str] = {}
    for e in events:
        if e.profile_id is None:
            continue
        identifiers[("anonymous_id", e.call["anonymousId"])] = e.profile_id
        if "userId" in e.call:
            identifiers[("user_id", e.call["userId"])] = e.profile_id
    return pa.Table.from_pydict(
        {
            "kind": [k for k, _ in identifiers],
            "value": [v for _, v in identifiers],
            "profile_id": list(identifiers.values()),
        }
    )


def _matches(step: Step, e: Event) -> bool:
    return e.facts.event == step.event and filters_match(step.where, e.facts)


def _by_person(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        if e.profile_id is not None:
            out.setdefault(e.profile_id, []).append(e)
    return out


# Funnels ------------------------------------------------------------------------------


def _reachable(spec: funnels.FunnelSpec, mine: list[Event], t0: int) -> int:
    """The furthest step some chain from a start at t0 reaches: searched exhaustively."""
    limit = t0 + spec.window_seconds * 1_000_000

    def deeper(k: int, previous: int) -> int:
        if k == len(spec.steps):
            return k
        best = k
        for e in mine:
            if previous < e.us <= limit and _matches(spec.steps[k], e):
                best = max(best, deeper(k + 1, e.us))
        return best

    return deeper(1, t0)


def _earliest_chain(spec: funnels.FunnelSpec, mine: list[Event], t0: int) -> list[int]:
    limit = t0 + spec.window_seconds * 1_000_000
    chain = [t0]
    for step in spec.steps[1:]:
        later = [e.us for e in mine if chain[-1] < e.us <= limit and _matches(step, e)]
        if not later:
            break
        chain.append(min(later))
    return chain


def funnel(
    events: list[Event], spec: funnels.FunnelSpec, traits: dict[str, Any] | None = None
) -> funnels.FunnelResult:
    """`traits`: each profile's traits, for a breakdown by one (a value that is not text,
    like a missing one, is the group null: the test's trait is a string)."""
    start, end = micros(spec.from_), micros(spec.to)
    late = micros(spec.to + spec.window)
    grouped: dict[Any, list[list[int]]] = {}
    for person, mine in _by_person(events).items():
        if any(start <= e.us < late and _matches(x, e) for e in mine for x in spec.exclusions):
            continue
        best: dict[Any, tuple[int, int]] = {}  # group -> (level, t0)
        for e in mine:
            if not (start <= e.us < end and _matches(spec.steps[0], e)):
                continue
            group = e.facts.properties.get(spec.breakdown) if spec.breakdown else None
            if spec.breakdown_trait:
                value = (traits or {}).get(person, {}).get(spec.breakdown_trait)
                group = value if isinstance(value, str) else None
            level = _reachable(spec, mine, e.us)
            if group not in best or (-level, e.us) < (-best[group][0], best[group][1]):
                best[group] = (level, e.us)
        for group, (level, t0) in best.items():
            chain = _earliest_chain(spec, mine, t0)
            assert len(chain) == level
            grouped.setdefault(group, []).append(chain)

    def steps(chains: list[list[int]]) -> list[funnels.FunnelStep]:
        n = len(spec.steps)
        counts = [sum(1 for c in chains if len(c) > k) for k in range(n)]
        medians: list[float | None] = [None]
        for k in range(1, n):
            gaps = [(c[k] - c[k - 1]) / 1_000_000 for c in chains if len(c) > k]
            medians.append(statistics.median(gaps) if gaps else None)
        return funnels.steps_of(spec, counts, medians)

    everyone = [c for chains in grouped.values() for c in chains] if not spec.broken_down else []
    if not spec.broken_down:
        return funnels.FunnelResult(steps=steps(everyone))
    plain = spec.model_copy(update={"breakdown": None, "breakdown_trait": None})
    totals = funnel(events, plain).steps
    order = sorted(grouped, key=lambda v: (-len(grouped[v]), v is None, str(v)))
    return funnels.FunnelResult(
        steps=totals,
        breakdown=spec.breakdown,
        breakdown_trait=spec.breakdown_trait,
        groups=[
            funnels.FunnelGroup(value=v, steps=steps(grouped[v]))
            for v in order[: funnels.MAX_GROUPS]
        ],
        other_groups=max(0, len(order) - funnels.MAX_GROUPS),
    )


# Paths --------------------------------------------------------------------------------


def path(events: list[Event], spec: paths.PathSpec) -> paths.PathResult:
    start, end = micros(spec.from_), micros(spec.to)
    nodes: dict[tuple[int, str], int] = {}
    links: dict[tuple[int, str, str], int] = {}
    for mine in _by_person(events).values():
        named = sorted(
            (e for e in mine if e.facts.event is not None and start <= e.us < end),
            key=lambda e: (e.us, e.seq),
        )
        anchors = [i for i, e in enumerate(named) if _matches(spec.step, e)]
        if not anchors:
            continue
        i = anchors[0]
        if spec.direction == "after":
            seen = named[i : i + spec.depth + 1]
        else:
            seen = list(reversed(named[max(0, i - spec.depth) : i + 1]))
        names = [str(e.facts.event) for e in seen]
        for position, name in enumerate(names):
            nodes[(position, name)] = nodes.get((position, name), 0) + 1
            if position + 1 < len(names):
                key = (position, name, names[position + 1])
                links[key] = links.get(key, 0) + 1
    return paths.fold(spec, nodes, links)


# Retention ----------------------------------------------------------------------------


def retained(
    events: list[Event], spec: retention.RetentionSpec, now: datetime
) -> retention.RetentionResult:
    def matches(step: Step | None, e: Event) -> bool:
        return step is None or _matches(step, e)

    start, end = micros(spec.from_), micros(spec.to)
    sizes: dict[int, int] = {}
    cells: dict[tuple[int, int], int] = {}
    for mine in _by_person(events).values():
        firsts = [e.us for e in mine if e.us < end and matches(spec.cohort_event, e)]
        if not firsts or min(firsts) < start:
            continue
        cohort = _period_index(min(firsts), spec.period)
        sizes[cohort] = sizes.get(cohort, 0) + 1
        came_back = {
            _period_index(e.us, spec.period) - cohort
            for e in mine
            if e.us >= start and matches(spec.return_event, e)
        }
        for p in came_back:
            if 1 <= p <= spec.periods:
                cells[(cohort, p)] = cells.get((cohort, p), 0) + 1
    return retention.table(spec, sizes, cells, now)
