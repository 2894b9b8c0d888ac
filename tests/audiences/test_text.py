"""The text form: parsing, rendering, round trips, and errors that name the place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from accord.audiences.conditions import (
    And,
    Before,
    Count,
    Definition,
    EventCondition,
    LastDays,
    Not,
    PropertyFilter,
    Since,
    TraitCondition,
    parse_definition,
    validate,
)
from accord.audiences.text import parse, render
from accord.core.errors import InvalidInput
from tests.audiences.strategies import CATALOG, any_conditions, conditions


def test_the_example_of_the_brief() -> None:
    definition = parse(
        'did "Product Viewed" where category = "shoes" at least 3 times in the last 30 days\n'
        '  and not did "Order Completed" since 2026-01-01'
    )
    assert definition.condition == And(
        all=[
            EventCondition(
                event="Product Viewed",
                where=[PropertyFilter(property="category", op="=", value="shoes")],
                count=Count(op=">=", value=3),
                window=LastDays(days=30),
            ),
            Not(
                condition=EventCondition(
                    event="Order Completed",
                    window=Since(at=datetime(2026, 1, 1, tzinfo=UTC)),
                )
            ),
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('did not "Order Completed"', 'did not "Order Completed"'),
        ('DID "Signed Up" exactly 0 times', 'did not "Signed Up"'),
        ('did "Signed Up" at least 1 time', 'did "Signed Up"'),
        ("first seen before 2026-01-01T00:00:00Z", "first seen before 2026-01-01"),
        ("trait ltv >= 100 and trait vip = true", "trait ltv >= 100 and trait vip = true"),
        ("not (trait plan exists or consent marketing)", "not (trait plan exists or consent marketing)"),  # noqa: E501
        ('in audience "buyers" and trait "the plan" in ("a", 2)', 'in audience buyers and trait "the plan" in ("a", 2)'),  # noqa: E501
        ('did x where category exists, revenue MISSING', "did x where category exists, revenue missing"),  # noqa: E501
        ("a_b", None),
    ],
)  # fmt: skip
def test_canonical_text(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidInput):
            parse(text)
        return
    assert render(parse(text)) == expected


def test_and_binds_tighter_than_or() -> None:
    definition = parse("consent a or consent b and consent c")
    assert render(definition) == "consent a or (consent b and consent c)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('did "X" at least three times', "line 1, column 18: expected a whole number, found 'three'"),  # noqa: E501
        ("trait plan", "line 1, column 11: expected a comparison, 'exists' or 'missing'"),
        ("trait plan = pro", "line 1, column 14: expected a value"),
        ("(consent a", "expected ')', found the end of the text"),
        ("consent a\nor did", "line 2, column 7: expected an event name"),
        ("first seen", "expected a window"),
        ("did x since 2026-13-01", "'2026-13-01' is not a valid date"),
        ("consent a consent b", "expected 'and', 'or' or the end of the text, found 'consent'"),
        ("trait x = 1 ; drop", "unexpected character ';'"),
        ("", "expected a condition"),
        ("and", "expected a condition"),
    ],
)  # fmt: skip
def test_syntax_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    [problem] = caught.value.problems
    assert problem.field == "text"
    assert message in problem.reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(condition=any_conditions)
def test_json_text_json_round_trip(condition: Any) -> None:
    definition = Definition(condition=condition)
    text = render(definition)
    assert parse(text) == definition
    # and through the JSON form of the API
    again = parse_definition(definition.model_dump(mode="json")["condition"])
    assert again == definition
    assert render(again) == text


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(condition=conditions)
def test_generated_valid_definitions_validate(condition: Any) -> None:
    definition = Definition(condition=condition)
    validate(definition, CATALOG)
    assert parse(render(definition)) == definition


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("trait plann = 'x'", None, None),
        ('trait plann = "x"', "definition.condition.trait", "unknown trait 'plann'"),
        (
            'consent marketing and trait ltv = "high"',
            "definition.condition.all[1].value",
            "trait 'ltv' is a number, but 'high' is a string",
        ),
        ('trait plan > "a"', "definition.condition.op", "'>' cannot order a string"),
        ("trait ltv contains \"1\"", "definition.condition.op", "'contains' needs a string"),
        (
            'not (did x in the last 0 days or consent marketing)',
            "definition.condition.condition.any[0].window.days",
            "'in the last 0 days' is impossible",
        ),
        (
            "last seen between 2026-02-01 and 2026-01-01",
            "definition.condition.window",
            "the window is empty",
        ),
        ("did x fewer than 0 times", "definition.condition.count", "no one can do an event < 0"),
        ("did x where colour = \"red\"", "definition.condition.where[0].property", "unknown event property 'colour'"),  # noqa: E501
        ("did x where revenue = \"red\"", "definition.condition.where[0].value", "property 'revenue' is a number"),  # noqa: E501
        ("consent spam", "definition.condition.purpose", "unknown purpose 'spam'"),
        ("in audience nobody", "definition.condition.audience", "unknown audience 'nobody'"),
        ('trait signup > "yesterday"', "definition.condition.value", "trait 'signup' is a datetime"),  # noqa: E501
        ("trait vip exists", None, None),
    ],
)  # fmt: skip
def test_validation_names_the_condition(text: str, field: str | None, reason: str | None) -> None:
    if reason is None and field is None and "'" in text:
        with pytest.raises(InvalidInput):
            parse(text)
        return
    definition = parse(text)
    if reason is None:
        validate(definition, CATALOG)
        return
    with pytest.raises(InvalidInput) as caught:
        validate(definition, CATALOG)
    assert [(p.field, reason in p.reason) for p in caught.value.problems] == [(field, True)]


def test_json_errors_name_the_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_definition({"kind": "and", "all": [{"kind": "trait", "trait": "x", "op": "~"}]})
    fields = {p.field for p in caught.value.problems}
    assert "definition.and.all" in fields or any("all" in f for f in fields)
    with pytest.raises(InvalidInput) as caught:
        parse_definition({"kind": "nope"})
    assert caught.value.problems[0].field.startswith("definition")


def test_naive_window_dates_are_utc() -> None:
    definition = parse_definition(
        {
            "kind": "seen",
            "which": "first",
            "window": {"kind": "before", "at": "2026-01-01T00:00:00"},
        }
    )
    assert definition.condition.window == Before(at=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[union-attr]


def test_trait_condition_model() -> None:
    assert TraitCondition(trait="a", op="exists").value is None
