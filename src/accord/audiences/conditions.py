"""The audience condition tree (JSON form), its catalog of names, and its validation."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from accord.core.clock import parse_instant
from accord.core.errors import FieldProblem, InvalidInput

TraitType = Literal["string", "number", "boolean", "datetime"]
Comparison = Literal["=", "!=", "<", "<=", ">", ">="]
CountOperator = Literal[">=", "<=", "=", ">", "<"]
TraitOperator = Literal["=", "!=", "<", "<=", ">", ">=", "contains", "in", "exists", "missing"]
PropertyOperator = Literal["=", "!=", "<", "<=", ">", ">=", "contains", "in", "exists", "missing"]
Scalar = bool | int | float | str

# Event conditions filter on the lake's typed columns, and on paths into the JSON columns
# (`PATH_ROOTS`), which each engine reads with its own JSON functions (engine/json.py).
EVENT_PROPERTIES: dict[str, TraitType] = {
    "category": "string",
    "product_id": "string",
    "order_id": "string",
    "revenue": "number",
    "currency": "string",
    "channel": "string",
    "name": "string",
    "page_path": "string",
    "page_url": "string",
    "page_referrer": "string",
    "utm_source": "string",
    "utm_medium": "string",
    "utm_campaign": "string",
    "utm_term": "string",
    "utm_content": "string",
}

# A path into an event: a JSON column of the lake, then object keys. Keys are plain
# identifiers, so every engine's JSONPath reads them alike (no quoting, no arrays).
PATH_ROOTS = ("properties", "context", "traits")
MAX_PATH_KEYS = 6
MAX_PATH_LENGTH = 200
MAX_KEY_LENGTH = 64
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")

# The longest window a definition may name; anything longer is a typing slip.
MAX_WINDOW_DAYS = 3650


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Everyone(_Node):
    kind: Literal["everyone"] = "everyone"


class And(_Node):
    kind: Literal["and"] = "and"
    all: list[Condition] = Field(min_length=2)


class Or(_Node):
    kind: Literal["or"] = "or"
    any: list[Condition] = Field(min_length=2)


class Not(_Node):
    kind: Literal["not"] = "not"
    condition: Condition


class TraitCondition(_Node):
    """A profile trait (set by identify calls, computed, or a prediction) compared to a value."""

    kind: Literal["trait"] = "trait"
    trait: str = Field(min_length=1, max_length=200)
    op: TraitOperator
    value: Scalar | list[Scalar] | None = None


class ConsentCondition(_Node):
    """The person has granted this purpose."""

    kind: Literal["consent"] = "consent"
    purpose: str = Field(min_length=1, max_length=100)


class MemberCondition(_Node):
    """The person is currently a member of another audience (by its slug)."""

    kind: Literal["member"] = "member"
    audience: str = Field(min_length=1, max_length=100)


# Bounds that no real audience reaches and that every engine's integers hold.
MAX_COUNT = 1_000_000_000
MAX_DAYS = 100_000


class LastDays(_Node):
    kind: Literal["last"] = "last"
    days: int = Field(le=MAX_DAYS)


class Since(_Node):
    kind: Literal["since"] = "since"
    at: datetime


class Before(_Node):
    kind: Literal["before"] = "before"
    at: datetime


class Between(_Node):
    kind: Literal["between"] = "between"
    start: datetime
    end: datetime


Window = Annotated[LastDays | Since | Before | Between, Field(discriminator="kind")]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class PropertyFilter(_Node):
    """An event property compared to a value: one of the lake's typed columns
    (`EVENT_PROPERTIES`) or a path into the event's JSON (`properties.store_id`,
    `context.campaign.source`; see `path_problem`). A test of one event in real time
    (journeys, lead scoring) may also name any other dotted path into the event."""

    property: str = Field(min_length=1, max_length=200)
    op: PropertyOperator
    value: Scalar | list[Scalar] | None = None


class Count(_Node):
    op: CountOperator = ">="
    value: int = Field(default=1, le=MAX_COUNT)


AT_LEAST_ONCE = Count(op=">=", value=1)
NEVER = Count(op="=", value=0)


class EventCondition(_Node):
    """The person did (or did not) an event, with property filters, a count and a window."""

    kind: Literal["event"] = "event"
    event: str = Field(min_length=1, max_length=200)
    where: list[PropertyFilter] = Field(default_factory=list)
    count: Count = AT_LEAST_ONCE
    window: Window | None = None


AggregateFunction = Literal["sum", "average", "min", "max"]


class AggregateCondition(_Node):
    """The sum, average, minimum or maximum of a numeric property over the events that
    match, compared to a number. With no numeric value among them the aggregate is
    missing, and the comparison false (as a missing trait)."""

    kind: Literal["aggregate"] = "aggregate"
    function: AggregateFunction
    property: str = Field(min_length=1, max_length=MAX_PATH_LENGTH)
    event: str = Field(min_length=1, max_length=200)
    where: list[PropertyFilter] = Field(default_factory=list)
    op: Comparison
    value: int | float
    window: Window | None = None


class SeenCondition(_Node):
    """When the person was first or last seen, inside a window."""

    kind: Literal["seen"] = "seen"
    which: Literal["first", "last"]
    window: Window


Condition = Annotated[
    Everyone
    | And
    | Or
    | Not
    | TraitCondition
    | ConsentCondition
    | MemberCondition
    | EventCondition
    | AggregateCondition
    | SeenCondition,
    Field(discriminator="kind"),
]

And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()


class Definition(BaseModel):
    """An audience definition as the API takes it: the root of the condition tree."""

    model_config = ConfigDict(frozen=True)
    condition: Condition

    @field_validator("condition", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        return normalise_times(value)


def normalise_times(node: Any) -> Any:
    """Naive datetimes in windows are taken as UTC, so every evaluator compares alike."""
    if isinstance(node, Since | Before):
        return node.model_copy(update={"at": _utc(node.at)})
    if isinstance(node, Between):
        return node.model_copy(update={"start": _utc(node.start), "end": _utc(node.end)})
    if isinstance(node, And):
        return node.model_copy(update={"all": [normalise_times(c) for c in node.all]})
    if isinstance(node, Or):
        return node.model_copy(update={"any": [normalise_times(c) for c in node.any]})
    if isinstance(node, Not):
        return node.model_copy(update={"condition": normalise_times(node.condition)})
    if isinstance(node, EventCondition | AggregateCondition | SeenCondition) and node.window:
        return node.model_copy(update={"window": normalise_times(node.window)})
    return node


def children(node: Any) -> list[tuple[str, Any]]:
    """A node's sub-conditions with the path segment that names each."""
    if isinstance(node, And):
        return [(f"all[{i}]", c) for i, c in enumerate(node.all)]
    if isinstance(node, Or):
        return [(f"any[{i}]", c) for i, c in enumerate(node.any)]
    if isinstance(node, Not):
        return [("condition", node.condition)]
    return []


