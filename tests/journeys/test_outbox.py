"""Delivering the outbox: rendering, addresses, the last consent check, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jinja2 import TemplateError
from sqlalchemy import select

from accord.core.outbound import OutboundPolicy
from accord.journeys import service
from accord.journeys.models import journey_outbox
from accord.journeys.outbox import dispatch, render
from accord.journeys.runner import Runner
from accord.messaging.channels import Delivery, Outgoing
from accord.store.db import Store
from tests.journeys.helpers import World

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEFINITION: dict[str, Any] = {
    "entry": {"type": "api"},
    "start": "text",
    "nodes": {
        "text": {"type": "send", "channel": "sms", "message": "hi", "next": "out"},
        "out": {"type": "exit"},
    },
    "messages": {"hi": {"channel": "sms", "body": "Hi {{ first_name | default('there') }}!"}},
}


class Phone:
    name = "sms"

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, message: Outgoing) -> Delivery:
        self.sent.append(message)
        return Delivery("sent", provider_id="SM1")


def _enter(store: Store, runner: Runner, *people: str) -> None:
    with store.write() as conn:
        service.create_journey(
            conn,
            business_id="b",
            key="hi",
            name="Hi",
            definition=DEFINITION,
            now=T0,
            outbound=OutboundPolicy(),
        )
        service.set_status(conn, business_id="b", key="hi", status="active", now=T0)
        for person in people:
            service.trigger(
                conn,
                runner,
                business_id="b",
                key="hi",
                profile_id=person,
                entry_key=person,
                context={},
                now=T0,
            )


def test_messages_are_rendered_sent_and_recorded(store: Store) -> None:
    world = World(
        traits={
            "ann": {"phone": "+447700900001", "first_name": "Ann"},
            "bob": {"phone": "+447700900002"},
            "cat": {},
        }
    )
    runner, phone = Runner(world.environment()), Phone()
    _enter(store, runner, "ann", "bob", "cat")
    # Ann withdraws after the step queued her message: the last check stops it.
    world.blocked[("ann", "sms")] = "no consent for marketing"
    assert dispatch(store, runner, {"sms": phone}, now=T0 + timedelta(seconds=1)) == 3
    assert [(m.to, m.body) for m in phone.sent] == [("+447700900002", "Hi there!")]
    with store.read() as conn:
        outcomes = {
            r.profile_id: (r.status, r.detail) for r in conn.execute(select(journey_outbox))
        }
    assert outcomes["bob"][0] == "sent"
    assert outcomes["ann"][0] == "failed" and "no consent" in outcomes["ann"][1]
    assert outcomes["cat"][0] == "failed" and "no sms address" in outcomes["cat"][1]
    assert sorted((p, e) for p, e, _ in world.events) == [
        ("ann", "Message Failed"),
        ("bob", "Message Sent"),
        ("cat", "Message Failed"),
    ]


def test_a_missing_trait_without_fallback_is_an_error_not_a_blank() -> None:
    assert render("Hi {{ name | default('you') }}", {}) == "Hi you"
    try:
        render("Hi {{ name }}", {})
    except Exception as exc:  # jinja2's UndefinedError
        assert "name" in str(exc)
    else:
        raise AssertionError("a missing trait rendered as a blank")
    assert render("<b>{{ name }}</b>", {"name": "<script>"}, html=True) == "<b>&lt;script&gt;</b>"


@pytest.mark.parametrize(
    "source",
    ["{{ (3**10000000) % 7 }}", "{{ 10**5000 }}", "{{ range(10**6) | list }}", "{{ 'x' * 10**9 }}"],
)
def test_item_2_template_dos_journey_messages_are_bounded(source: str) -> None:
    with pytest.raises(TemplateError):
        render(source, {"first_name": "Ada"})
    assert render("Hi {{ first_name }}", {"first_name": "Ada"}) == "Hi Ada"
