"""The journey graph: entry, nodes, goals and rules as data, and its validation."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from accord.audiences.conditions import (
    And,
    Condition,
    Definition,
    Everyone,
    Not,
    Or,
    PropertyFilter,
    TraitCondition,
    loose_catalog,
    problems_of,
    walk,
)
from accord.core.errors import FieldProblem, InvalidInput

NODE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_DURATION = re.compile(r"^\s*([0-9]{1,9})\s*(s|m|h|d|w)\s*$", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_NODES = 200
MAX_WAIT = timedelta(days=366)
CHANNELS = ("email", "sms", "whatsapp", "push", "webhook")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `1h`, `2d`, `1w`: the forms a journey definition accepts."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("a duration is a whole number and a unit: s, m, h, d or w (e.g. 1h)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _duration(value: str) -> str:
    span = parse_duration(value)
    if span <= timedelta(0):
        raise ValueError("a duration must be positive")
    if span > MAX_WAIT:
        raise ValueError("a duration may be at most 366 days")
    return value


def _clock(value: str) -> str:
    try:
        time.fromisoformat(value)
    except ValueError:
        raise ValueError("a time of day is HH:MM in 24-hour form") from None
    return value


Duration = Annotated[str, AfterValidator(_duration)]
ClockTime = Annotated[str, AfterValidator(_clock)]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def targets(self) -> list[str]:
        """The nodes this one can lead to."""
        return []


# The old branch operators (deprecated; accepted on input and in stored versions).
_LEGACY_OPS = {
    "eq": "=",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "in": "in",
    "exists": "exists",
    "not_exists": "missing",
}
NEVER_TRUE: dict[str, Any] = {"kind": "not", "condition": {"kind": "everyone"}}


def legacy_condition(item: dict[str, Any]) -> dict[str, Any]:
    """One `{trait, op, value}` of the old branch form as an audience condition with
    the same answers (deprecated form; see docs/journeys.md)."""
    trait, op, value = item.get("trait"), item.get("op", "eq"), item.get("value")
    if op == "neq":
        # The old `neq` also held when the trait was missing: `not (trait = value)` does.
        return {"kind": "not", "condition": legacy_condition({**item, "op": "eq"})}
    if op == "eq" and value is None:
        return {"kind": "trait", "trait": trait, "op": "missing"}
    if op in ("exists", "not_exists"):
        value = None
    elif (value is None and op != "in") or isinstance(value, list) != (op == "in"):
        # Ordering against nothing or a list, or `in` a non-list, was never true.
        return NEVER_TRUE
    return {"kind": "trait", "trait": trait, "op": _LEGACY_OPS.get(op, op), "value": value}


def legacy_where(where: Any) -> Any:
    """The old `where` form, `{path: value}` (deprecated), as event property filters."""
    if not isinstance(where, dict):
        return where
    return [
        {"property": path, "op": "missing"}
        if value is None
        else {"property": path, "op": "=", "value": value}
        for path, value in where.items()
    ]


# Event filters of an entry or a wait: the audiences' filters, paths into the event allowed.
Where = Annotated[list[PropertyFilter], BeforeValidator(legacy_where), Field(max_length=50)]


class WaitNode(_Node):
    """Wait a duration, until a time of day in the person's zone, or until a date trait."""

    type: Literal["wait"]
    duration: Duration | None = None
    until_time: ClockTime | None = None
    until_trait: str | None = None
    # Until the person's best hour to be contacted (send-time optimisation), at most a
    # day away; `fallback_hour` when nothing is known of anyone yet.
    until_best_hour: bool = False
    fallback_hour: int = Field(default=10, ge=0, le=23)
    offset: Duration | None = None
    next: str

    def targets(self) -> list[str]:
        return [self.next]


class WaitForEventNode(_Node):
    """Wait for an event of the person; after `timeout` without it, take `on_timeout`."""

    type: Literal["wait_for_event"]
    event: str = Field(min_length=1, max_length=200)
    where: Where = Field(default_factory=list)
    timeout: Duration | None = None
    on_event: str
    on_timeout: str | None = None

    def targets(self) -> list[str]:
        return [self.on_event] + ([self.on_timeout] if self.on_timeout else [])


