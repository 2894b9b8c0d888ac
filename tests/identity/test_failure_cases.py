"""The classic ways identity resolution goes wrong, each ending as docs/identity.md says."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.identity.service import set_rules
from accord.store.db import Store
from tests.identity.helpers import (
    assert_conserved,
    ev,
    groups,
    linked_events,
    process,
    profile_of,
)


@dataclass
class Case:
    name: str
    events: list[dict[str, Any]]
    profiles: set[frozenset[str]]
    # Events each profile ends with, keyed by one of its identifiers.
    event_counts: dict[str, int] = field(default_factory=dict)
    unlinked: int = 0
    rules: dict[str, Any] = field(default_factory=dict)


def device(device_id: str) -> dict[str, Any]:
    return {"device": {"id": device_id}}


CASES = [
    Case(
        # Mother and child share a tablet: its browser's anonymous id and device id
        # stay with whoever logged in first; the child's own identifiers do not join.
        name="shared family tablet",
        events=[
            ev(minute=1, anonymousId="tab-anon", context=device("tablet-1")),
            ev(
                "identify",
                2,
                userId="mum",
                anonymousId="tab-anon",
                context=device("tablet-1"),
                traits={"email": "mum@example.org"},
            ),
            ev(
                "identify",
                3,
                userId="kid",
                anonymousId="tab-anon",
                context=device("tablet-1"),
                traits={"email": "kid@example.org"},
            ),
            ev(minute=4, anonymousId="tab-anon", context=device("tablet-1")),
            ev(
                minute=5,
                userId="kid",
                anonymousId="tab-anon",
                event="Product Viewed",
                properties={"product_id": "p1"},
            ),
        ],
        profiles={
            frozenset(
                {
                    "user_id:mum",
                    "anonymous_id:tab-anon",
                    "device_id:tablet-1",
                    "email:mum@example.org",
                }
            ),
            frozenset({"user_id:kid", "email:kid@example.org"}),
        },
        event_counts={"user_id:mum": 3, "user_id:kid": 2},
    ),
    Case(
        # An agent typed the shop's support address on the orders of three customers.
        name="support agent's email on many orders",
        events=[
            ev("identify", 1, userId=f"c{n}", traits={"email": "Support@Shop.example"})
            for n in range(3)
        ]
        + [
            ev(minute=2, userId=f"c{n}", event="Order Completed", properties={"revenue": 10})
            for n in range(3)
        ],
        profiles={
            frozenset({"user_id:c0", "email:support@shop.example"}),
            frozenset({"user_id:c1"}),
            frozenset({"user_id:c2"}),
        },
        event_counts={"user_id:c0": 2, "user_id:c1": 2, "user_id:c2": 2},
    ),
    Case(
        # The same agent's address, once the business has blocked it: no link at all.
        name="support agent's email, blocked",
        rules={"blocked_values": ["support@shop.example", "null"]},
        events=[
            ev("identify", 1, anonymousId=f"guest-{n}", traits={"email": "support@shop.example"})
            for n in range(3)
        ],
        profiles={frozenset({f"anonymous_id:guest-{n}"}) for n in range(3)},
        event_counts={f"anonymous_id:guest-{n}": 1 for n in range(3)},
    ),
    Case(
        # An app reused the last user's id as the anonymous id of the next login.
        name="user id reused as anonymous id",
        events=[
            ev("identify", 1, userId="42", anonymousId="42"),
            ev("identify", 2, userId="77", anonymousId="42"),
            ev(
                minute=3,
                userId="77",
                anonymousId="42",
                event="Order Completed",
                properties={"revenue": 5},
            ),
        ],
        profiles={
            frozenset({"user_id:42", "anonymous_id:42"}),
            frozenset({"user_id:77"}),
        },
        event_counts={"user_id:42": 1, "user_id:77": 2},
    ),
    Case(
        name="blocked placeholder values",
        events=[
            ev(
                "identify",
                1,
                userId="u1",
                anonymousId="undefined",
                traits={"email": "null", "phone": "0"},
            ),
            ev("identify", 2, userId="u2", anonymousId="undefined", traits={"email": "none"}),
            ev(minute=3, userId="u3", anonymousId="00000000-0000-0000-0000-000000000000"),
            ev(minute=4, userId="u4", anonymousId="[object Object]"),
            ev(minute=5, anonymousId="null"),
            ev(minute=6, userId="NaN", anonymousId=""),
        ],
        profiles={frozenset({f"user_id:u{n}"}) for n in range(1, 5)},
        event_counts={f"user_id:u{n}": 1 for n in range(1, 5)},
        unlinked=2,
    ),
    Case(
        # Two people log in one after the other in one browser.
        name="two accounts on one device",
        events=[
            ev(minute=1, anonymousId="browser", context=device("laptop")),
            ev("identify", 2, userId="ann", anonymousId="browser", context=device("laptop")),
            ev("identify", 3, userId="bob", anonymousId="browser", context=device("laptop")),
            ev(
                minute=4,
                userId="bob",
                anonymousId="browser",
                context=device("laptop"),
                event="Product Added",
                properties={"product_id": "p9"},
            ),
        ],
        profiles={
            frozenset({"user_id:ann", "anonymous_id:browser", "device_id:laptop"}),
            frozenset({"user_id:bob"}),
        },
        event_counts={"user_id:ann": 2, "user_id:bob": 2},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_case(case: Case, store: Store, keys: Bootstrap, settings: Settings) -> None:
    if case.rules:
        with store.write() as conn:
            set_rules(conn, business_id=keys.business_id, rules=case.rules)
    process(store, keys, settings.resolved_lake_url(), case.events)
    assert groups(store, keys.business_id) == case.profiles
    linked = linked_events(store, keys.business_id)
    for key, count in case.event_counts.items():
        assert len(linked[profile_of(store, keys.business_id, key)]) == count, key
    assert sum(len(v) for v in linked.values()) == len(case.events) - case.unlinked
    assert_conserved(store, keys.business_id, case.events)