def walk(node: Any, path: str = "condition") -> Iterator[tuple[str, Any]]:
    yield path, node
    for segment, child in children(node):
        yield from walk(child, f"{path}.{segment}")


# Catalog and validation -------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """The names a business's definitions may use, with each trait's type."""

    traits: dict[str, TraitType] = field(default_factory=dict)
    purposes: frozenset[str] = frozenset()
    # slug -> audience id
    audiences: dict[str, str] = field(default_factory=dict)
    # Whether event filters may name any dotted path into the raw event (a test of one
    # event in real time reads any); audiences name typed columns and `PATH_ROOTS` paths.
    event_paths: bool = False


def window_bounds(window: Any, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The window as [start, end): either side may be open."""
    if isinstance(window, LastDays):
        return now - timedelta(days=window.days), None
    if isinstance(window, Since):
        return window.at, None
    if isinstance(window, Before):
        return None, window.at
    if isinstance(window, Between):
        return window.start, window.end
    return None, None


def _window_problems(window: Any, path: str) -> list[FieldProblem]:
    if isinstance(window, LastDays) and not 1 <= window.days <= MAX_WINDOW_DAYS:
        return [
            FieldProblem(
                f"{path}.days",
                f"'in the last {window.days} days' is impossible: use 1 to {MAX_WINDOW_DAYS} days",
            )
        ]
    if isinstance(window, Between) and window.start >= window.end:
        return [
            FieldProblem(
                path,
                f"the window is empty: it starts at {window.start.isoformat()} "
                f"and ends at {window.end.isoformat()}",
            )
        ]
    return []


def _count_problems(count: Count, path: str) -> list[FieldProblem]:
    impossible = count.value < 0 or (count.op == "<" and count.value == 0)
    if impossible:
        return [FieldProblem(path, f"no one can do an event {count.op} {count.value} times")]
    return []


def _type_of(value: Any) -> TraitType | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if math.isfinite(value) else None
    if isinstance(value, str):
        return "string"
    return None


def _is_instant(text: str) -> bool:
    try:
        parse_instant(text)
    except ValueError:
        return False
    return True


def literal_type(value: Any, actual: Any = None) -> TraitType:
    """The type of a field no catalog types (a journey's trait, a path into one event):
    the type of the literal it is compared with (text that reads as an ISO 8601 instant
    is a datetime), else of its actual value for `exists` and `missing`."""
    items = value if isinstance(value, list) else [value]
    kinds = {
        "datetime" if isinstance(item, str) and _is_instant(item) else _type_of(item)
        for item in items
        if item is not None
    }
    if len(kinds) == 1:
        return kinds.pop() or "string"
    if kinds:
        # Mixed literals: validation names the odd ones out; evaluation compares text.
        return "string"
    return _type_of(actual) or "string"


def loose_catalog(node: Any, traits: Mapping[str, Any] | None = None) -> Catalog:
    """A catalog for a condition over traits no catalog describes (journeys, lead
    scoring): each trait typed by `literal_type`."""
    found: dict[str, TraitType] = {}
    from_literal: set[str] = set()
    values = traits or {}
    for _, leaf in walk(node):
        if not isinstance(leaf, TraitCondition):
            continue
        if leaf.value is not None and leaf.trait not in from_literal:
            found[leaf.trait] = literal_type(leaf.value)
            from_literal.add(leaf.trait)
        elif leaf.trait not in found:
            found[leaf.trait] = literal_type(None, values.get(leaf.trait))
    return Catalog(traits=found, event_paths=True)


_ORDERED = {"<", "<=", ">", ">="}


def _value_problems(
    op: str, value: Any, expected: TraitType, path: str, what: str
) -> list[FieldProblem]:
    """Whether `value` can be compared with `op` to something of type `expected`."""
    if op in ("exists", "missing"):
        if value is not None:
            return [FieldProblem(f"{path}.value", f"'{op}' takes no value")]
        return []
    if op == "contains":
        if expected != "string":
            return [
                FieldProblem(f"{path}.op", f"'contains' needs a string; {what} is a {expected}")
            ]
        if not isinstance(value, str):
            return [FieldProblem(f"{path}.value", "'contains' needs a string value")]
        return []
    if op in _ORDERED and expected in ("string", "boolean"):
        return [FieldProblem(f"{path}.op", f"'{op}' cannot order a {expected} ({what})")]
    values = value if op == "in" else [value]
    if op == "in" and (not isinstance(value, list) or not value):
        return [FieldProblem(f"{path}.value", "'in' needs a non-empty list")]
    if op != "in" and isinstance(value, list):
        return [FieldProblem(f"{path}.value", f"'{op}' needs one value, not a list")]
    problems = []
    for item in values:
        if expected == "datetime":
            try:
                parse_instant(item) if isinstance(item, str) else None
            except ValueError:
                item = None
            if not isinstance(item, str):
                problems.append(
                    FieldProblem(
                        f"{path}.value",
                        f"{what} is a datetime: compare it with an ISO 8601 date, not {value!r}",
                    )
                )
            continue
        got = _type_of(item)
        if got != expected:
            problems.append(
                FieldProblem(
                    f"{path}.value", f"{what} is a {expected}, but {item!r} is a {got or 'null'}"
                )
            )
    return problems


def path_problem(name: str) -> str | None:
    """Why `name` is not a path into an event's JSON (`properties.payment.method`), or
    None when it is one: a root of `PATH_ROOTS`, then 1 to `MAX_PATH_KEYS` keys of
    letters, digits, `_` and `-` (not starting with a digit or `-`), each at most
    `MAX_KEY_LENGTH` characters, `MAX_PATH_LENGTH` in all."""
    root, _, rest = name.partition(".")
    if root not in PATH_ROOTS or not rest:
        return f"a path starts with {', '.join(PATH_ROOTS)} and a dot"
    if len(name) > MAX_PATH_LENGTH:
        return f"a path has at most {MAX_PATH_LENGTH} characters"
    keys = rest.split(".")
    if len(keys) > MAX_PATH_KEYS:
        return f"a path has at most {MAX_PATH_KEYS} keys after {root!r}"
    for key in keys:
        if not _KEY.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
            return (
                f"key {key!r} is not a plain name: use letters, digits, '_' and '-', "
                f"starting with a letter or '_', at most {MAX_KEY_LENGTH} characters"
            )
    return None


def is_path(name: str) -> bool:
    """Whether an event property names a path into the event's JSON (not a typed column)."""
    return name.partition(".")[0] in PATH_ROOTS and "." in name


def path_keys(name: str) -> tuple[str, list[str]]:
    """A checked path as its JSON column and the keys inside it."""
    root, _, rest = name.partition(".")
    return root, rest.split(".")


def property_type(name: str, value: Any) -> TraitType | None:
    """How an event property compares: a typed column as the lake types it; a path by the
    literal it is compared with (a number, true/false or text); None if neither."""
    if name in EVENT_PROPERTIES:
        return EVENT_PROPERTIES[name]
    if is_path(name):
        kind = _type_of(value[0] if isinstance(value, list) and value else value)
        return kind or "string"
    return None


def _property_problems(where: PropertyFilter, path: str, catalog: Catalog) -> list[FieldProblem]:
    what = f"property {where.property!r}"
    if where.property in EVENT_PROPERTIES:
        expected: TraitType = EVENT_PROPERTIES[where.property]
    elif catalog.event_paths:
        expected = literal_type(where.value)
    else:
        reason = path_problem(where.property)
        if reason is not None:
            known = ", ".join(EVENT_PROPERTIES)
            hint = ""
            if "." not in where.property:
                hint = f"; a property the lake does not type is properties.{where.property}"
            return [
                FieldProblem(
                    f"{path}.property",
                    f"unknown event property {where.property!r}: {reason} "
                    f"(typed properties: {known}){hint}",
                )
            ]
        if literal_type(where.value) == "datetime":
            return [
                FieldProblem(
                    f"{path}.value",
                    f"{what} is a path: compare it with a string, a number or true/false; "
                    "dates inside event JSON are not compared as dates",
                )
            ]
        expected = property_type(where.property, where.value) or "string"
    return _value_problems(where.op, where.value, expected, path, what)


def filter_problems(where: list[PropertyFilter], path: str, catalog: Catalog) -> list[FieldProblem]:
    """The problems of a list of event filters (`path` names the list: `steps[0].where`)."""
    problems: list[FieldProblem] = []
    for index, item in enumerate(where):
        problems += _property_problems(item, f"{path}[{index}]", catalog)
    return problems


def _aggregate_problems(node: AggregateCondition, path: str) -> list[FieldProblem]:
    problems = []
    if node.property not in EVENT_PROPERTIES:
        reason = path_problem(node.property)
        if reason is not None:
            problems.append(
                FieldProblem(f"{path}.property", f"cannot aggregate {node.property!r}: {reason}")
            )
    elif EVENT_PROPERTIES[node.property] != "number":
        problems.append(
            FieldProblem(
                f"{path}.property", f"cannot {node.function} {node.property!r}: it is not a number"
            )
        )
    if _type_of(node.value) != "number":
        problems.append(FieldProblem(f"{path}.value", f"compare the {node.function} with a number"))
    return problems


def problems_of(definition: Definition, catalog: Catalog) -> list[FieldProblem]:
    """Every problem of a definition, each naming the path of its condition."""
    problems: list[FieldProblem] = []
    for path, node in walk(definition.condition):
        if isinstance(node, TraitCondition):
            expected = catalog.traits.get(node.trait)
            if expected is None:
                problems.append(FieldProblem(f"{path}.trait", f"unknown trait {node.trait!r}"))
                continue
            problems += _value_problems(
                node.op, node.value, expected, path, f"trait {node.trait!r}"
            )
        elif isinstance(node, ConsentCondition):
            if node.purpose not in catalog.purposes:
                known = ", ".join(sorted(catalog.purposes)) or "none"
                problems.append(
                    FieldProblem(
                        f"{path}.purpose", f"unknown purpose {node.purpose!r} (known: {known})"
                    )
                )
        elif isinstance(node, MemberCondition):
            if node.audience not in catalog.audiences:
                problems.append(
                    FieldProblem(f"{path}.audience", f"unknown audience {node.audience!r}")
                )
        elif isinstance(node, EventCondition):
            problems += filter_problems(node.where, f"{path}.where", catalog)
            problems += _count_problems(node.count, f"{path}.count")
            if node.window is not None:
                problems += _window_problems(node.window, f"{path}.window")
        elif isinstance(node, AggregateCondition):
            problems += filter_problems(node.where, f"{path}.where", catalog)
            problems += _aggregate_problems(node, path)
            if node.window is not None:
                problems += _window_problems(node.window, f"{path}.window")
        elif isinstance(node, SeenCondition):
            problems += _window_problems(node.window, f"{path}.window")
    return problems


def validate(definition: Definition, catalog: Catalog, *, prefix: str = "definition") -> None:
    problems = _nul_problems(definition.model_dump(), "") or problems_of(definition, catalog)
    if problems:
        raise InvalidInput(
            [FieldProblem(f"{prefix}.{p.field}" if prefix else p.field, p.reason) for p in problems]
        )


def _nul_problems(value: Any, path: str) -> list[FieldProblem]:
    # NUL ends a string in the engines' SQL and PostgreSQL refuses it in text.
    if isinstance(value, str):
        return [FieldProblem(path, "must not contain the NUL character")] if "\x00" in value else []
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = [
            (f"{path}.{key}" if path else str(key), item) for key, item in value.items()
        ]
    elif isinstance(value, list):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return []
    return [problem for where, item in items for problem in _nul_problems(item, where)]


def parse_definition(data: Any, *, prefix: str = "definition") -> Definition:
    """The JSON form, with Pydantic's errors turned into the one error shape."""
    from pydantic import ValidationError

    try:
        return Definition.model_validate({"condition": data})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"])
            problems.append(FieldProblem(f"{prefix}.{location}".rstrip("."), error["msg"]))
        raise InvalidInput(problems) from None


# Helpers both evaluators share: one meaning of every leaf --------------------------


def coerce(value: Any, kind: TraitType) -> Any:
    """A stored trait value as its catalog type, or None when it is not one."""
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            return None
    return None


def literal(value: Any, kind: TraitType) -> Any:
    """A definition's literal as its trait type (validation has checked it converts)."""
    if isinstance(value, list):
        return [literal(v, kind) for v in value]
    if kind == "number":
        return float(value)
    if kind == "datetime":
        return parse_instant(value)
    return value


def referenced_traits(definition: Definition) -> set[str]:
    return {n.trait for _, n in walk(definition.condition) if isinstance(n, TraitCondition)}


def referenced_audiences(definition: Definition) -> set[str]:
    return {n.audience for _, n in walk(definition.condition) if isinstance(n, MemberCondition)}


def referenced_purposes(definition: Definition) -> set[str]:
    return {n.purpose for _, n in walk(definition.condition) if isinstance(n, ConsentCondition)}


def event_conditions(definition: Definition) -> list[EventCondition]:
    """Distinct event conditions in a fixed order (the compiler names a column per each)."""
    seen: dict[str, EventCondition] = {}
    for _, node in walk(definition.condition):
        if isinstance(node, EventCondition):
            seen.setdefault(node.model_dump_json(), node)
    return list(seen.values())


def aggregate_conditions(definition: Definition) -> list[AggregateCondition]:
    """Distinct aggregate conditions in a fixed order (a column, or two, per each)."""
    seen: dict[str, AggregateCondition] = {}
    for _, node in walk(definition.condition):
        if isinstance(node, AggregateCondition):
            seen.setdefault(node.model_dump_json(), node)
    return list(seen.values())


def reads_paths(definition: Definition) -> bool:
    """Whether a condition reads a path into the events' JSON columns."""
    for _, node in walk(definition.condition):
        if isinstance(node, EventCondition | AggregateCondition):
            names = [f.property for f in node.where]
            if isinstance(node, AggregateCondition):
                names.append(node.property)
            if any(is_path(name) for name in names):
                return True
    return False
