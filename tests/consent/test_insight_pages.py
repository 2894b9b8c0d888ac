"""The consent insight pages: opt-in rates with KPIs and a date range, the banner A/B test's
verdict, the proof look-up (an email from a lead form, an email the identity graph knows,
a user id), the ledger's check, permissions and bad input."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from accord.accounts import people, team
from accord.accounts.models import Actor, Bootstrap, InvitationIn
from accord.accounts.service import Access, memberships, utcnow
from accord.consent import config, service
from accord.consent.models import NoticeIn, PropertyIn, consent_records
from accord.core.settings import Settings
from accord.core.signing import Signer
from accord.leads import confirmation, forms, submissions
from accord.leads.models import FormIn
from accord.leads.validation import CleanSubmission
from accord.process.email import default_wiring
from accord.process.worker import drain
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE

DAY1 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
VISITORS = 40
SYSTEM = Actor(kind="system", label="insight tests")


def html(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/html"}


@dataclass(frozen=True)
class Seeded:
    decisions: int
    reject_all: int
    on_third_day: int


def seed_decisions(store: Store, business_id: str) -> Seeded:
    """A property whose version 2 tests variants A and B: 40 visitors each, a quarter of
    A's and three quarters of B's grant marketing; every other one grants statistics."""
    reject_all = on_third_day = 0
    with store.write() as conn:
        config.create_property(
            conn, business_id=business_id, spec=PropertyIn(key="shop-web", name="Shop")
        )
        config.publish_notice(
            conn,
            business_id=business_id,
            property_key="shop-web",
            spec=NoticeIn.model_validate(
                {
                    "variants": [
                        {"variant": "A", "texts": {"en": {"title": "Cookies?"}}},
                        {"variant": "B", "texts": {"en": {"title": "Your privacy"}}},
                    ]
                }
            ),
        )
        prop = config.get_property(conn, business_id=business_id, key="shop-web")
        variants = {v["variant"]: v for v in config.current_variants(conn, property_id=prop["id"])}
        for arm, granting in (("A", VISITORS // 4), ("B", 3 * VISITORS // 4)):
            for i in range(VISITORS):
                marketing, statistics = i < granting, i % 2 == 0
                reject_all += not (marketing or statistics)
                on_third_day += i % 3 == 2
                service.record_consent(
                    conn,
                    business_id=business_id,
                    property_key="shop-web",
                    purposes={"marketing": marketing, "statistics": statistics},
                    source="banner",
                    anonymous_id=f"{arm.lower()}-{i}",
                    notice_id=variants[arm]["id"],
                    recorded_at=DAY1 + timedelta(days=i % 3),
                    country="DE" if i % 2 else "FR",
                    user_agent=IPHONE if i % 4 == 0 else DESKTOP,
                )
        service.record_consent(
            conn,
            business_id=business_id,
            property_key="shop-web",
            purposes={"marketing": True, "statistics": True},
            source="api",
            user_id="user-42",
            recorded_at=DAY1,
        )
    return Seeded(decisions=2 * VISITORS + 1, reject_all=reject_all, on_third_day=on_third_day)


@pytest.fixture
def seeded(store: Store, keys: Bootstrap) -> Seeded:
    return seed_decisions(store, keys.business_id)


def kpi(page: str, label: str) -> str:
    found = re.search(
        r'<span class="value">([^<]+)</span><span class="label">' + re.escape(label), page
    )
    assert found, f"no KPI {label!r}"
    return found.group(1)


def figure(page: str, chart_id: str) -> str:
    """The `<figure>` of one chart (its plotly data and its table)."""
    found = re.search(rf'<figure class="chart" id="{chart_id}">(.*?)</figure>', page, re.S)
    assert found, f"no chart {chart_id!r} with data"
    return found.group(1)


def test_opt_in_page_charts_every_dimension_with_kpis(
    client: TestClient, keys: Bootstrap, seeded: Seeded
) -> None:
    page = client.get("/consent/opt-in", headers=html(keys.admin_token))
    assert page.status_code == 200, page.text
    assert kpi(page.text, "decisions") == str(seeded.decisions)
    # 40 + 1 grants of statistics, 10 + 30 + 1 of marketing, among 162 choices.
    assert kpi(page.text, "opt-in rate overall") == f"{(41 + 41) / 162 * 100:.1f} %"
    assert kpi(page.text, "reject-all") == f"{seeded.reject_all / seeded.decisions * 100:.1f} %"
    for chart_id in ("by-purpose", "by-day", "by-country", "by-device", "by-notice-version"):
        assert "data-chart=" in figure(page.text, chart_id)
    purposes = figure(page.text, "by-purpose")
    # marketing: 41 of 81; statistics: 41 of 81, in the chart's table.
    assert re.search(r"<th scope=\"row\">marketing</th><td>50\.6 %</td>", purposes)
    days = figure(page.text, "by-day")
    assert all(f"2026-11-0{d}" in days for d in (2, 3, 4))
    assert "mobile" in figure(page.text, "by-device")
    assert "DE" in figure(page.text, "by-country") and "FR" in figure(page.text, "by-country")


def test_the_date_range_and_the_property_narrow_the_numbers(
    client: TestClient, keys: Bootstrap, seeded: Seeded
) -> None:
    page = client.get(
        "/consent/opt-in?start=2026-11-04&end=2026-11-30&property=shop-web",
        headers=html(keys.admin_token),
    )
    assert page.status_code == 200
    assert kpi(page.text, "decisions") == str(seeded.on_third_day)
    days = figure(page.text, "by-day")
    assert "2026-11-04" in days and "2026-11-02" not in days
    assert 'value="2026-11-04"' in page.text  # the range is kept in the form


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("start=2026-13-01", "start", "is not a date"),
        ("end=yesterday", "end", "is not a date"),
        ("start=2026-11-05&end=2026-11-01", "end", "is before the start"),
        ("property=nowhere", "property", "unknown property"),
    ],
)
def test_bad_filters_answer_400_next_to_the_field(
    client: TestClient, keys: Bootstrap, seeded: Seeded, query: str, field: str, reason: str
) -> None:
    page = client.get(f"/consent/opt-in?{query}", headers=html(keys.admin_token))
    assert page.status_code == 400
    found = re.search(rf'<span class="error-text" id="e-{field}"[^>]*>([^<]+)</span>', page.text)
    assert found and reason in found.group(1)
    assert 'id="kpis"' not in page.text


def test_ab_page_names_the_winner_with_its_interval(
    client: TestClient, keys: Bootstrap, seeded: Seeded
) -> None:
    page = client.get("/consent/abtests?property=shop-web", headers=html(keys.admin_token))
    assert page.status_code == 200, page.text
    assert "Winner: variant B" in page.text
    arms = re.search(r'<table id="arms">(.*?)</table>', page.text, re.S)
    assert arms
    assert "<td>25.0 %</td>" in arms.group(1) and "<td>75.0 %</td>" in arms.group(1)
    assert "+50.0 pts" in arms.group(1) and " to " in arms.group(1)
    assert re.search(r"<td>0\.0\d{3}</td>", arms.group(1))  # the p-value
    assert "data-chart=" in figure(page.text, "abtest-rates")


def test_ab_page_says_keep_running_with_the_sample_needed(
    client: TestClient, keys: Bootstrap, seeded: Seeded
) -> None:
    # Statistics: half of each arm granted it, no difference at all.
    page = client.get(
        "/consent/abtests?property=shop-web&purpose=statistics&version=2",
        headers=html(keys.admin_token),
    )
    assert page.status_code == 200
    assert "Keep running" in page.text and "Winner" not in page.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("property=nowhere", "property"),
        ("property=shop-web&version=7", "version"),
        ("property=shop-web&version=x", "version"),
        ("property=shop-web&purpose=nothing", "purpose"),
    ],
)
def test_ab_page_refuses_what_does_not_exist(
    client: TestClient, keys: Bootstrap, seeded: Seeded, query: str, field: str
) -> None:
    page = client.get(f"/consent/abtests?{query}", headers=html(keys.admin_token))
    assert page.status_code == 400
    assert f'id="e-{field}"' in page.text and 'id="verdict"' not in page.text


def _lead_confirmed(store: Store, business_id: str) -> None:
    """Ada gives her email on a form with anonymousId anon-ada and confirms it: the ledger
    records her consent under anon-ada, not under the address."""
    spec = FormIn.model_validate(
        {
            "slug": "news",
            "title": {"en": "News"},
            "fields": [{"key": "email", "kind": "email"}],
            "consents": [{"purpose": "marketing", "label": {"en": "Email me"}}],
            "privacy_policy_url": "https://shop.example/privacy",
            "from_address": "hello@shop.example",
        }
    )
    with store.write() as conn:
        form = forms.create_form(conn, business_id=business_id, data=spec)
        done = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="ada@people.example", purposes=["marketing"]),
            anonymous_id="anon-ada",
            ip="198.51.100.4",
            user_agent=DESKTOP,
        )
        confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip="198.51.100.9",
            wiring=default_wiring(),
            signer=Signer("s" * 32),
        )


def test_proof_lookup_by_a_lead_form_email_finds_the_proof(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    _lead_confirmed(store, keys.business_id)
    page = client.get(
        "/consent/proofs?q=" + quote(" Ada@People.example "), headers=html(keys.admin_token)
    )
    assert page.status_code == 200, page.text
    row = re.search(r'<tr data-subject="anon-ada">(.*?)</tr>', page.text, re.S)
    assert row and "form email ada@people.example" in row.group(1)
    assert "marketing: <strong>granted</strong>" in row.group(1)
    assert "data-chart=" in figure(page.text, "choices")
    proof = client.get("/consent/proof?subject=anon-ada", headers=html(keys.admin_token))
    assert proof.status_code == 200
    assert "Proof of consent" in proof.text and "anon-ada" in proof.text
    assert "hash chain was verified when this page was made" in proof.text
    assert "form" in proof.text and "marketing: yes" in proof.text


def test_proof_lookup_follows_the_identity_graph_and_user_ids(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings, seeded: Seeded
) -> None:
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    identify = {
        "type": "identify",
        "anonymousId": "a-2",  # granted statistics, the purpose identify calls need
        "traits": {"email": "grace@people.example", "phone": "+33 6 12 34 56 78"},
    }
    sent = client.post("/v1/identify", headers={"Authorization": auth}, json=identify)
    assert sent.status_code == 200, sent.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))
    for typed in ("GRACE@people.example", "+33 612 345 678"):
        page = client.get("/consent/proofs?q=" + quote(typed), headers=html(keys.admin_token))
        row = re.search(r'<tr data-subject="a-2">(.*?)</tr>', page.text, re.S)
        assert row and "anonymous_id of profile" in row.group(1), typed
    page = client.get("/consent/proofs?q=user-42", headers=html(keys.admin_token))
    assert '<tr data-subject="user-42">' in page.text
    nothing = client.get("/consent/proofs?q=nobody@people.example", headers=html(keys.admin_token))
    assert nothing.status_code == 200 and "No consent decision is recorded" in nothing.text
    empty = client.get("/consent/proofs?q=+", headers=html(keys.admin_token))
    assert empty.status_code == 400 and 'id="e-q"' in empty.text
    missing = client.get("/consent/proof?subject=nobody", headers=html(keys.admin_token))
    assert missing.status_code == 404


def test_ledger_page_shows_the_check_and_when_it_ran(
    client: TestClient, keys: Bootstrap, store: Store, seeded: Seeded
) -> None:
    before = utcnow().replace(microsecond=0)
    page = client.get("/consent/ledger", headers=html(keys.admin_token))
    assert page.status_code == 200
    assert "<strong>Verified</strong>" in page.text
    assert kpi(page.text, "records in the chain") == str(seeded.decisions)
    checked = re.search(r'<time datetime="([^"]+)">', page.text)
    assert checked and datetime.fromisoformat(checked.group(1)) >= before
    assert "data-chart=" in figure(page.text, "ledger-per-day")
    with store.write() as conn:  # someone edits a record behind Accord's back
        conn.execute(
            update(consent_records)
            .where(consent_records.c.position == 5)
            .values(purposes='{"marketing": true}')
        )
    page = client.get("/consent/ledger", headers=html(keys.admin_token))
    assert "<strong>FAILED</strong> at record 5" in page.text and "altered" in page.text


def _employee(store: Store, business_id: str) -> str:
    """A signed-in employee of the business with no task: no consent permission."""
    with store.write() as conn:
        owner = people.sign_up(conn, email="owner@shop.test", name="Owner", password="p" * 12)
        conn.execute(
            memberships.insert().values(
                business_id=business_id, person_id=owner.id, role="admin", created_at=utcnow()
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
        return people.start_session(conn, person_id=employee.id, stage="full", ip=None, hours=1)


def test_an_employee_without_consent_permission_sees_none_of_it(
    client: TestClient, keys: Bootstrap, store: Store, seeded: Seeded
) -> None:
    session = _employee(store, keys.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    headers = {"Accept": "text/html"}
    for path in (
        "/consent/opt-in",
        "/consent/abtests",
        "/consent/scans",
        "/consent/proofs?q=user-42",
        "/consent/proof?subject=user-42",
        "/consent/ledger",
    ):
        page = client.get(path, headers=headers)
        assert page.status_code in (403, 404), path
        assert "user-42" not in page.text and "shop-web" not in page.text
    home = client.get("/", headers=headers)
    assert 'href="/consent/opt-in"' not in home.text
    posted = client.post(
        "/consent/scans",
        data={"property": "shop-web", "url": "https://shop.example/", "pages": "1"},
        headers=headers,
    )
    assert posted.status_code in (403, 404)
    client.cookies.clear()
    scans = client.get("/consent/scans", headers=html(keys.admin_token))
    assert "No scans yet." in scans.text


def test_the_consent_section_lists_the_insight_pages(
    client: TestClient, keys: Bootstrap, seeded: Seeded
) -> None:
    page = client.get("/consent/ledger", headers=html(keys.admin_token))
    nav = re.search(r'<nav id="sidenav".*?</nav>', page.text, re.S)
    assert nav
    for path in (
        "/consent/opt-in",
        "/consent/abtests",
        "/consent/scans",
        "/consent/proofs",
        "/consent/ledger",
    ):
        assert f'href="{path}"' in nav.group(0), path


def test_pages_without_any_decision_say_so(client: TestClient, keys: Bootstrap) -> None:
    opt_in = client.get("/consent/opt-in", headers=html(keys.admin_token))
    assert opt_in.status_code == 200 and "No data yet." in opt_in.text
    assert kpi(opt_in.text, "decisions") == "0"
    abtests = client.get("/consent/abtests", headers=html(keys.admin_token))
    assert abtests.status_code == 200 and "No consent property yet" in abtests.text
    ledger = client.get("/consent/ledger", headers=html(keys.admin_token))
    assert ledger.status_code == 200 and "<strong>Verified</strong>" in ledger.text
