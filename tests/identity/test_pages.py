"""The identity pages: unmerge a bad link from a person's page, and the review queue with
its side-by-side candidates, accepted and rejected through the page."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.identity import service
from accord.process.worker import drain
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.identity.helpers import groups, profile_of
from tests.profiles.test_pages import employee_session, html, reader_token

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def send(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings, batch: list[Any]
) -> None:
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    response = client.post("/v1/batch", headers={"Authorization": auth}, json={"batch": batch})
    assert response.status_code == 200, response.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


def at(minute: int) -> str:
    return f"2026-11-10T10:{minute:02d}:00Z"


def bad_merge(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> str:
    """Ann and Bob, joined by an autofilled form on Ann's phone; returns the merged profile."""
    send(
        client,
        keys,
        store,
        settings,
        [
            {
                "type": "identify",
                "anonymousId": "ann-phone",
                "traits": {"email": "ann@example.org", "city": "Oslo"},
                "timestamp": at(1),
            },
            {
                "type": "identify",
                "anonymousId": "bob-pc",
                "traits": {"email": "bob@example.org", "city": "Rome"},
                "timestamp": at(3),
            },
            {
                "type": "identify",
                "anonymousId": "ann-phone",
                "traits": {"email": "bob@example.org"},
                "timestamp": at(5),
            },
        ],
    )
    assert len(groups(store, keys.business_id)) == 1
    return profile_of(store, keys.business_id, "email:ann@example.org")


def bad_edge(text: str) -> str:
    """The unmerge link of the edge that joined Ann's phone to Bob's email."""
    found = re.search(
        r'<tr data-edge="(\d+)"><td>anonymous_id: ann-phone<br>↔ email: bob@example.org</td>', text
    )
    assert found, text
    return found.group(1)


