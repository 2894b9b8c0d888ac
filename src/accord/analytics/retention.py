"""Retention: cohorts by the period of each person's first event (of a kind), and how
many of them come back, on a second event, in each later period.

Periods are UTC calendar weeks (from Monday 00:00) or UTC days. A person's cohort is the
period of their first cohort event ever; cohorts whose first events fall in [from, to)
are shown. Period p of a cohort counts the people with a return event in the p-th period
after the cohort's (p = 1…`periods`); a period not yet started at `now` is null.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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
    range_problems,
    step_problems,
    utc,
    with_people,
)
from accord.core.errors import FieldProblem, InvalidInput

MAX_PERIODS = {"week": 52, "day": 90}
PERIOD_MICROS = {"week": 7 * 86_400 * MICROS, "day": 86_400 * MICROS}
# 1970-01-05 was a Monday: weeks are counted from there.
PERIOD_ORIGIN = {"week": 4 * 86_400 * MICROS, "day": 0}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RetentionSpec(BaseModel):
    """What `POST /api/analytics/retention` takes. Without `cohort_event` a cohort is the
    period a person was first seen (any event); without `return_event` any event returns."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    cohort_event: Step | None = None
    return_event: Step | None = None
    period: Literal["week", "day"] = "week"
    periods: int = Field(default=12, ge=1, le=max(MAX_PERIODS.values()))
    from_: datetime = Field(alias="from")
    to: datetime

    @field_validator("from_", "to", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_spec(data: Any) -> RetentionSpec:
    spec = parse(RetentionSpec, data)
    problems = range_problems(spec.from_, spec.to)
    if spec.periods > MAX_PERIODS[spec.period]:
        problems.append(
            FieldProblem("periods", f"at most {MAX_PERIODS[spec.period]} {spec.period}s")
        )
    for field in ("cohort_event", "return_event"):
        step = getattr(spec, field)
        if step is not None:
            problems += step_problems(step, field)
    if problems:
        raise InvalidInput(problems)
    return spec


@dataclass(frozen=True)
class Cohort:
    start: str  # the first day of the cohort's period (YYYY-MM-DD)
    people: int
    # people returning in period 1…periods after the cohort's; None before it starts
    returned: list[int | None]


@dataclass(frozen=True)
class RetentionResult:
    period: str
    cohorts: list[Cohort]
    # per period, returned / people over the cohorts where the period has started
    curve: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def period_start(index: int, period: str) -> datetime:
    return EPOCH + timedelta(microseconds=index * PERIOD_MICROS[period] + PERIOD_ORIGIN[period])


def _index(column: Any, period: str) -> Any:
    return ((column - PERIOD_ORIGIN[period]) // PERIOD_MICROS[period]).cast("int64")


def cohorts_and_returns(source: EventSource, spec: RetentionSpec, now: datetime) -> tuple[Any, Any]:
    """(cohort, people) per cohort index, and (cohort, p, returned) per cell."""
    length = timedelta(microseconds=PERIOD_MICROS[spec.period])
    events = source.events
    first = events.filter(events.timestamp < spec.to)
    if spec.cohort_event is not None:
        first = first.filter(matching(first, spec.cohort_event))
    cohort_rows = with_people(
        source, first.select("user_id", "anonymous_id", ts=instant_us(source, first))
    )
    firsts = cohort_rows.group_by("profile_id").aggregate(first=cohort_rows.ts.min())
    firsts = firsts.filter(firsts.first >= micros(spec.from_))
    people = firsts.select(c_profile="profile_id", cohort=_index(firsts.first, spec.period))
    # Returns can come up to `periods` whole periods after the last cohort's period.
    later = between(events, spec.from_, spec.to + length * (spec.periods + 1))
    if spec.return_event is not None:
        later = later.filter(matching(later, spec.return_event))
    return_rows = with_people(
        source, later.select("user_id", "anonymous_id", ts=instant_us(source, later))
    )
    returns = return_rows.select(
        r_profile="profile_id", at=_index(return_rows.ts, spec.period)
    ).distinct()
    joined = people.join(returns, people.c_profile == returns.r_profile)
    joined = joined.mutate(p=joined.at - joined.cohort)
    cells = (
        joined.filter((joined.p >= 1) & (joined.p <= spec.periods))
        .group_by(["cohort", "p"])
        .aggregate(returned=joined.c_profile.nunique())
    )
    sizes = people.group_by("cohort").aggregate(people=people.c_profile.count())
    return sizes, cells


def table(
    spec: RetentionSpec, sizes: dict[int, int], cells: dict[tuple[int, int], int], now: datetime
) -> RetentionResult:
    """The triangle and its curve from counts per cohort and per (cohort, period)."""
    cohorts = []
    totals = [0] * spec.periods
    bases = [0] * spec.periods
    for cohort in sorted(sizes):
        returned: list[int | None] = []
        for p in range(1, spec.periods + 1):
            if period_start(cohort + p, spec.period) > now:
                returned.append(None)
                continue
            n = cells.get((cohort, p), 0)
            returned.append(n)
            totals[p - 1] += n
            bases[p - 1] += sizes[cohort]
        cohorts.append(
            Cohort(
                start=period_start(cohort, spec.period).date().isoformat(),
                people=sizes[cohort],
                returned=returned,
            )
        )
    curve = [t / b if b else None for t, b in zip(totals, bases, strict=True)]
    return RetentionResult(period=spec.period, cohorts=cohorts, curve=curve)


def run(source: EventSource, spec: RetentionSpec, *, now: datetime) -> RetentionResult:
    sizes_expr, cells_expr = cohorts_and_returns(source, spec, now)
    backend = source.backend
    sizes = {int(r["cohort"]): int(r["people"]) for r in backend.to_pyarrow(sizes_expr).to_pylist()}
    cells = {
        (int(r["cohort"]), int(r["p"])): int(r["returned"])
        for r in backend.to_pyarrow(cells_expr).to_pylist()
    }
    return table(spec, sizes, cells, now)
