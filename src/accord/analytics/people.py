"""What the funnel, path and retention reports share: a business's events with the profile
each belongs to, steps written in the audience condition language, and spec parsing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import ibis
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from accord.audiences.compile import (
    IDENTIFIER_SCHEMA,
    EngineTables,
    event_matches,
    profiles_table,
    trait_column,
    with_profile,
)
from accord.audiences.conditions import (
    Catalog,
    Definition,
    EventCondition,
    PropertyFilter,
    TraitType,
    problems_of,
)
from accord.core.errors import FieldProblem, InvalidInput
from accord.engine.functions import epoch_microseconds
from accord.engine.tables import register

# The longest date range a report reads; longer asks belong to a batch export.
MAX_RANGE_DAYS = 731
MICROS = 1_000_000


class Step(BaseModel):
    """One event with property filters: an `event` condition of the audience language
    (`where` is the same list of filters audiences take)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event: str = Field(min_length=1, max_length=200)
    where: list[PropertyFilter] = Field(default_factory=list, max_length=20)
    # What the report calls the step (the event name when left out).
    name: str | None = Field(default=None, max_length=200)

    def condition(self) -> EventCondition:
        return EventCondition(event=self.event, where=self.where)

    @property
    def label(self) -> str:
        return self.name or self.event


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DateRange(BaseModel):
    """[from, to): `from` included, `to` excluded; a bare date is its UTC midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    from_: datetime = Field(alias="from")
    to: datetime

    @field_validator("from_", "to", mode="after")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return utc(value)


def range_problems(start: datetime, end: datetime) -> list[FieldProblem]:
    if start > end:
        return [FieldProblem("from", "must be on or before to")]
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        return [FieldProblem("to", f"a range of at most {MAX_RANGE_DAYS} days")]
    return []


def step_problems(step: Step, path: str) -> list[FieldProblem]:
    """The audience language's own checks of an event condition, named under `path`."""
    found = problems_of(Definition(condition=step.condition()), Catalog())
    return [
        FieldProblem(f"{path}{p.field.removeprefix('condition')}", p.reason)
        for p in found
        if not p.field.startswith("condition.count")
    ]


def property_problems(name: str, path: str) -> list[FieldProblem]:
    """Whether the audience language can read this event property (a breakdown)."""
    probe = Step(event="-", where=[PropertyFilter(property=name, op="exists")])
    return [
        FieldProblem(path, p.reason)
        for p in step_problems(probe, "x")
        if p.field.endswith("property")
    ]


Model = TypeVar("Model", bound=BaseModel)


def parse(model: type[Model], data: Any) -> Model:
    """A spec from its JSON form, Pydantic's errors as the one error shape (`steps[1].event`)."""
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ""
            for part in error["loc"]:
                where += f"[{part}]" if isinstance(part, int) else f".{part}"
            problems.append(FieldProblem(where.lstrip(".") or "body", error["msg"]))
        raise InvalidInput(problems) from None


def micros(instant: datetime) -> int:
    delta = utc(instant) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


@dataclass(frozen=True)
class EventSource:
    """One business's events and its identifiers, as tables on one engine backend."""

    backend: Any
    # the lake's events, already limited to the business
    events: Any
    # kind ('user_id' | 'anonymous_id'), value, profile_id
    identifiers: Any
    # profile_id, value: one profile trait, for a funnel broken down by it (`trait_table`)
    trait: Any = None


def source_on(
    backend: Any, events: Any, identifiers: pa.Table, trait: pa.Table | None = None
) -> EventSource:
    """The identifiers (and a trait's values) from the state store beside the business's
    lake events."""
    return EventSource(
        backend=backend,
        events=events,
        identifiers=register(backend, identifiers.cast(IDENTIFIER_SCHEMA)),
        trait=None if trait is None else register(backend, trait),
    )


def trait_table(rows: Any, name: str, kind: TraitType) -> pa.Table:
    """profile_id, value: one trait of every profile, typed as the audience compiler types
    it (`profiles_table`: a value of another type is null). `rows` are (profile_id, traits,
    first_seen, last_seen)."""
    table = profiles_table(rows, {name: kind})
    return pa.table({"profile_id": table["profile_id"], "value": table[trait_column(name)]})


def identifier_table(rows: list[tuple[str, str, str]]) -> pa.Table:
    """(profile_id, kind, value) rows, as `accord.profiles.service.identifier_rows` gives them."""
    return pa.Table.from_pydict(
        {
            "kind": [kind for _, kind, _ in rows],
            "value": [value for _, _, value in rows],
            "profile_id": [pid for pid, _, _ in rows],
        },
        schema=IDENTIFIER_SCHEMA,
    )


def matching(events: Any, step: Step) -> Any:
    """A boolean column: the event satisfies the step (the audience compiler's predicate)."""
    return event_matches(events, step.event, step.where)


def between(events: Any, start: datetime, end: datetime) -> Any:
    """Events with start <= timestamp < end; the day partition bounds let engines skip files."""
    return events.filter(
        (events.day >= start.date())
        & (events.day <= end.date())
        & (events.timestamp >= ibis.literal(start, type="timestamp('UTC')"))
        & (events.timestamp < ibis.literal(end, type="timestamp('UTC')"))
    )


def with_people(source: EventSource, rows: Any) -> Any:
    """Rows with `user_id`, `anonymous_id` keyed instead by `profile_id`, as audiences link
    events to people: the profile of the userId, else of the anonymousId; rows of no known
    profile are left out."""
    # Only the identifiers are read by the compiler's linking step.
    tables = EngineTables(
        profiles=None, events=None, identifiers=source.identifiers, consents=None, memberships=None
    )
    return with_profile(tables, rows)


def instant_us(source: EventSource, events: Any) -> Any:
    return epoch_microseconds(source.backend, events.timestamp)