class WaitForAudienceNode(_Node):
    """Wait for the person to enter or leave an audience; after `timeout`, `on_timeout`."""

    type: Literal["wait_for_audience"]
    audience: str = Field(min_length=1, max_length=200)
    change: Literal["enter", "exit"] = "enter"
    timeout: Duration | None = None
    on_change: str
    on_timeout: str | None = None

    def targets(self) -> list[str]:
        return [self.on_change] + ([self.on_timeout] if self.on_timeout else [])


def audience_event(audience: str, change: str) -> str:
    """The name under which an audience change wakes the people waiting for it."""
    return f"audience:{change}:{audience}"


class BranchNode(_Node):
    """Take `then` when the condition (an audience condition over the person's traits)
    holds, else `otherwise`."""

    type: Literal["branch"]
    condition: Condition
    then: str
    otherwise: str

    @model_validator(mode="before")
    @classmethod
    def _legacy_conditions(cls, data: Any) -> Any:
        """The old `conditions` list (deprecated): all must hold."""
        if not isinstance(data, dict) or "conditions" not in data or "condition" in data:
            return data
        items = data["conditions"]
        if not isinstance(items, list) or not items:
            raise ValueError("a branch needs a condition")
        parts = [legacy_condition(i) if isinstance(i, dict) else i for i in items]
        rest = {k: v for k, v in data.items() if k != "conditions"}
        return {**rest, "condition": parts[0] if len(parts) == 1 else {"kind": "and", "all": parts}}

    def targets(self) -> list[str]:
        return [self.then, self.otherwise]


class SplitPath(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    weight: float = Field(gt=0)
    next: str


class SplitNode(_Node):
    """Random split by weight; an A/B test (`ab_test`) also picks a winner once significant."""

    type: Literal["split"]
    paths: list[SplitPath] = Field(min_length=2, max_length=10)
    ab_test: bool = False
    # The conversion measured by an A/B test: the journey goal, within its window.
    min_per_path: int = Field(default=100, ge=10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)

    def targets(self) -> list[str]:
        return [path.next for path in self.paths]


class Message(BaseModel):
    """What a send node says: a sandboxed template over the person's traits.

    `body` is the text (SMS, WhatsApp, push body, email HTML); `subject` is the email
    subject, `title` the push title, `url` where a push or link leads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    channel: Literal["email", "sms", "whatsapp", "push", "webhook"]
    body: str = Field(min_length=1, max_length=100_000)
    subject: str = Field(default="", max_length=300)
    title: str = Field(default="", max_length=200)
    url: str = Field(default="", max_length=2000)


class SendNode(_Node):
    """Send a message. With `channel: best`, `options` maps each candidate channel to
    its message and the person's next-best channel among them is used."""

    type: Literal["send"]
    channel: Literal["email", "sms", "whatsapp", "push", "webhook", "best"]
    message: str = Field(default="", max_length=200)
    options: dict[Literal["email", "sms", "whatsapp", "push"], str] = Field(default_factory=dict)
    next: str

    def targets(self) -> list[str]:
        return [self.next]


class UpdateTraitNode(_Node):
    type: Literal["update_trait"]
    trait: str = Field(min_length=1, max_length=200)
    value: Any
    next: str

    def targets(self) -> list[str]:
        return [self.next]


class ListNode(_Node):
    """Add the person to, or remove them from, a list or the suppression list."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["list"]
    action: Literal["add", "remove"]
    name: str = Field(min_length=1, max_length=200, alias="list")
    next: str

    def targets(self) -> list[str]:
        return [self.next]


class WebhookNode(_Node):
    type: Literal["webhook"]
    destination: str = Field(min_length=1, max_length=200)
    next: str

    def targets(self) -> list[str]:
        return [self.next]


class ExitNode(_Node):
    type: Literal["exit"]


Node = Annotated[
    WaitNode
    | WaitForEventNode
    | WaitForAudienceNode
    | BranchNode
    | SplitNode
    | SendNode
    | UpdateTraitNode
    | ListNode
    | WebhookNode
    | ExitNode,
    Field(discriminator="type"),
]


class EventEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["event"]
    event: str = Field(min_length=1, max_length=200)
    where: Where = Field(default_factory=list)
    # A property path whose value names one entry, e.g. `properties.cart_id`: the same
    # cart enters once however often `Cart Updated` arrives.
    dedupe: str | None = None


class AudienceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["audience"]
    audience: str = Field(min_length=1, max_length=200)


class DateTraitEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["date_trait"]
    trait: str = Field(min_length=1, max_length=200)
    at: ClockTime = "09:00"
    offset_days: int = Field(default=0, ge=-365, le=365)


class ApiEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["api"]


Entry = Annotated[
    EventEntry | AudienceEntry | DateTraitEntry | ApiEntry, Field(discriminator="type")
]


class Goal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event: str = Field(min_length=1, max_length=200)
    within: Duration = "7d"


class Reentry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["never", "after_exit", "after_days"] = "after_exit"
    days: int | None = Field(default=None, ge=1, le=3650)


class Cap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max: int = Field(ge=1, le=1000)
    per: Duration = "7d"


class QuietHours(BaseModel):
    """Hours in the person's time zone when nothing is sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: ClockTime = "21:00"
    end: ClockTime = "08:00"
    mode: Literal["delay", "skip"] = "delay"


class JourneyDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    entry: Entry
    start: str
    nodes: dict[str, Node] = Field(min_length=1)
    messages: dict[str, Message] = Field(default_factory=dict)
    # Webhook destinations by name: the URL each webhook node posts to.
    destinations: dict[str, str] = Field(default_factory=dict)
    goal: Goal | None = None
    reentry: Reentry = Reentry()
    max_people: int | None = Field(default=None, ge=1)
    caps: dict[Literal["email", "sms", "whatsapp", "push", "webhook"], Cap] = Field(
        default_factory=dict
    )
    quiet_hours: QuietHours | None = None
    # Share of people who get neither send-time optimisation nor next-best channel, so
    # the report can show what those add.
    smart_holdout: float = Field(default=0.1, ge=0, le=0.5)
    timezone_trait: str = "timezone"
    default_timezone: str = "UTC"

    @field_validator("destinations")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"destination {name!r} must be an http(s) URL")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


