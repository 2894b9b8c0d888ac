"""The profile pages: the directory's searches and charts, the 360° page with its filtered
timeline, export and erasure with confirmation, permissions and other businesses."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accord.accounts import people, service, team, tokens
from accord.accounts.models import Actor, Bootstrap, InvitationIn
from accord.accounts.service import Access, bootstrap
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.profiles.models import profile_events, profiles
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.messaging.helpers import grant

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


SYSTEM = Actor(kind="system", label="test")


def html(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/html"}


def collect(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> None:
    """Zoe (known: user id, email, phone; an order and page views) and an anonymous visitor."""
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    batch = [
        {
            "type": "identify",
            "userId": "u-7",
            "anonymousId": "anon-7",
            "traits": {"email": "Zoe@Example.org", "phone": "+33 6 12 34 56 78", "plan": "Pro"},
            "timestamp": "2026-11-20T09:00:00Z",
        },
        {
            "type": "track",
            "userId": "u-7",
            "event": "Order Completed",
            "properties": {"revenue": 42},
            "timestamp": "2026-11-21T10:00:00Z",
        },
        {
            "type": "page",
            "anonymousId": "anon-7",
            "name": "Pricing",
            "timestamp": "2026-11-21T11:00:00Z",
        },
        {
            "type": "track",
            "anonymousId": "anon-x",
            "event": "Product Viewed",
            "timestamp": "2026-11-22T10:00:00Z",
        },
    ]
    response = client.post("/v1/batch", headers={"Authorization": auth}, json={"batch": batch})
    assert response.status_code == 200, response.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


@pytest.fixture
def shop(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> Bootstrap:
    collect(client, keys, store, settings)
    return keys


def zoe(client: TestClient, keys: Bootstrap) -> str:
    found = client.get(
        "/api/profiles?email=zoe@example.org",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
    )
    assert found.status_code == 200, found.text
    return str(found.json()["id"])


def listed(text: str) -> list[str]:
    return re.findall(r'<tr data-profile="(prof_[0-9a-z]+)">', text)


def test_the_directory_lists_recent_profiles_with_both_charts(
    client: TestClient, shop: Bootstrap
) -> None:
    page = client.get("/profiles", headers=html(shop.admin_token))
    assert page.status_code == 200, page.text
    assert len(listed(page.text)) == 2
    assert '<span class="value" id="kpi-known">1</span>' in page.text
    assert '<span class="value" id="kpi-anonymous">1</span>' in page.text
    assert 'id="chart-known"' in page.text and 'id="chart-new"' in page.text
    # Each chart carries its numbers as a table: one new profile on each of the two days.
    new_chart = page.text[page.text.index('id="chart-new"') :]
    assert '<th scope="row">2026-11-20</th><td>1</td>' in new_chart
    assert '<th scope="row">2026-11-22</th><td>1</td>' in new_chart
    assert '<a href="/profiles" aria-current="page">Profiles</a>' in page.text


@pytest.mark.parametrize(
    "query",
    [
        "q=ZOE@example.org",
        "q=u-7",
        "q=anon-7",
        "q=%2B33612345678",
        "q=%2B33+6+12+34+56+78&kind=phone",
        "trait=plan&value=pro",
    ],
)
def test_search_finds_zoe_by_any_identifier_or_trait(
    client: TestClient, shop: Bootstrap, query: str
) -> None:
    page = client.get(f"/profiles?{query}", headers=html(shop.admin_token))
    assert page.status_code == 200, page.text
    assert listed(page.text) == [zoe(client, shop)]
    assert '<span class="badge ok">known</span>' in page.text


def test_a_search_matching_nobody_says_so(client: TestClient, shop: Bootstrap) -> None:
    page = client.get("/profiles?q=nobody@example.org", headers=html(shop.admin_token))
    assert page.status_code == 200
    assert listed(page.text) == [] and 'id="no-profiles"' in page.text
    trait = client.get("/profiles?trait=plan&value=free", headers=html(shop.admin_token))
    assert listed(trait.text) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=x&kind=shoe_size", "kind"),
        ("trait=plan", "value"),
        ('trait=a"b&value=1', "trait"),
        ("page=0", "page"),
        ("page=abc", "page"),
    ],
)
def test_bad_searches_are_400_pages_naming_the_field(
    client: TestClient, shop: Bootstrap, query: str, field: str
) -> None:
    page = client.get(f"/profiles?{query}", headers=html(shop.admin_token))
    assert page.status_code == 400, page.text
    assert f'id="e-{field}"' in page.text
    assert "text/html" in page.headers["content-type"]


def test_pages_of_recent_profiles(
    client: TestClient, shop: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.profiles.pages import directory

    monkeypatch.setattr(directory, "PAGE_SIZE", 1)
    first = client.get("/profiles", headers=html(shop.admin_token))
    second = client.get("/profiles?page=2", headers=html(shop.admin_token))
    assert 'rel="next"' in first.text and 'rel="next"' not in second.text
    assert len(listed(first.text)) == len(listed(second.text)) == 1
    assert set(listed(first.text)) != set(listed(second.text))


def test_the_360_page_shows_traits_consent_identity_and_timeline(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    grant(store, shop.business_id, {"anon-7": {"marketing": True, "analytics": False}})
    pid = zoe(client, shop)
    page = client.get(f"/profiles/{pid}", headers=html(shop.admin_token))
    assert page.status_code == 200, page.text
    text = page.text
    assert '<tr data-trait="plan"><th scope="row">plan</th><td>Pro</td>' in text
    assert '<span class="value" id="kpi-events">3</span>' in text
    assert re.search(
        r'data-purpose="marketing">.*?<span class="badge ok">granted</span>', text, re.S
    )
    assert re.search(
        r'data-purpose="analytics">.*?<span class="badge warn">refused</span>', text, re.S
    )
    assert "<td>phone</td><td>+33612345678</td>" in text
    assert text.count("<tr data-edge=") >= 2
    assert 'href="/profiles/' + pid + '/erase"' in text
    # The timeline, newest first, and the charts of this person's events.
    assert re.findall(r"<td>(track|page|identify)</td><td>([^<]*)</td>", text) == [
        ("page", "Pricing"),
        ("track", "Order Completed"),
        ("identify", ""),
    ]
    assert 'id="chart-events"' in text and 'id="chart-event-names"' in text
    events_chart = text[text.index('id="chart-events"') :]
    assert '<th scope="row">2026-11-21</th><td>2</td>' in events_chart


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("type=track", [("track", "Order Completed")]),
        ("name=Pricing", [("page", "Pricing")]),
        ("since=2026-11-21&until=2026-11-21", [("page", "Pricing"), ("track", "Order Completed")]),
        ("until=2026-11-20", [("identify", "")]),
        ("type=identify&since=2026-11-21", []),
    ],
)
def test_the_timeline_filters(
    client: TestClient, shop: Bootstrap, query: str, expected: list[tuple[str, str]]
) -> None:
    page = client.get(f"/profiles/{zoe(client, shop)}?{query}", headers=html(shop.admin_token))
    assert page.status_code == 200, page.text
    assert re.findall(r"<td>(track|page|identify)</td><td>([^<]*)</td>", page.text) == expected
    # What was typed stays in the form.
    for part in query.split("&"):
        name, value = part.split("=")
        assert (
            f'name="{name}" value="{value}"' in page.text
            or f'value="{value}" selected' in page.text
        )


def test_the_timeline_pages(
    client: TestClient, shop: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.profiles.pages import person

    monkeypatch.setattr(person, "TIMELINE_PAGE", 2)
    pid = zoe(client, shop)
    first = client.get(f"/profiles/{pid}", headers=html(shop.admin_token)).text
    second = client.get(f"/profiles/{pid}?page=2", headers=html(shop.admin_token)).text
    rows = r"<td>(track|page|identify)</td>"
    assert re.findall(rows, first) == ["page", "track"] and 'rel="next"' in first
    assert re.findall(rows, second) == ["identify"] and 'rel="next"' not in second


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=21/11/2026", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-11-22&until=2026-11-21", "until"),
        ("type=purchase", "type"),
        ("page=-1", "page"),
    ],
)
def test_a_bad_timeline_filter_is_a_400_page_naming_the_field(
    client: TestClient, shop: Bootstrap, query: str, field: str
) -> None:
    page = client.get(f"/profiles/{zoe(client, shop)}?{query}", headers=html(shop.admin_token))
    assert page.status_code == 400, page.text
    assert f'id="e-{field}"' in page.text and 'id="timeline-problems"' in page.text
    # The rest of the page is still there.
    assert '<tr data-trait="plan">' in page.text


def test_unknown_profiles_and_other_businesses_get_404_pages(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    pid = zoe(client, shop)
    other = bootstrap(store, name="Someone Else")
    for path in (f"/profiles/{pid}", f"/profiles/{pid}/erase", f"/profiles/{pid}/export.json"):
        response = client.get(path, headers=html(other.admin_token))
        assert response.status_code == 404, (path, response.status_code)
        assert "Zoe" not in response.text and "u-7" not in response.text
    missing = client.get("/profiles/prof_nobody", headers=html(shop.admin_token))
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    erased = client.post(
        f"/profiles/{pid}/erase",
        data={"confirm": pid},
        headers=html(other.admin_token),
        follow_redirects=False,
    )
    assert erased.status_code == 404
    assert profile_count(store, shop.business_id) == 2


def test_export_downloads_everything_held(client: TestClient, shop: Bootstrap) -> None:
    pid = zoe(client, shop)
    response = client.get(f"/profiles/{pid}/export.json", headers=html(shop.admin_token))
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith(f'attachment; filename="{pid}.json"')
    body = orjson.loads(response.content)
    assert body["profile"]["id"] == pid and len(body["events"]) == 3


def profile_count(store: Store, business_id: str) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(profiles)
                .where(profiles.c.business_id == business_id)
            ).scalar_one()
        )


def event_count(store: Store, business_id: str) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(profile_events)
                .where(profile_events.c.business_id == business_id)
            ).scalar_one()
        )


def test_erase_needs_the_profile_id_typed_again(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    pid = zoe(client, shop)
    form = client.get(f"/profiles/{pid}/erase", headers=html(shop.admin_token))
    assert form.status_code == 200 and 'name="confirm"' in form.text
    wrong = client.post(
        f"/profiles/{pid}/erase", data={"confirm": "prof_wrong"}, headers=html(shop.admin_token)
    )
    assert wrong.status_code == 400
    assert 'id="e-confirm"' in wrong.text and 'value="prof_wrong"' in wrong.text
    assert profile_count(store, shop.business_id) == 2

    done = client.post(
        f"/profiles/{pid}/erase",
        data={"confirm": pid},
        headers=html(shop.admin_token),
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/profiles?notice=")
    after = client.get(done.headers["location"], headers=html(shop.admin_token))
    assert f"Profile {pid} erased: 4 identifiers, 3 events" in after.text
    assert profile_count(store, shop.business_id) == 1
    assert event_count(store, shop.business_id) == 1
    assert client.get(f"/profiles/{pid}", headers=html(shop.admin_token)).status_code == 404
    gone = client.get("/profiles?q=zoe@example.org", headers=html(shop.admin_token))
    assert listed(gone.text) == []


def employee_session(store: Store, business_id: str) -> tuple[str, str]:
    """A signed-in employee of the business with no asset, hence no profile permission."""
    with store.write() as conn:
        owner = people.sign_up(conn, email="owner@shop.test", name="Owner", password="p" * 12)
        conn.execute(
            service.memberships.insert().values(
                business_id=business_id,
                person_id=owner.id,
                role="admin",
                created_at=service.utcnow(),
            )
        )
        employee = people.sign_up(conn, email="emp@shop.test", name="Emp", password="p" * 12)
        invite = team.invite(
            conn,
            business_id=business_id,
            data=InvitationIn(email=employee.email, role="employee"),
            invited_by=owner.id,
            days=7,
            by=Access(business_id=business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        team.accept_invitation(conn, token=invite.token, person_id=employee.id, ip=None)
        token = people.start_session(conn, person_id=employee.id, stage="full", ip=None, hours=1)
        session = people.session_for(conn, token=token)
    assert session is not None
    return token, session.csrf_token


def reader_token(store: Store, business_id: str) -> str:
    """An API token that may read profiles and nothing more."""
    with store.write() as conn:
        made = tokens.create_token(
            conn,
            access=service.Access(business_id=business_id, role="admin"),
            name="Reader",
            scope=["profiles.read"],
            actor=SYSTEM,
            ip=None,
        )
    return made.token


def test_without_the_permission_nothing_is_shown_or_changed(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    pid = zoe(client, shop)
    session, csrf = employee_session(store, shop.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    page_headers = {"Accept": "text/html", "x-csrf-token": csrf}
    for path in ("/profiles", f"/profiles/{pid}", f"/profiles/{pid}/export.json"):
        response = client.get(path, headers=page_headers)
        assert response.status_code == 403, (path, response.status_code)
        assert "Zoe" not in response.text
    erased = client.post(
        f"/profiles/{pid}/erase", data={"confirm": pid, "csrf_token": csrf}, headers=page_headers
    )
    assert erased.status_code == 403
    client.cookies.clear()

    # Reading profiles is not enough to export or erase them.
    reader = reader_token(store, shop.business_id)
    page = client.get(f"/profiles/{pid}", headers=html(reader))
    assert page.status_code == 200
    assert "/erase" not in page.text and "Unmerge" not in page.text
    assert client.get(f"/profiles/{pid}/export.json", headers=html(reader)).status_code == 403
    refused = client.post(f"/profiles/{pid}/erase", data={"confirm": pid}, headers=html(reader))
    assert refused.status_code == 403
    assert profile_count(store, shop.business_id) == 2
