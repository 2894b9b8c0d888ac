"""Funnels: how far people get through ordered steps inside a conversion window.

A person reaches step k when they have events of steps 1..k at strictly increasing
instants, the first inside [from, to) and the last at most `window_seconds` after the
first (ClickHouse's `windowFunnel` in `strict_increase` mode). Each person counts once,
at the furthest step reached; docs/analytics.md has the whole definition.

The expression is built in named steps, each plain Ibis: `step_rows` (one row per event
of any step, linked to its profile, one flag per step), `chains` (from every start, the
earliest event of each next step), `furthest` (each person's best chain), then the
counts and the medians of the time between steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import ibis
from pydantic import BaseModel, ConfigDict, Field, field_validator

from accord.analytics.people import (
    MICROS,
    EventSource,
    Step,
    between,
    instant_us,
    matching,
    micros,
    parse,
    property_problems,
    range_problems,
    step_problems,
    utc,
    with_people,
)
from accord.audiences.compile import event_property
from accord.core.clock import iso
from accord.core.errors import FieldProblem, InvalidInput
from accord.engine.tables import drop, materialise

MAX_STEPS = 20
MAX_EXCLUSIONS = 10
MAX_WINDOW_SECONDS = 366 * 86_400
# Breakdown groups shown, the most entered first; the rest are counted in `other_groups`.
MAX_GROUPS = 25


class FunnelSpec(BaseModel):
    """What `POST /api/analytics/funnels` takes (JSON-able: a saved report stores it)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    window_seconds: int = Field(gt=0, le=MAX_WINDOW_SECONDS)
    from_: datetime = Field(alias="from")
    to: datetime
    # An event property of each person's first-step event (the audience language's names).
    breakdown: str | None = Field(default=None, min_length=1, max_length=200)
    # Or a profile trait (as a `trait` condition names it): each person's current value.
    breakdown_trait: str | None = Field(default=None, min_length=1, max_length=200)
    # People with any of these events in [from, to + window) are left out of the funnel.
    exclusions: list[Step] = Field(default_factory=list, max_length=MAX_EXCLUSIONS)

    @field_validator("from_", "to", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    @property
    def broken_down(self) -> bool:
        return self.breakdown is not None or self.breakdown_trait is not None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_spec(data: Any) -> FunnelSpec:
    """The spec from its JSON form, every problem named by its field (400 at the API)."""
    spec = parse(FunnelSpec, data)
    problems = range_problems(spec.from_, spec.to)
    for i, step in enumerate(spec.steps):
        problems += step_problems(step, f"steps[{i}]")
    for i, step in enumerate(spec.exclusions):
        problems += step_problems(step, f"exclusions[{i}]")
    if spec.breakdown is not None:
        problems += property_problems(spec.breakdown, "breakdown")
        if spec.breakdown_trait is not None:
            problems.append(FieldProblem("breakdown_trait", "give breakdown or breakdown_trait"))
    if problems:
        raise InvalidInput(problems)
    return spec


@dataclass(frozen=True)
class FunnelStep:
    name: str
    event: str
    count: int
    # None when the step before (or the first) has no one
    conversion_from_previous: float | None
    conversion_from_first: float | None
    # Median seconds from the previous step's event to this one's, over the people who
    # reached this step (None for the first step and when no one reached it).
    median_seconds_to_convert: float | None


@dataclass(frozen=True)
class FunnelGroup:
    """The funnel of the people whose first-step event (or whose profile, for a trait)
    had this breakdown value."""

    value: Any
    steps: list[FunnelStep]


@dataclass(frozen=True)
class FunnelResult:
    steps: list[FunnelStep]
    breakdown: str | None = None
    breakdown_trait: str | None = None
    groups: list[FunnelGroup] | None = None
    # breakdown values left out of `groups` (beyond MAX_GROUPS)
    other_groups: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("breakdown", "breakdown_trait"):
            if out[key] is None:
                del out[key]
        if self.groups is None:
            del out["groups"], out["other_groups"]
        return out


def steps_of(spec: FunnelSpec, counts: list[int], medians: list[float | None]) -> list[FunnelStep]:
    """Counts per step (people reaching at least that step) with their conversions."""
    out = []
    for i, (step, count) in enumerate(zip(spec.steps, counts, strict=True)):
        previous = counts[i - 1] if i else count
        out.append(
            FunnelStep(
                name=step.label,
                event=step.event,
                count=count,
                conversion_from_previous=count / previous if previous else None,
                conversion_from_first=count / counts[0] if counts[0] else None,
                median_seconds_to_convert=medians[i] if i else None,
            )
        )
    return out


# The expression ----------------------------------------------------------------------


def step_rows(source: EventSource, spec: FunnelSpec, now: datetime) -> Any:
    """One row per event of any step or exclusion in [from, to + window): profile_id,
    `ts` (microseconds), `grp` (the breakdown value: the event's property, or the
    person's trait from `source.trait`), `s<i>` per step, `excluded`."""
    events = between(source.events, spec.from_, spec.to + spec.window)
    names = sorted({s.event for s in (*spec.steps, *spec.exclusions)})
    events = events.filter(events.event.isin(names))
    flags = {f"s{i}": matching(events, step) for i, step in enumerate(spec.steps)}
    excluded = ibis.literal(False)
    for step in spec.exclusions:
        excluded = excluded | matching(events, step)
    if spec.breakdown:
        # A path into the event's JSON is read as text.
        group = event_property(events, spec.breakdown, "string")
    else:
        group = ibis.null().cast("string")
    rows = events.select(
        "user_id",
        "anonymous_id",
        ts=instant_us(source, events),
        grp=group,
        excluded=excluded,
        **flags,
    )
    people = with_people(source, rows)
    if spec.breakdown_trait is None:
        return people
    if source.trait is None:
        raise ValueError("a trait breakdown needs the trait's values (source.trait)")
    values = source.trait.select(trait_profile="profile_id", trait_value="value")
    joined = people.left_join(values, people.profile_id == values.trait_profile)
    kept = [c for c in people.columns if c != "grp"]
    return joined.select(*kept, grp=joined.trait_value)


def chains(rows: Any, spec: FunnelSpec) -> Any:
    """From each start (a first-step event in [from, to)), `t0`..`t<n-1>`: the earliest
    event of each next step strictly after the previous one and at most the window after
    `t0` (null from the first step not reached). Earliest is optimal: a later choice can
    never leave more room to the steps after."""
    if spec.exclusions:
        out = rows.filter(rows.excluded).select("profile_id").distinct()
        rows = rows.anti_join(out, "profile_id")
    window_us = spec.window_seconds * MICROS
    start = rows.filter(rows.s0 & (rows.ts >= micros(spec.from_)) & (rows.ts < micros(spec.to)))
    table = start.select("profile_id", "grp", t0=start.ts).distinct()
    for k in range(1, len(spec.steps)):
        candidates = rows.filter(rows[f"s{k}"]).select(c_profile="profile_id", c_ts="ts").distinct()
        joined = table.left_join(
            candidates,
            [
                table.profile_id == candidates.c_profile,
                candidates.c_ts > table[f"t{k - 1}"],
                candidates.c_ts <= table.t0 + window_us,
            ],
        )
        keys = [c for c in table.columns]
        table = joined.group_by(keys).aggregate(**{f"t{k}": joined.c_ts.min()})
    return table


def furthest(table: Any, n_steps: int) -> Any:
    """Each (person, group)'s chain reaching the furthest step, the earliest start among
    equals: profile_id, grp, `level` (steps reached) and its t0..t<n-1>."""
    level = ibis.literal(1)
    for k in range(1, n_steps):
        level = level + table[f"t{k}"].notnull().ifelse(1, 0)
    ranked = table.mutate(level=level)
    order = ibis.window(
        group_by=[ranked.profile_id, ranked.grp], order_by=[ibis.desc(ranked.level), ranked.t0]
    )
    ranked = ranked.mutate(rank=ibis.row_number().over(order))
    return ranked.filter(ranked.rank == 0).drop("rank")


def step_counts(people: Any, n_steps: int) -> Any:
    """grp and `reached_<k>`: people reaching at least step k."""
    return people.group_by("grp").aggregate(
        **{f"reached_{k}": (people.level >= k + 1).ifelse(1, 0).sum() for k in range(n_steps)}
    )


def step_medians(people: Any, n_steps: int) -> Any | None:
    """grp, step and `median_us`: the median of the time from step k-1 to step k over the
    people reaching k (the mean of the two middle values when their number is even)."""
    parts = [
        people.filter(people.level >= k + 1).select(
            "grp", step=ibis.literal(k), d=people[f"t{k}"] - people[f"t{k - 1}"]
        )
        for k in range(1, n_steps)
    ]
    if not parts:
        return None
    durations = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    group = [durations.grp, durations.step]
    ordered = durations.mutate(
        position=ibis.row_number().over(ibis.window(group_by=group, order_by=durations.d)),
        n=durations.d.count().over(ibis.window(group_by=group)),
    )
    middle = ordered.filter(
        (ordered.position == (ordered.n - 1) // 2) | (ordered.position == ordered.n // 2)
    )
    return middle.group_by(["grp", "step"]).aggregate(median_us=middle.d.mean())


def _run_grouped(
    source: EventSource, spec: FunnelSpec, now: datetime
) -> dict[Any, tuple[list[int], list[float | None]]]:
    backend = source.backend
    n = len(spec.steps)
    rows = materialise(backend, step_rows(source, spec, now))
    try:
        people = materialise(backend, furthest(chains(rows, spec), n))
        try:
            counts = backend.to_pyarrow(step_counts(people, n)).to_pylist()
            medians_expr = step_medians(people, n)
            medians = (
                backend.to_pyarrow(medians_expr).to_pylist() if medians_expr is not None else []
            )
        finally:
            drop(backend, people.get_name())
    finally:
        drop(backend, rows.get_name())
    out: dict[Any, tuple[list[int], list[float | None]]] = {}
    for row in counts:
        out[_value(row["grp"])] = ([int(row[f"reached_{k}"] or 0) for k in range(n)], [None] * n)
    for row in medians:
        group = _value(row["grp"])
        if group in out and row["median_us"] is not None:
            out[group][1][int(row["step"])] = float(row["median_us"]) / MICROS
    return out


def _value(group: Any) -> Any:
    # A datetime trait's value as its ISO 8601 text, as the profile shows it.
    return iso(group) if isinstance(group, datetime) else group


def run(source: EventSource, spec: FunnelSpec, *, now: datetime) -> FunnelResult:
    """The funnel on the engine (`now` only resolves relative windows in step filters)."""
    n = len(spec.steps)
    everyone = spec.model_copy(update={"breakdown": None, "breakdown_trait": None})
    totals = _run_grouped(source, everyone, now)
    counts, medians = totals.get(None, ([0] * n, [None] * n))
    result = FunnelResult(steps=steps_of(spec, counts, medians))
    if not spec.broken_down:
        return result
    grouped = _run_grouped(source, spec, now)
    order = sorted(grouped, key=lambda v: (-grouped[v][0][0], v is None, str(v)))
    return FunnelResult(
        steps=result.steps,
        breakdown=spec.breakdown,
        breakdown_trait=spec.breakdown_trait,
        groups=[
            FunnelGroup(value=v, steps=steps_of(spec, *grouped[v])) for v in order[:MAX_GROUPS]
        ],
        other_groups=max(0, len(order) - MAX_GROUPS),
    )


def people_at(
    source: EventSource, spec: FunnelSpec, step: int, *, now: datetime, dropped: bool = False
) -> list[str]:
    """The profile ids reaching at least step `step` (1-based): the people of one bar of
    the funnel, to save as an audience or export; with `dropped`, those whose furthest
    step is `step` (they reached it and not the next)."""
    if not 1 <= step <= len(spec.steps):
        raise InvalidInput([FieldProblem("step", f"must be 1 to {len(spec.steps)}")])
    if dropped and step == len(spec.steps):
        raise InvalidInput([FieldProblem("dropped", "no step follows the last one")])
    rows = materialise(source.backend, step_rows(source, spec, now))
    try:
        people = furthest(chains(rows, spec), len(spec.steps))
        # A trait breakdown keeps one group a person; an event property's may keep several.
        best = people.group_by("profile_id").aggregate(level=people.level.max())
        chosen = best.level == step if dropped else best.level >= step
        reached = best.filter(chosen).select("profile_id")
        ids = source.backend.to_pyarrow(reached.order_by("profile_id")).column("profile_id")
        return [str(v) for v in ids.to_pylist()]
    finally:
        drop(source.backend, rows.get_name())
