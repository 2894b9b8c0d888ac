"""Worlds for the runner: a small in-test one (people with traits, reachability and lists)
and `everyone`, one that costs nothing (the crash test's loop and bench/journeys.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from accord.journeys.environment import Environment, Reach

ABANDONED_CART: dict[str, Any] = {
    "entry": {"type": "event", "event": "Cart Updated", "dedupe": "properties.cart_id"},
    "start": "wait_order",
    "nodes": {
        "wait_order": {
            "type": "wait_for_event",
            "event": "Order Completed",
            "timeout": "1h",
            "on_event": "bought",
            "on_timeout": "remind",
        },
        "remind": {"type": "send", "channel": "email", "message": "cart-reminder", "next": "done"},
        "bought": {"type": "exit"},
        "done": {"type": "exit"},
    },
    "messages": {
        "cart-reminder": {
            "channel": "email",
            "subject": "You left something behind, {{ first_name | default('friend') }}",
            "body": "<p>Your cart is waiting.</p>",
        },
        "cart-sms": {"channel": "sms", "body": "Your cart is waiting"},
    },
    "goal": {"event": "Order Completed", "within": "7d"},
}


@dataclass
class World:
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (profile, channel) -> reason it cannot be reached
    blocked: dict[tuple[str, str], str] = field(default_factory=dict)
    lists: dict[str, set[str]] = field(default_factory=dict)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def environment(self) -> Environment:
        world = self

        class People:
            def traits(
                self, conn: Connection, *, business_id: str, profile_id: str
            ) -> dict[str, Any]:
                return dict(world.traits.get(profile_id, {}))

            def set_trait(
                self,
                conn: Connection,
                *,
                business_id: str,
                profile_id: str,
                trait: str,
                value: Any,
            ) -> None:
                world.traits.setdefault(profile_id, {})[trait] = value

            def record(
                self,
                conn: Connection,
                *,
                business_id: str,
                profile_id: str,
                event: str,
                properties: dict[str, Any],
            ) -> None:
                world.events.append((profile_id, event, properties))

            def with_trait(
                self, conn: Connection, *, business_id: str, trait: str
            ) -> list[tuple[str, dict[str, Any]]]:
                return [(p, dict(t)) for p, t in world.traits.items() if trait in t]

        class Reachability:
            def check(
                self, conn: Connection, *, business_id: str, profile_id: str, channel: str
            ) -> Reach:
                reason = world.blocked.get((profile_id, channel))
                return Reach(allowed=reason is None, reason=reason or "")

        class Lists:
            def change(
                self, conn: Connection, *, business_id: str, profile_id: str, name: str, add: bool
            ) -> None:
                members = world.lists.setdefault(name, set())
                if add:
                    members.add(profile_id)
                else:
                    members.discard(profile_id)

        return Environment(people=People(), reachability=Reachability(), lists=Lists())


class Everyone:
    """Everyone has a phone, can be reached on every channel and changes no list, at no
    cost: what is exercised is the runner alone."""

    def traits(self, conn: Connection, *, business_id: str, profile_id: str) -> dict[str, Any]:
        return {"phone": "+447700900123"}

    def set_trait(self, conn: Connection, **_: Any) -> None:
        raise AssertionError("not used")

    def with_trait(self, conn: Connection, **_: Any) -> list[tuple[str, dict[str, Any]]]:
        return []

    def record(self, conn: Connection, **_: Any) -> None:
        pass

    def check(self, conn: Connection, *, business_id: str, profile_id: str, channel: str) -> Reach:
        return Reach(True)

    def change(self, conn: Connection, **_: Any) -> None:
        raise AssertionError("not used")


def everyone() -> Environment:
    people = Everyone()
    return Environment(people=people, reachability=people, lists=people)


def track(name: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "properties": properties, "messageId": f"m-{name}"}
