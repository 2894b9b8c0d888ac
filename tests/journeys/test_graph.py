"""Invalid journey graphs are rejected with errors that name the node at fault."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.core.errors import InvalidInput
from accord.journeys.graph import parse_definition, parse_duration
from tests.journeys.helpers import ABANDONED_CART


def _with(change: dict[str, Any]) -> dict[str, Any]:
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"].update(change)
    return definition


CASES = [
    (
        _with({"remind": {"type": "send", "channel": "email", "message": "m", "next": "nowhere"}}),
        "nodes.remind",
        "unknown node 'nowhere'",
    ),
    (_with({"orphan": {"type": "exit"}}), "nodes.orphan", "unreachable"),
    (
        _with(
            {
                "wait_order": {
                    "type": "wait_for_event",
                    "event": "Order Completed",
                    "on_event": "bought",
                }
            }
        ),
        "nodes.wait_order",
        "needs a timeout",
    ),
    (
        _with(
            {
                "remind": {
                    "type": "send",
                    "channel": "email",
                    "message": "cart-reminder",
                    "next": "again",
                },
                "again": {
                    "type": "branch",
                    "conditions": [{"trait": "x"}],
                    "then": "remind",
                    "otherwise": "done",
                },
            }
        ),
        "nodes.remind",
        "loop without a wait",
    ),
    (
        _with(
            {
                "remind": {
                    "type": "send",
                    "channel": "sms",
                    "message": "cart-reminder",
                    "next": "done",
                }
            }
        ),
        "nodes.remind",
        "is for email",
    ),
    (_with({"pause": {"type": "wait", "next": "done"}}), "nodes.pause", "exactly one of"),
    (_with({"bad id!": {"type": "exit"}}), "nodes.bad id!", "a node id"),
    (
        _with({"remind": {"type": "wait", "duration": "0m", "next": "done"}}),
        "nodes.remind.wait.duration",
        "positive",
    ),
    (
        _with({"remind": {"type": "teleport", "next": "done"}}),
        "nodes.remind",
        "does not match any of the expected tags",
    ),
]


@pytest.mark.parametrize(("definition", "field", "reason"), CASES)
def test_invalid_graphs_name_the_node(definition: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_definition(definition)
    assert any(p.field == field and reason in p.reason for p in caught.value.problems), (
        caught.value.problems
    )


def test_the_abandoned_cart_is_valid() -> None:
    assert parse_definition(ABANDONED_CART).start == "wait_order"


@given(st.integers(1, 10_000), st.sampled_from("smhdw"))
def test_durations_parse(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_duration(f"{amount}{unit}").total_seconds() == amount * seconds


@given(st.text(max_size=8))
def test_anything_else_is_not_a_duration(text: str) -> None:
    if re.fullmatch(r"\s*[0-9]+\s*[smhdw]\s*", text, re.ASCII):
        assert parse_duration(text).total_seconds() >= 0
        return
    with pytest.raises(ValueError, match="a duration is"):
        parse_duration(text)


DOCS = Path(__file__).parents[2] / "docs" / "examples" / "journeys"


@pytest.mark.parametrize("name", ["welcome-series", "abandoned-cart", "win-back"])
def test_the_documented_journeys_are_valid(name: str) -> None:
    parse_definition(json.loads((DOCS / f"{name}.json").read_text()))


def test_item_9_journey_send_on_channel_webhook_is_refused() -> None:
    definition = _with(
        {"remind": {"type": "send", "channel": "webhook", "message": "hook", "next": "done"}}
    )
    definition["messages"]["hook"] = {"channel": "webhook", "body": "{}"}
    with pytest.raises(InvalidInput) as caught:
        parse_definition(definition)
    assert any(
        p.field == "nodes.remind.channel" and "webhook node" in p.reason
        for p in caught.value.problems
    ), caught.value.problems
