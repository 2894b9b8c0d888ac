"""What the demo keeps from its generated events while they stream into the import:
the banner decisions to record in the consent ledger and the customers it can address."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accord.core.clock import parse_instant


@dataclass(frozen=True)
class BannerDecision:
    """One answer to the cookie banner, as the visitor's browser posted it."""

    anonymous_id: str
    user_id: str | None
    at: datetime
    country: str
    purposes: dict[str, bool]
    ip: str | None
    user_agent: str | None


@dataclass
class Customer:
    """A visitor who signed in: who they are, the devices they used and what they bought."""

    user_id: str
    email: str
    name: str
    country: str
    anonymous_ids: list[str] = field(default_factory=list)
    ip: str | None = None
    orders: int = 0


@dataclass
class Seen:
    decisions: list[BannerDecision] = field(default_factory=list)
    customers: dict[str, Customer] = field(default_factory=dict)

    def watch(self, events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The events unchanged, noting what the demo needs from them on the way."""
        for event in events:
            self._note(event)
            yield event

    def _note(self, event: dict[str, Any]) -> None:
        kind, user_id = event.get("type"), event.get("userId")
        context: dict[str, Any] = event.get("context") or {}
        if kind == "track" and event.get("event") == "Consent Updated":
            locale = str(context.get("locale") or "")
            self.decisions.append(
                BannerDecision(
                    anonymous_id=str(event["anonymousId"]),
                    user_id=user_id,
                    at=parse_instant(str(event["timestamp"])),
                    country=locale.rsplit("-", 1)[-1].upper(),
                    purposes=dict(event["properties"]["purposes"]),
                    ip=context.get("ip"),
                    user_agent=context.get("userAgent"),
                )
            )
        elif kind == "identify" and user_id:
            traits = event.get("traits") or {}
            customer = self.customers.get(user_id)
            if customer is None and traits.get("email"):
                customer = self.customers[user_id] = Customer(
                    user_id=user_id,
                    email=str(traits["email"]),
                    name=f"{traits.get('first_name', '')} {traits.get('last_name', '')}".strip(),
                    country=str(traits.get("country") or ""),
                    ip=context.get("ip"),
                )
            anonymous_id = event.get("anonymousId")
            if customer is not None and anonymous_id and anonymous_id not in customer.anonymous_ids:
                customer.anonymous_ids.append(anonymous_id)
        elif kind == "track" and event.get("event") == "Order Completed" and user_id:
            customer = self.customers.get(user_id)
            if customer is not None:
                customer.orders += 1
