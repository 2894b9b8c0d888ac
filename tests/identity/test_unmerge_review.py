"""Undoing a bad merge, and the review queue for merges beyond the size limit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.core.errors import Conflict
from accord.core.settings import Settings
from accord.identity import service
from accord.identity.models import identity_edges
from accord.store.db import Store
from tests.identity.helpers import assert_conserved, ev, groups, linked_events, process, profile_of


def _edge_id(store: Store, business_id: str, a: str, b: str) -> int:
    (ak, av), (bk, bv) = sorted([tuple(a.split(":", 1)), tuple(b.split(":", 1))])
    with store.read() as conn:
        return int(
            conn.execute(
                select(identity_edges.c.id).where(
                    identity_edges.c.business_id == business_id,
                    identity_edges.c.a_kind == ak,
                    identity_edges.c.a_value == av,
                    identity_edges.c.b_kind == bk,
                    identity_edges.c.b_value == bv,
                )
            ).scalar_one()
        )


def test_unmerge_after_a_bad_merge(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    events = [
        ev(
            "identify",
            1,
            anonymousId="ann-phone",
            traits={"email": "ann@example.org", "city": "Oslo"},
        ),
        ev(minute=2, anonymousId="ann-phone", event="Order Completed", properties={"revenue": 30}),
        ev(
            "identify", 3, anonymousId="bob-pc", traits={"email": "bob@example.org", "city": "Rome"}
        ),
        ev(minute=4, anonymousId="bob-pc", event="Order Completed", properties={"revenue": 12.5}),
        # A browser's autofill put Bob's address in a form on Ann's phone.
        ev("identify", 5, anonymousId="ann-phone", traits={"email": "bob@example.org"}),
    ]
    process(store, keys, lake, events)
    merged = frozenset(
        {
            "anonymous_id:ann-phone",
            "email:ann@example.org",
            "anonymous_id:bob-pc",
            "email:bob@example.org",
        }
    )
    assert groups(store, biz) == {merged}
    survivor = profile_of(store, biz, "email:ann@example.org")
    with store.read() as conn:
        history = service.merge_history(conn, business_id=biz, profile_id=survivor)
    assert [(m.action, m.evidence["message_id"]) for m in history] == [
        ("merge", events[4]["messageId"])
    ]

    bad = _edge_id(store, biz, "anonymous_id:ann-phone", "email:bob@example.org")
    with store.write() as conn:
        report = service.unmerge(conn, business_id=biz, edge_id=bad, reason="autofill")
    assert len(report.profiles) == 2
    assert groups(store, biz) == {
        frozenset({"anonymous_id:ann-phone", "email:ann@example.org"}),
        frozenset({"anonymous_id:bob-pc", "email:bob@example.org"}),
    }
    linked = linked_events(store, biz)
    ann = profile_of(store, biz, "email:ann@example.org")
    bob = profile_of(store, biz, "email:bob@example.org")
    # The autofilled identify names Bob's email, the more trusted identifier: it is Bob's.
    assert [e["messageId"] for e in linked[ann]] == [e["messageId"] for e in events[:2]]
    assert len(linked[bob]) == 3
    assert_conserved(store, biz, events)
    with store.read() as conn:
        assert service.merge_history(conn, business_id=biz, profile_id=ann)[-1].action == "split"

    # The same pair seen again is not linked again.
    again = ev("identify", 6, anonymousId="ann-phone", traits={"email": "bob@example.org"})
    process(store, keys, lake, [again])
    assert len(groups(store, biz)) == 2
    assert_conserved(store, biz, [*events, again])
    with store.write() as conn, pytest.raises(Conflict):
        service.unmerge(conn, business_id=biz, edge_id=bad, reason=None)


def test_big_merges_wait_for_review(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    with store.write() as conn:
        service.set_rules(conn, business_id=biz, rules={"max_component_identifiers": 3})
    events = [
        ev("identify", 1, anonymousId="a1", traits={"email": "x@example.org", "plan": "free"}),
        ev("identify", 2, anonymousId="a2", traits={"phone": "+33 6 12 34 56 78", "plan": "pro"}),
        ev(minute=3, anonymousId="a3", userId="u3"),
        # Would make one profile of 5 identifiers: a1, x@, a2, phone, and the link itself.
        ev("identify", 4, anonymousId="a1", traits={"phone": "+33612345678"}),
    ]
    process(store, keys, lake, events)
    assert len(groups(store, biz)) == 3
    with store.read() as conn:
        (review,) = service.list_reviews(conn, business_id=biz)
        diff = service.review_diff(conn, business_id=biz, review_id=review.id)
    assert {(i.kind, i.value) for i in review.identifiers} == {
        ("phone", "+33612345678"),
        ("anonymous_id", "a1"),
    }
    assert diff.guardrail_violations == []
    assert len(diff.profiles_merged) == 1
    # Each trait one of the two profiles would see change, with its value after.
    assert {c.trait: c.after for c in diff.traits_changed} == {
        "email": "x@example.org",
        "phone": "+33612345678",
        "plan": "pro",
    }
    # The dry run changed nothing.
    assert len(groups(store, biz)) == 3

    with store.write() as conn:
        service.accept_review(
            conn, business_id=biz, review_id=review.id, note="ok", lock_rows=False
        )
    assert frozenset(
        {"anonymous_id:a1", "email:x@example.org", "anonymous_id:a2", "phone:+33612345678"}
    ) in groups(store, biz)
    assert_conserved(store, biz, events)
    with store.write() as conn, pytest.raises(Conflict):
        service.reject_review(conn, business_id=biz, review_id=review.id, note=None)


def test_review_never_joins_two_user_ids(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    with store.write() as conn:
        service.set_rules(conn, business_id=biz, rules={"max_component_identifiers": 3})
    process(
        store,
        keys,
        lake,
        [
            ev("identify", 1, anonymousId="a1", traits={"email": "x@example.org"}),
            ev("identify", 2, anonymousId="a2", traits={"email": "y@example.org"}),
            ev("identify", 3, anonymousId="a1", traits={"email": "y@example.org"}),
            # While the proposal waits, each side logs in with its own account.
            ev(minute=4, anonymousId="a1", userId="u1"),
            ev(minute=5, anonymousId="a2", userId="u2"),
        ],
    )
    with store.read() as conn:
        (review,) = service.list_reviews(conn, business_id=biz)
        diff = service.review_diff(conn, business_id=biz, review_id=review.id)
    assert diff.guardrail_violations == ["would join profiles with different user_id values"]
    with store.write() as conn, pytest.raises(Conflict):
        service.accept_review(
            conn, business_id=biz, review_id=review.id, note=None, lock_rows=False
        )
    with store.write() as conn:
        service.reject_review(conn, business_id=biz, review_id=review.id, note="two people")
    assert groups(store, biz) == {
        frozenset({"user_id:u1", "anonymous_id:a1", "email:x@example.org"}),
        frozenset({"user_id:u2", "anonymous_id:a2", "email:y@example.org"}),
    }
    with store.read() as conn:
        assert service.list_reviews(conn, business_id=biz) == []
        (rejected,) = service.list_reviews(conn, business_id=biz, status="rejected")
    assert rejected.decision_note == "two people"
