"""Branch conditions and `where` filters are audience conditions; the old forms still
mean what they meant, on input and in versions stored before the change."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from accord.audiences.conditions import PropertyFilter
from accord.core.errors import InvalidInput
from accord.core.outbound import OutboundPolicy
from accord.journeys import policy, service
from accord.journeys.graph import BranchNode, legacy_condition, parse_definition
from accord.journeys.models import journey_versions
from accord.journeys.runner import Runner
from accord.store.db import Store
from tests.journeys.helpers import ABANDONED_CART, World, track

BIZ = "biz_1"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _old_compare(actual: Any, op: str, expected: Any) -> bool:
    """The old branch comparison, kept here as the meaning the conversion must keep."""
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if op == "eq":
        return bool(actual == expected)
    if op == "neq":
        return bool(actual != expected)
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if actual is None or expected is None:
        return False
    try:
        return bool(
            {"gt": actual > expected, "gte": actual >= expected}.get(op)
            if op in ("gt", "gte")
            else {"lt": actual < expected, "lte": actual <= expected}[op]
        )
    except TypeError:
        return False


# Plain words only: text that reads as a date is compared as a date now (on purpose).
words = st.sampled_from(["alpha", "beta", "gold", "silver"])
numbers = st.integers(-3, 3) | st.sampled_from([0.5, 2.0, 2.5])
values = st.none() | words | numbers


@given(
    actual=values,
    present=st.booleans(),
    op=st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte", "exists", "not_exists", "in"]),
    expected=values | st.lists(words, max_size=3) | st.lists(numbers, max_size=3),
    nested=st.booleans(),
)
def test_old_branch_conditions_keep_their_answers(
    actual: Any, present: bool, op: str, expected: Any, nested: bool
) -> None:
    trait = "address.tier" if nested else "tier"
    inner = {"tier": actual} if present else {}
    traits = {"address": inner} if nested else inner
    node = BranchNode.model_validate(
        {
            "type": "branch",
            "conditions": [{"trait": trait, "op": op, "value": expected}],
            "then": "a",
            "otherwise": "b",
        }
    )
    old = _old_compare(actual if present else None, op, expected)
    assert policy.holds(node.condition, traits, T0) is old


def test_several_old_conditions_become_one_and() -> None:
    node = BranchNode.model_validate(
        {
            "type": "branch",
            "conditions": [
                {"trait": "orders_count", "op": "gt", "value": 0},
                {"trait": "plan", "op": "neq", "value": "pro"},
            ],
            "then": "a",
            "otherwise": "b",
        }
    )
    assert node.model_dump(mode="json")["condition"] == {
        "kind": "and",
        "all": [
            {"kind": "trait", "trait": "orders_count", "op": ">", "value": 0},
            {
                "kind": "not",
                "condition": {"kind": "trait", "trait": "plan", "op": "=", "value": "pro"},
            },
        ],
    }
    assert policy.holds(node.condition, {"orders_count": 2}, T0)
    assert not policy.holds(node.condition, {"orders_count": 2, "plan": "pro"}, T0)
    assert legacy_condition({"trait": "x", "op": "lt"}) == {
        "kind": "not",
        "condition": {"kind": "everyone"},
    }


def test_the_audience_language_in_a_branch() -> None:
    node = BranchNode.model_validate(
        {
            "type": "branch",
            "condition": {
                "kind": "or",
                "any": [
                    {"kind": "trait", "trait": "plan", "op": "in", "value": ["pro", "team"]},
                    {"kind": "trait", "trait": "renews_at", "op": "<", "value": "2027-01-01"},
                ],
            },
            "then": "a",
            "otherwise": "b",
        }
    )
    assert policy.holds(node.condition, {"plan": "team"}, T0)
    # Dates compare as instants, whatever their offset.
    assert policy.holds(node.condition, {"renews_at": "2026-12-31T23:30:00+00:30"}, T0)
    assert not policy.holds(node.condition, {"renews_at": "2026-12-31T23:30:00-01:00"}, T0)
    assert not policy.holds(node.condition, {}, T0)


def _branch(condition: dict[str, Any]) -> dict[str, Any]:
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"]["remind"] = {
        "type": "branch",
        "condition": condition,
        "then": "done",
        "otherwise": "done",
    }
    return definition


@pytest.mark.parametrize(
    ("condition", "field", "reason"),
    [
        ({"kind": "consent", "purpose": "marketing"}, "nodes.remind.condition", "'consent'"),
        (
            {"kind": "not", "condition": {"kind": "event", "event": "X"}},
            "nodes.remind.condition.condition",
            "for audiences",
        ),
        (
            {"kind": "trait", "trait": "plan", "op": ">", "value": "pro"},
            "nodes.remind.condition.op",
            "cannot order a string",
        ),
        (
            {"kind": "trait", "trait": "n", "op": "in", "value": [1, "x"]},
            "nodes.remind.condition.value",
            "is a string",
        ),
    ],
)
def test_branch_conditions_are_validated_as_audience_conditions(
    condition: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_definition(_branch(condition))
    assert any(p.field == field and reason in p.reason for p in caught.value.problems), (
        caught.value.problems
    )


def test_where_filters_take_typed_columns_paths_and_the_old_form() -> None:
    definition = copy.deepcopy(ABANDONED_CART)
    definition["entry"]["where"] = {"properties.source": "web", "properties.coupon": None}
    definition["nodes"]["wait_order"]["where"] = [
        {"property": "category", "op": "in", "value": ["shoes", "bags"]},
        {"property": "properties.total", "op": ">=", "value": 50},
    ]
    parsed = parse_definition(definition)
    assert parsed.entry.where == [  # type: ignore[union-attr]
        PropertyFilter(property="properties.source", op="=", value="web"),
        PropertyFilter(property="properties.coupon", op="missing"),
    ]
    wait = parsed.nodes["wait_order"]
    # `category` is the lake's column: the first product's category counts, as in audiences.
    order = track("Order Completed", total=80, products=[{"category": "shoes"}])
    assert policy.passes(wait.where, order, T0)  # type: ignore[union-attr]
    cheap = track("Order Completed", total=20, products=[{"category": "shoes"}])
    assert not policy.passes(wait.where, cheap, T0)  # type: ignore[union-attr]
    bad = copy.deepcopy(definition)
    bad["nodes"]["wait_order"]["where"] = [{"property": "category", "op": "<", "value": "a"}]
    with pytest.raises(InvalidInput) as caught:
        parse_definition(bad)
    assert [p.field for p in caught.value.problems] == ["nodes.wait_order.where[0].op"]


def test_a_version_stored_in_the_old_form_runs_and_reads_in_the_new(store: Store) -> None:
    definition = copy.deepcopy(ABANDONED_CART)
    definition["entry"]["where"] = [{"property": "properties.source", "op": "=", "value": "web"}]
    definition["nodes"]["wait_order"]["on_timeout"] = "vip"
    definition["nodes"]["vip"] = {
        "type": "branch",
        "condition": {"kind": "trait", "trait": "tier", "op": "=", "value": "gold"},
        "then": "remind",
        "otherwise": "done",
    }
    with store.write() as conn:
        view = service.create_journey(
            conn,
            business_id=BIZ,
            key="cart",
            name="Cart",
            definition=definition,
            now=T0,
            outbound=OutboundPolicy(),
        )
        service.set_status(conn, business_id=BIZ, key="cart", status="active", now=T0)
        # What an older Accord wrote: `where` as a mapping, `conditions` as a list.
        old = copy.deepcopy(view.definition)
        old["entry"]["where"] = {"properties.source": "web"}
        old["nodes"]["vip"].pop("condition")
        old["nodes"]["vip"]["conditions"] = [{"trait": "tier", "op": "eq", "value": "gold"}]
        conn.execute(
            update(journey_versions)
            .where(journey_versions.c.journey_id == view.id)
            .values(definition=orjson.dumps(old).decode())
        )
    world = World(traits={"gold": {"tier": "gold"}, "plain": {"tier": "silver"}})
    runner = Runner(world.environment())
    for person in ("gold", "plain", "app"):
        source = "app" if person == "app" else "web"
        with store.write() as conn:
            event = {**track("Cart Updated", cart_id=person, source=source), "messageId": person}
            runner.handle_events(conn, business_id=BIZ, events=[(person, event)], now=T0)

    assert runner.fire_due(store, now=T0 + timedelta(hours=1)) == 2
    with store.read() as conn:
        paths = {
            person: [
                s.outcome
                for run in service.person_path(conn, business_id=BIZ, profile_id=person)
                for s in run.steps
            ]
            for person in ("gold", "plain", "app")
        }
        shown = service.get_journey(conn, business_id=BIZ, key="cart").definition
    assert paths["gold"][-3:] == ["branched", "queued", "exited"]
    assert paths["plain"][-2:] == ["branched", "exited"]
    assert paths["app"] == []
    assert shown["entry"]["where"] == [{"property": "properties.source", "op": "=", "value": "web"}]
    assert shown["nodes"]["vip"]["condition"]["op"] == "="