def test_unmerge_from_the_person_page(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    pid = bad_merge(client, keys, store, settings)
    page = client.get(f"/profiles/{pid}", headers=html(keys.admin_token))
    assert page.status_code == 200
    assert '<span class="badge ">merge</span>' in page.text
    edge = bad_edge(page.text)
    link = f"/profiles/{pid}/edges/{edge}/unmerge"
    # The merge history offers the links its event made.
    assert page.text.count(f'href="{link}"') == 2

    form = client.get(link, headers=html(keys.admin_token))
    assert form.status_code == 200 and 'name="confirm"' in form.text
    unconfirmed = client.post(link, data={"reason": "autofill"}, headers=html(keys.admin_token))
    assert unconfirmed.status_code == 400
    assert 'id="e-confirm"' in unconfirmed.text and 'value="autofill"' in unconfirmed.text
    assert len(groups(store, keys.business_id)) == 1

    done = client.post(
        link,
        data={"confirm": "yes", "reason": "autofill"},
        headers=html(keys.admin_token),
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(f"/profiles/{pid}?notice=")
    assert groups(store, keys.business_id) == {
        frozenset({"anonymous_id:ann-phone", "email:ann@example.org"}),
        frozenset({"anonymous_id:bob-pc", "email:bob@example.org"}),
    }
    after = client.get(done.headers["location"], headers=html(keys.admin_token)).text
    assert f"Edge {edge} removed; profiles now: {pid}, prof_" in after
    assert '<span class="badge warn">split</span>' in after
    assert "reason: autofill" in after
    # Unmerging again is refused, with the reason, and changes nothing.
    again = client.post(
        link, data={"confirm": "yes"}, headers=html(keys.admin_token), follow_redirects=True
    )
    assert f"edge {edge} was already removed" in again.text


def test_unmerge_of_an_edge_not_of_the_profile_is_404(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    pid = bad_merge(client, keys, store, settings)
    edge = bad_edge(client.get(f"/profiles/{pid}", headers=html(keys.admin_token)).text)
    for path in (f"/profiles/{pid}/edges/999999/unmerge", f"/profiles/{pid}/edges/abc/unmerge"):
        assert client.get(path, headers=html(keys.admin_token)).status_code == 404
    other = bootstrap(store, name="Someone Else")
    stolen = client.post(
        f"/profiles/{pid}/edges/{edge}/unmerge",
        data={"confirm": "yes"},
        headers=html(other.admin_token),
    )
    assert stolen.status_code == 404
    assert len(groups(store, keys.business_id)) == 1


def propose(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> str:
    """A merge past the size limit waits for review; returns the review id."""
    rules = client.put(
        "/api/identity/rules",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
        json={"max_component_identifiers": 3},
    )
    assert rules.status_code == 200, rules.text
    send(
        client,
        keys,
        store,
        settings,
        [
            {
                "type": "identify",
                "anonymousId": "a1",
                "traits": {"email": "x@example.org", "plan": "free"},
                "timestamp": at(1),
            },
            {
                "type": "identify",
                "anonymousId": "a2",
                "traits": {"phone": "+33 6 12 34 56 78", "plan": "pro"},
                "timestamp": at(2),
            },
            {
                "type": "identify",
                "anonymousId": "a1",
                "traits": {"phone": "+33612345678"},
                "timestamp": at(4),
            },
        ],
    )
    with store.read() as conn:
        (review,) = service.list_reviews(conn, business_id=keys.business_id)
    return review.id


def test_the_review_queue_shows_both_sides_and_accepts(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    review = propose(client, keys, store, settings)
    page = client.get("/identity/reviews", headers=html(keys.admin_token))
    assert page.status_code == 200, page.text
    text = page.text
    assert f'data-review="{review}"' in text
    assert '<span class="value" id="kpi-pending">1</span>' in text and 'id="chart-reviews"' in text
    # Two candidates side by side: each identifier with a mark under the profile holding it.
    section = text[text.index(f'id="review-{review}"') :]
    assert section.count('<th scope="col"><a href="/profiles/prof_') == 2
    rows = dict(
        re.findall(
            r'<tr><th scope="row">([^<]+?)(?: <span[^>]*>[^<]*</span>)?</th>(.*?)</tr>',
            section,
            re.S,
        )
    )
    assert {label: cells.count("✓") for label, cells in rows.items()} == {
        "anonymous_id: a1": 1,
        "anonymous_id: a2": 1,
        "email: x@example.org": 1,
        "phone: +33612345678": 1,
    }
    # Traits of each and after the merge: the newer identify's plan wins.
    plan = re.search(r'<tr data-trait="plan">(.*?)</tr>', section, re.S)
    assert plan
    *before, after = re.findall(r"<td>(?:<strong>)?(\w+)", plan.group(1))
    assert sorted(before) == ["free", "pro"] and after == "pro"
    assert len(groups(store, keys.business_id)) == 2

    done = client.post(
        f"/identity/reviews/{review}/accept",
        data={"note": "same person"},
        headers=html(keys.admin_token),
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert frozenset(
        {"anonymous_id:a1", "email:x@example.org", "anonymous_id:a2", "phone:+33612345678"}
    ) in groups(store, keys.business_id)
    queue = client.get(done.headers["location"], headers=html(keys.admin_token)).text
    assert "Review accepted" in queue and 'id="no-pending"' in queue, queue
    decided = client.get("/identity/reviews?status=accepted", headers=html(keys.admin_token)).text
    assert f'<tr data-review="{review}">' in decided and "same person" in decided
    # A decided review cannot be decided again.
    twice = client.post(
        f"/identity/reviews/{review}/reject", headers=html(keys.admin_token), follow_redirects=True
    )
    assert f"review {review} is already accepted" in twice.text


def test_rejecting_merges_nothing(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    review = propose(client, keys, store, settings)
    done = client.post(
        f"/identity/reviews/{review}/reject",
        data={"note": "two people"},
        headers=html(keys.admin_token),
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert len(groups(store, keys.business_id)) == 2
    with store.read() as conn:
        (rejected,) = service.list_reviews(conn, business_id=keys.business_id, status="rejected")
    assert rejected.decision_note == "two people"


def test_reviews_of_another_business_and_without_permission(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    review = propose(client, keys, store, settings)
    other = bootstrap(store, name="Someone Else")
    theirs = client.get("/identity/reviews", headers=html(other.admin_token))
    assert theirs.status_code == 200 and review not in theirs.text
    for action in ("accept", "reject"):
        response = client.post(
            f"/identity/reviews/{review}/{action}", headers=html(other.admin_token)
        )
        assert response.status_code == 404
    # Reading profiles shows the queue without the buttons, and cannot decide.
    reader = reader_token(store, keys.business_id)
    page = client.get("/identity/reviews", headers=html(reader))
    assert page.status_code == 200 and review in page.text and "/accept" not in page.text
    assert (
        client.post(f"/identity/reviews/{review}/accept", headers=html(reader)).status_code == 403
    )
    # An employee with no asset sees nothing.
    session, csrf = employee_session(store, keys.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    headers = {"Accept": "text/html", "x-csrf-token": csrf}
    assert client.get("/identity/reviews", headers=headers).status_code == 403
    assert client.post(f"/identity/reviews/{review}/accept", headers=headers).status_code == 403
    client.cookies.clear()
    with store.read() as conn:
        assert [r.id for r in service.list_reviews(conn, business_id=keys.business_id)] == [review]
    assert len(groups(store, keys.business_id)) == 2


def test_a_bad_status_is_a_400_page(client: TestClient, keys: Bootstrap) -> None:
    page = client.get("/identity/reviews?status=maybe", headers=html(keys.admin_token))
    assert page.status_code == 400 and "status: one of pending" in page.text