_DEFINITION = TypeAdapter(JourneyDefinition)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "definition"


def load_definition(data: Any) -> JourneyDefinition:
    """A stored version, checked when it was saved: its shape only, old forms converted."""
    try:
        return _DEFINITION.validate_python(data)
    except ValidationError as exc:
        raise InvalidInput(
            [FieldProblem(_loc(err["loc"]), err["msg"]) for err in exc.errors()]
        ) from None


def parse_definition(data: Any) -> JourneyDefinition:
    """Validate a journey definition; every problem names the node or field at fault."""
    definition = load_definition(data)
    problems = graph_problems(definition) + condition_problems(definition)
    if problems:
        raise InvalidInput(problems)
    return definition


_BRANCH_KINDS = (Everyone, And, Or, Not, TraitCondition)


def _where_problems(where: list[PropertyFilter], path: str) -> list[FieldProblem]:
    """The audience validation of event filters, with paths into the event allowed."""
    if not where:
        return []
    probe = Definition(condition={"kind": "event", "event": "-", "where": where})
    return [
        FieldProblem(p.field.replace("condition.where", f"{path}.where", 1), p.reason)
        for p in problems_of(probe, loose_catalog(probe.condition))
    ]


def condition_problems(definition: JourneyDefinition) -> list[FieldProblem]:
    """Branch conditions and `where` filters, checked as audience conditions are (each
    trait typed by the literal it is compared with, see `loose_catalog`)."""
    problems: list[FieldProblem] = []
    if isinstance(definition.entry, EventEntry):
        problems += _where_problems(definition.entry.where, "entry")
    for node_id, node in definition.nodes.items():
        where = f"nodes.{node_id}"
        if isinstance(node, WaitForEventNode):
            problems += _where_problems(node.where, where)
        if not isinstance(node, BranchNode):
            continue
        odd = [(p, n) for p, n in walk(node.condition) if not isinstance(n, _BRANCH_KINDS)]
        for path, leaf in odd:
            problems.append(
                FieldProblem(
                    f"{where}.{path}",
                    f"a branch tests the person's traits; {leaf.kind!r} conditions are for "
                    "audiences (enter or wait for an audience instead)",
                )
            )
        if not odd:
            catalog = loose_catalog(node.condition)
            problems += [
                FieldProblem(f"{where}.{p.field}", p.reason)
                for p in problems_of(Definition(condition=node.condition), catalog)
            ]
    return problems


