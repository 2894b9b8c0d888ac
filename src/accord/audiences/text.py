"""The readable text form of audience definitions: a tokenizer, a parser and a renderer.

A hand-written recursive-descent parser rather than a grammar library: the language
is a dozen rules, and writing them out lets every error say, in words a marketer
understands, what was expected at which line and column, with no new dependency.

    did "Product Viewed" where category = "shoes" at least 3 times in the last 30 days
      and not did "Order Completed" since 2026-01-01
      and (trait plan = "pro" or consent marketing)

Grammar (keywords are case-insensitive; names are bare words or "quoted"):

    expr      := and_expr ("or" and_expr)*
    and_expr  := unary ("and" unary)*
    unary     := "not" unary | atom
    atom      := "(" expr ")" | "everyone" | trait | consent | member | did | seen
    trait     := "trait" name (cmp value | "contains" string | "in" list
                                | "exists" | "missing")
    consent   := "consent" name
    member    := "in" "audience" name
    did       := "did" ["not"] name ["where" filter ("," filter)*] [count | aggregate] [window]
    filter    := name (cmp value | "contains" string | "in" list | "exists" | "missing")
    aggregate := "with" ("sum" | "average" | "min" | "max") "of" name cmp number
    count     := ("at least" | "at most" | "exactly" | "more than" | "fewer than")
                 integer ("time" | "times")
    seen      := ("first" | "last") "seen" window
    window    := "in the last" integer ("day" | "days") | "since" date
                 | "before" date | "between" date "and" date
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from accord.audiences.conditions import (
    NEVER,
    AggregateCondition,
    And,
    Before,
    Between,
    ConsentCondition,
    Count,
    Definition,
    EventCondition,
    Everyone,
    LastDays,
    MemberCondition,
    Not,
    Or,
    PropertyFilter,
    SeenCondition,
    Since,
    TraitCondition,
)
from accord.core.clock import parse_instant
from accord.core.errors import FieldProblem, InvalidInput

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    """,
    re.VERBOSE,
)

KEYWORDS = frozenset(
    {
        "and", "or", "not", "everyone", "trait", "contains", "in", "exists", "missing",
        "consent", "audience", "did", "where", "at", "least", "most", "exactly", "more",
        "fewer", "than", "time", "times", "first", "last", "seen", "the", "day", "days",
        "since", "before", "between", "true", "false",
    }
)  # fmt: skip
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_COUNTS = {
    ("at", "least"): ">=",
    ("at", "most"): "<=",
    ("exactly",): "=",
    ("more", "than"): ">",
    ("fewer", "than"): "<",
}
_COUNT_WORDS = {op: " ".join(words) for words, op in _COUNTS.items()}
_FUNCTIONS = ("sum", "average", "min", "max")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


# How deeply `not` and parentheses may nest: far beyond any audience a person writes.
MAX_DEPTH = 64


