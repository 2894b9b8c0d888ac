"""The size limit holds however a profile grows: by merges or one identifier at a time."""

from __future__ import annotations

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.identity import service
from accord.store.db import Store
from tests.identity.helpers import assert_conserved, ev, groups, linked_events, process, profile_of


def _cap(store: Store, business_id: str, size: int) -> None:
    with store.write() as conn:
        service.set_rules(conn, business_id=business_id, rules={"max_component_identifiers": size})


def test_one_identifier_at_a_time_stops_at_the_limit(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    _cap(store, biz, 3)
    # One logged-in person from ever new browsers: each event brings one new anonymous id.
    events = [ev(minute=i, userId="u1", anonymousId=f"browser-{i}") for i in range(1, 6)]
    process(store, keys, lake, events, batch=2)

    owner = profile_of(store, biz, "user_id:u1")
    members = next(g for g in groups(store, biz) if "user_id:u1" in g)
    assert members == {"user_id:u1", "anonymous_id:browser-1", "anonymous_id:browser-2"}
    # The later browsers were not attached, so each is nobody's yet; the events still
    # belong to the person through the user id.
    assert len(linked_events(store, biz)[owner]) == 5
    assert len(groups(store, biz)) == 1
    with store.read() as conn:
        (review,) = service.list_reviews(conn, business_id=biz)
    # The first growth past the limit waits for an operator; later ones join it.
    assert review.profile_ids == [owner]
    assert {(i.kind, i.value) for i in review.identifiers} == {
        ("user_id", "u1"),
        ("anonymous_id", "browser-3"),
    }
    assert "more than 3 identifiers" in review.reason
    assert_conserved(store, biz, events)


def test_accepting_the_review_grows_the_profile(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    _cap(store, biz, 2)
    events = [
        ev("identify", 1, userId="u1", traits={"email": "ann@example.org"}),
        ev("identify", 2, userId="u1", traits={"phone": "+33 6 12 34 56 78"}),
    ]
    process(store, keys, lake, events)
    assert groups(store, biz) == {frozenset({"user_id:u1", "email:ann@example.org"})}
    with store.write() as conn:
        (review,) = service.list_reviews(conn, business_id=biz)
        service.accept_review(
            conn, business_id=biz, review_id=review.id, note=None, lock_rows=False
        )
    assert groups(store, biz) == {
        frozenset({"user_id:u1", "email:ann@example.org", "phone:+33612345678"})
    }
    # Once accepted, the same identifiers come back without a new proposal.
    process(store, keys, lake, [ev(minute=3, userId="u1", traits={"phone": "+33612345678"})])
    with store.read() as conn:
        assert service.list_reviews(conn, business_id=biz) == []


def test_a_profile_past_a_lowered_limit_keeps_taking_its_own_events(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    first = ev("identify", 1, userId="u1", anonymousId="a1", traits={"email": "ann@example.org"})
    process(store, keys, lake, [first])
    _cap(store, biz, 2)
    again = ev(minute=2, userId="u1", anonymousId="a1")
    grows = ev(minute=3, userId="u1", anonymousId="a2")
    process(store, keys, lake, [again, grows])
    assert groups(store, biz) == {
        frozenset({"user_id:u1", "anonymous_id:a1", "email:ann@example.org"})
    }
    with store.read() as conn:
        (review,) = service.list_reviews(conn, business_id=biz)
    assert {(i.kind, i.value) for i in review.identifiers} == {
        ("user_id", "u1"),
        ("anonymous_id", "a2"),
    }
    assert len(linked_events(store, biz)[profile_of(store, biz, "user_id:u1")]) == 3
    assert_conserved(store, biz, [first, again, grows])


def test_merges_within_the_limit_need_no_review(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    _cap(store, biz, 3)
    events = [
        ev(minute=1, anonymousId="a1"),
        ev("identify", 2, anonymousId="a1", userId="u1"),
        ev("identify", 3, userId="u1", traits={"email": "ann@example.org"}),
    ]
    process(store, keys, lake, events, batch=1)
    assert groups(store, biz) == {
        frozenset({"anonymous_id:a1", "user_id:u1", "email:ann@example.org"})
    }
    with store.read() as conn:
        assert service.list_reviews(conn, business_id=biz) == []