def _waits(node: _Node) -> bool:
    return isinstance(node, WaitNode | WaitForEventNode | WaitForAudienceNode)


def graph_problems(definition: JourneyDefinition) -> list[FieldProblem]:
    """The structural faults of a graph: bad ids, dangling links, unreachable nodes,
    waits that could last for ever, and loops that never wait."""
    nodes = definition.nodes
    problems: list[FieldProblem] = []
    broken = False
    if len(nodes) > MAX_NODES:
        problems.append(FieldProblem("nodes", f"a journey has at most {MAX_NODES} nodes"))
    for node_id, node in nodes.items():
        where = f"nodes.{node_id}"
        if not NODE_ID.match(node_id):
            problems.append(
                FieldProblem(where, "a node id starts with a letter; letters, digits, _ and -")
            )
        for target in node.targets():
            if target not in nodes:
                broken = True
                problems.append(FieldProblem(where, f"leads to unknown node {target!r}"))
        if isinstance(node, WaitNode):
            given = [
                x
                for x in (node.duration, node.until_time, node.until_trait, node.until_best_hour)
                if x
            ]
            if len(given) != 1:
                problems.append(
                    FieldProblem(
                        where,
                        "a wait needs exactly one of duration, until_time, until_trait, "
                        "until_best_hour",
                    )
                )
        if isinstance(node, WaitForEventNode | WaitForAudienceNode) and (
            node.timeout is None or node.on_timeout is None
        ):
            problems.append(
                FieldProblem(where, "waiting for an event needs a timeout and on_timeout")
            )
        if isinstance(node, SendNode):
            if node.channel == "webhook":
                problems.append(
                    FieldProblem(
                        f"{where}.channel",
                        "a send cannot call a webhook: use a webhook node and a destination",
                    )
                )
            choices: list[tuple[str, str]]
            if node.channel == "webhook":
                choices = []
            elif node.channel == "best":
                if len(node.options) < 2:
                    problems.append(
                        FieldProblem(where, "the best channel needs at least two options")
                    )
                choices = list(node.options.items())
            else:
                choices = [(node.channel, node.message)]
            for channel, key in choices:
                message = definition.messages.get(key)
                if message is None:
                    problems.append(FieldProblem(where, f"sends unknown message {key!r}"))
                elif message.channel != channel:
                    problems.append(
                        FieldProblem(where, f"message {key!r} is for {message.channel}")
                    )
        if isinstance(node, WebhookNode) and node.destination not in definition.destinations:
            problems.append(
                FieldProblem(where, f"posts to unknown destination {node.destination!r}")
            )
        if isinstance(node, SplitNode) and len({p.name for p in node.paths}) != len(node.paths):
            problems.append(FieldProblem(where, "split paths need distinct names"))
        if isinstance(node, SplitNode) and node.ab_test and definition.goal is None:
            problems.append(FieldProblem(where, "an A/B test needs a journey goal to measure"))
    if definition.start not in nodes:
        broken = True
        problems.append(FieldProblem("start", f"unknown node {definition.start!r}"))
    if broken:
        return problems

    reachable: set[str] = set()
    frontier = [definition.start]
    while frontier:
        current = frontier.pop()
        if current in reachable:
            continue
        reachable.add(current)
        frontier.extend(nodes[current].targets())
    for node_id in nodes:
        if node_id not in reachable:
            problems.append(FieldProblem(f"nodes.{node_id}", "is unreachable from the start"))

    # A cycle made only of nodes that do not wait would run for ever in one step.
    instant = {nid: n for nid, n in nodes.items() if not _waits(n)}
    state: dict[str, int] = {}

    def visit(node_id: str, path: list[str]) -> None:
        state[node_id] = 1
        for target in instant[node_id].targets():
            if target not in instant:
                continue
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target] if target in path else [target]
                problems.append(
                    FieldProblem(f"nodes.{target}", "loop without a wait: " + " -> ".join(loop))
                )
            elif target not in state:
                visit(target, [*path, target])
        state[node_id] = 2

    for node_id in instant:
        if node_id not in state:
            visit(node_id, [node_id])
    if not any(isinstance(n, ExitNode) for n in nodes.values()):
        problems.append(FieldProblem("nodes", "a journey needs at least one exit node"))
    return problems