class _Syntax(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _Syntax(position, f"unexpected character {text[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    # Token helpers --------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def _describe(self, token: Token) -> str:
        return "the end of the text" if token.kind == "end" else repr(token.text)

    def fail(self, expected: str) -> _Syntax:
        return _Syntax(
            self.token.position, f"expected {expected}, found {self._describe(self.token)}"
        )

    def at_word(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            token = self.tokens[min(self.index + offset, len(self.tokens) - 1)]
            if token.kind != "word" or token.text.lower() != word:
                return False
        return True

    def take_word(self, *words: str, expected: str | None = None) -> None:
        if not self.at_word(*words):
            raise self.fail(expected or repr(" ".join(words)))
        self.index += len(words)

    def take(self, kind: str, expected: str) -> Token:
        token = self.token
        if token.kind != kind:
            raise self.fail(expected)
        self.index += 1
        return token

    def at_punct(self, text: str) -> bool:
        return self.token.kind == "punct" and self.token.text == text

    # Grammar --------------------------------------------------------------------

    def definition(self) -> Any:
        node = self.expr()
        if self.token.kind != "end":
            raise self.fail("'and', 'or' or the end of the text")
        return node

    def expr(self) -> Any:
        parts = [self.and_expr()]
        while self.at_word("or"):
            self.index += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(any=parts)

    def and_expr(self) -> Any:
        parts = [self.unary()]
        while self.at_word("and"):
            self.index += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(all=parts)

    def deeper(self) -> None:
        # Each `not` and `(` is one level of recursion here and in every later pass.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Syntax(self.token.position, f"conditions nest deeper than {MAX_DEPTH} levels")

    def unary(self) -> Any:
        if self.at_word("not"):
            self.index += 1
            self.deeper()
            node = Not(condition=self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Any:
        if self.at_punct("("):
            self.index += 1
            self.deeper()
            node = self.expr()
            if not self.at_punct(")"):
                raise self.fail("')'")
            self.index += 1
            self.depth -= 1
            return node
        if self.at_word("everyone"):
            self.index += 1
            return Everyone()
        if self.at_word("trait"):
            self.index += 1
            return self.trait()
        if self.at_word("consent"):
            self.index += 1
            return ConsentCondition(purpose=self.name("a purpose"))
        if self.at_word("in", "audience"):
            self.index += 2
            return MemberCondition(audience=self.name("an audience"))
        if self.at_word("did"):
            self.index += 1
            return self.did()
        if self.at_word("first") or self.at_word("last"):
            which = self.token.text.lower()
            self.index += 1
            self.take_word("seen")
            return SeenCondition(which=which, window=self.window(required=True))
        raise self.fail(
            "a condition ('trait', 'did', 'consent', 'in audience', 'first seen', "
            "'last seen', 'everyone', 'not' or '(')"
        )

    def name(self, what: str) -> str:
        token = self.token
        if token.kind == "string":
            self.index += 1
            value: str = json.loads(token.text)
            return value
        if token.kind == "word" and token.text.lower() not in KEYWORDS:
            self.index += 1
            return token.text
        raise self.fail(what)

    def value(self) -> Any:
        token = self.token
        if token.kind == "string":
            self.index += 1
            return json.loads(token.text)
        if token.kind == "number":
            self.index += 1
            return float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
        if self.at_word("true") or self.at_word("false"):
            self.index += 1
            return token.text.lower() == "true"
        raise self.fail('a value (a "string", a number, true or false)')

    def values(self) -> list[Any]:
        if not self.at_punct("("):
            raise self.fail("'(' opening a list of values")
        self.index += 1
        items = [self.value()]
        while self.at_punct(","):
            self.index += 1
            items.append(self.value())
        if not self.at_punct(")"):
            raise self.fail("',' or ')'")
        self.index += 1
        return items

    def comparison(self) -> tuple[str, Any]:
        if self.token.kind == "op":
            op = self.token.text
            self.index += 1
            return op, self.value()
        if self.at_word("contains"):
            self.index += 1
            return "contains", self.value()
        if self.at_word("in"):
            self.index += 1
            return "in", self.values()
        raise self.fail("a comparison (=, !=, <, <=, >, >=, contains or in)")

    def test(self) -> tuple[str, Any]:
        """A comparison, or `exists` / `missing` (which take no value)."""
        if self.at_word("exists") or self.at_word("missing"):
            op = self.token.text.lower()
            self.index += 1
            return op, None
        if self.token.kind not in ("op",) and not (self.at_word("contains") or self.at_word("in")):
            raise self.fail("a comparison, 'exists' or 'missing'")
        return self.comparison()

    def trait(self) -> TraitCondition:
        name = self.name("a trait name")
        op, value = self.test()
        return TraitCondition(trait=name, op=op, value=value)

    def did(self) -> EventCondition | AggregateCondition:
        negated = self.at_word("not")
        if negated:
            self.index += 1
        event = self.name("an event name")
        where = []
        if self.at_word("where"):
            self.index += 1
            where.append(self.filter())
            while self.at_punct(","):
                self.index += 1
                where.append(self.filter())
        if not negated and self.at_word("with"):
            self.index += 1
            function, name, op, value = self.aggregate()
            return AggregateCondition(
                function=function,
                property=name,
                event=event,
                where=where,
                op=op,
                value=value,
                window=self.window(required=False),
            )
        count = NEVER if negated else Count()
        if not negated and self.at_count():
            count = self.count()
        window = self.window(required=False)
        return EventCondition(event=event, where=where, count=count, window=window)

    def aggregate(self) -> tuple[Any, str, str, int | float]:
        """`sum of revenue >= 500` after `with`."""
        function = self.token.text.lower() if self.token.kind == "word" else ""
        if function not in _FUNCTIONS:
            raise self.fail("'sum', 'average', 'min' or 'max'")
        self.index += 1
        self.take_word("of")
        name = self.name("a numeric event property")
        if self.token.kind != "op":
            raise self.fail("a comparison (=, !=, <, <=, >, >=)")
        op = self.token.text
        self.index += 1
        if self.token.kind != "number":
            raise self.fail("a number")
        value = self.value()
        return function, name, op, value

    def filter(self) -> PropertyFilter:
        name = self.name("an event property")
        op, value = self.test()
        return PropertyFilter(property=name, op=op, value=value)

    def at_count(self) -> bool:
        return any(self.at_word(*words) for words in _COUNTS)

    def count(self) -> Count:
        for words, op in _COUNTS.items():
            if self.at_word(*words):
                self.index += len(words)
                number = self.integer()
                if not (self.at_word("times") or self.at_word("time")):
                    raise self.fail("'times'")
                self.index += 1
                return Count(op=op, value=number)
        raise self.fail("a count")  # pragma: no cover - at_count was checked

    def integer(self) -> int:
        token = self.token
        if token.kind != "number" or not re.fullmatch(r"-?\d+", token.text):
            raise self.fail("a whole number")
        self.index += 1
        return int(token.text)

    def date(self) -> datetime:
        token = self.token
        if token.kind != "date":
            raise self.fail("a date such as 2026-01-31 or 2026-01-31T12:00:00Z")
        try:
            value = parse_instant(token.text)
        except ValueError:
            raise _Syntax(token.position, f"{token.text!r} is not a valid date") from None
        self.index += 1
        return value

    def window(self, *, required: bool) -> Any:
        if self.at_word("in", "the", "last"):
            self.index += 3
            days = self.integer()
            if not (self.at_word("days") or self.at_word("day")):
                raise self.fail("'days'")
            self.index += 1
            return LastDays(days=days)
        if self.at_word("since"):
            self.index += 1
            return Since(at=self.date())
        if self.at_word("before"):
            self.index += 1
            return Before(at=self.date())
        if self.at_word("between"):
            self.index += 1
            start = self.date()
            self.take_word("and")
            return Between(start=start, end=self.date())
        if required:
            raise self.fail("a window ('in the last N days', 'since', 'before' or 'between')")
        return None


def _line_column(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def parse(text: str, *, field: str = "text") -> Definition:
    """The text form as a definition; syntax errors name the line and column."""
    try:
        node = _Parser(text).definition()
    except _Syntax as exc:
        raise InvalidInput(
            [FieldProblem(field, f"{_line_column(text, exc.position)}: {exc.reason}")]
        ) from None
    except ValidationError as exc:
        reason = "; ".join(str(error["msg"]) for error in exc.errors())
        raise InvalidInput([FieldProblem(field, reason)]) from None
    return Definition(condition=node)


# Rendering --------------------------------------------------------------------------


def _name(value: str) -> str:
    if _BARE_NAME.fullmatch(value) and value.lower() not in KEYWORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eE") else f"{text}.0"
    if isinstance(value, list):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return json.dumps(value, ensure_ascii=False)


def _date(value: datetime) -> str:
    value = value.astimezone(UTC)
    if value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _window(window: Any) -> str:
    if isinstance(window, LastDays):
        return f"in the last {window.days} {'day' if window.days == 1 else 'days'}"
    if isinstance(window, Since):
        return f"since {_date(window.at)}"
    if isinstance(window, Before):
        return f"before {_date(window.at)}"
    return f"between {_date(window.start)} and {_date(window.end)}"


def _comparison(op: str, value: Any) -> str:
    if op in ("exists", "missing"):
        return op
    return f"{op} {_value(value)}"


def _grouped(node: Any) -> str:
    text = render_condition(node)
    return f"({text})" if isinstance(node, And | Or) else text


def _where(where: list[PropertyFilter]) -> str:
    filters = ", ".join(f"{_name(f.property)} {_comparison(f.op, f.value)}" for f in where)
    return f"where {filters}"


def render_condition(node: Any) -> str:
    if isinstance(node, Everyone):
        return "everyone"
    if isinstance(node, And):
        return " and ".join(_grouped(c) for c in node.all)
    if isinstance(node, Or):
        return " or ".join(_grouped(c) for c in node.any)
    if isinstance(node, Not):
        return f"not {_grouped(node.condition)}"
    if isinstance(node, TraitCondition):
        return f"trait {_name(node.trait)} {_comparison(node.op, node.value)}"
    if isinstance(node, ConsentCondition):
        return f"consent {_name(node.purpose)}"
    if isinstance(node, MemberCondition):
        return f"in audience {_name(node.audience)}"
    if isinstance(node, SeenCondition):
        return f"{node.which} seen {_window(node.window)}"
    if isinstance(node, AggregateCondition):
        parts = ["did", _name(node.event)]
        if node.where:
            parts.append(_where(node.where))
        parts.append(
            f"with {node.function} of {_name(node.property)} {node.op} {_value(node.value)}"
        )
        if node.window is not None:
            parts.append(_window(node.window))
        return " ".join(parts)
    if isinstance(node, EventCondition):
        negated = node.count == NEVER
        parts = ["did not" if negated else "did", _name(node.event)]
        if node.where:
            parts.append(_where(node.where))
        if not negated and node.count != Count():
            times = "time" if node.count.value == 1 else "times"
            parts.append(f"{_COUNT_WORDS[node.count.op]} {node.count.value} {times}")
        if node.window is not None:
            parts.append(_window(node.window))
        return " ".join(parts)
    raise TypeError(f"not a condition: {node!r}")


def render(definition: Definition) -> str:
    return render_condition(definition.condition)
