"""The other contexts a journey touches (people, reachability, lists), as the runner sees them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from accord.journeys.engagement import Engagement, JourneyEngagement


@dataclass(frozen=True)
class Reach:
    """Whether a person can be messaged on a channel now, and if not, why."""

    allowed: bool
    reason: str = ""


class People(Protocol):
    """What the runner reads and writes of a person (the profiles context)."""

    def traits(self, conn: Connection, *, business_id: str, profile_id: str) -> dict[str, Any]: ...

    def set_trait(
        self, conn: Connection, *, business_id: str, profile_id: str, trait: str, value: Any
    ) -> None: ...

    def with_trait(
        self, conn: Connection, *, business_id: str, trait: str
    ) -> Iterable[tuple[str, dict[str, Any]]]:
        """Every person of the business who has the trait, with their traits."""
        ...

    def record(
        self,
        conn: Connection,
        *,
        business_id: str,
        profile_id: str,
        event: str,
        properties: dict[str, Any],
    ) -> None:
        """Add an event to the person's history (a message delivered or failed)."""
        ...


class Reachability(Protocol):
    """Consent for the channel's purpose, suppression, unsubscribes and an address."""

    def check(
        self, conn: Connection, *, business_id: str, profile_id: str, channel: str
    ) -> Reach: ...


class Lists(Protocol):
    def change(
        self, conn: Connection, *, business_id: str, profile_id: str, name: str, add: bool
    ) -> None: ...


@dataclass
class Environment:
    """The other contexts a journey touches, passed in rather than reached for."""

    people: People
    reachability: Reachability
    lists: Lists
    engagement: Engagement = field(default_factory=JourneyEngagement)
