"""Campaigns end to end against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta
from email import message_from_string
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, update

from accord.accounts.models import Bootstrap, businesses
from accord.core.clock import utcnow
from accord.core.errors import Conflict, InvalidInput, InvalidLink
from accord.messaging import campaigns, lists, sending, service, templates, tracking
from accord.messaging.bounces import apply_delivery_reports, parse_report_email
from accord.messaging.kpis import ab_decision, campaign_kpis
from accord.messaging.models import (
    AbTestIn,
    CampaignIn,
    ListIn,
    MemberIn,
    TemplateIn,
    email_messages,
)
from accord.reach import service as reach
from accord.store.db import Store
from tests.messaging.helpers import BASE_URL, FakeLedger, grant, mailer_for
from tests.smtp_sink import SmtpSink, body_text

T = TypeVar("T")

HTML = (
    "<html><head><style>p { color: red }</style></head><body>"
    '<p>Hello {{ contact.first_name | default("friend") }}</p>'
    '<a href="https://shop.example/spring?x=1&amp;y=2">Spring sale</a> '
    '<a href="mailto:help@shop.example">help</a></body></html>'
)


def _campaign(store: Store, business_id: str, members: list[MemberIn], **extra: object) -> str:
    with store.write() as conn:
        template_id = templates.create_template(
            conn,
            business_id=business_id,
            checked=templates.check_template(
                TemplateIn(
                    name="spring",
                    subject="Spring for {{ contact.first_name | default('you') }}",
                    html=HTML,
                    text="Hello {{ contact.first_name | default('friend') }}",
                )
            ),
        )
        list_id = lists.create_list(conn, business_id=business_id, data=ListIn(name="news"))
        for member in members:
            lists.add_member(conn, business_id=business_id, list_id=list_id, member=member)
        return campaigns.create_campaign(
            conn,
            business_id=business_id,
            data=CampaignIn(
                name="spring",
                template_id=template_id,
                list_id=list_id,
                from_address="news@shop.example",
                **extra,  # type: ignore[arg-type]
            ),
        )


def _in_write(store: Store, work: Callable[..., T], **arguments: Any) -> T:
    """A tracking call in its own write transaction, as the HTTP handlers make it."""
    with store.write() as conn:
        return work(conn, **arguments)


def _member(name: str) -> MemberIn:
    return MemberIn(
        email=f"{name}@people.example", anonymous_id=f"anon-{name}", traits={"first_name": name}
    )


def test_a_campaign_reaches_only_consenting_unsuppressed_people(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    ledger = FakeLedger()
    grant(
        store,
        business,
        {
            **{
                f"anon-{n}": {"marketing": True}
                for n in ("ada", "unsub", "blocked", "bounced", "withdrawn")
            },
            "anon-nothanks": {"marketing": False, "analytics": True},
        },
    )
    names = ["ada", "nothanks", "unsub", "blocked", "bounced", "withdrawn", "stranger"]
    campaign_id = _campaign(store, business, [_member(n) for n in names])
    with store.write() as conn:
        service.suppress_email(
            conn, business_id=business, email="unsub@people.example", reason="unsubscribed"
        )
        service.suppress_email(
            conn, business_id=business, email="Bounced@People.example", reason="hard_bounce"
        )
        reach.suppress(conn, business_id=business, kind="email", value="blocked@people.example")
    # Consent withdrawn after the campaign was built: checked again at send time.
    grant(store, business, {"anon-withdrawn": {"marketing": False}})

    report = asyncio.run(
        sending.send_campaign(
            store,
            business_id=business,
            campaign_id=campaign_id,
            mailer=mailer_for(sink),
            wiring=ledger.wiring(),
        )
    )

    assert report.sent == 1 and report.failed == 0
    assert report.skipped == {
        "no_consent": 3,
        "unsubscribed": 1,
        "suppressed": 1,
        "bounced": 1,
    }
    assert [r.envelope_to for r in sink.messages] == [["ada@people.example"]]
    message = sink.messages[0].message
    assert message["Subject"] == "Spring for ada"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(rf"<{BASE_URL}/e/u/[^>]+>", message["List-Unsubscribe"])
    html = body_text(message, "html")
    assert "Hello ada" in html and "color: red" in html and "<style>" not in html
    assert "https://shop.example/spring" not in html  # went through the click redirect
    assert "mailto:help@shop.example" in html
    assert body_text(message).startswith("Hello ada\n\n-- \n")
    with pytest.raises(Conflict):
        asyncio.run(
            sending.send_campaign(
                store,
                business_id=business,
                campaign_id=campaign_id,
                mailer=mailer_for(sink),
                wiring=ledger.wiring(),
            )
        )


def _links(message: EmailMessage) -> tuple[str, str]:
    html = body_text(message, "html")
    pixel = re.search(rf'{BASE_URL}/e/o/([^"]+)"', html)
    click = re.search(rf'{BASE_URL}/e/c/([^"]+)"', html)
    assert pixel and click
    return pixel.group(1), click.group(1)


HUMAN = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130 Safari/537.36"


def test_tracking_separates_people_from_machines_and_refuses_forged_links(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    ledger = FakeLedger()
    grant(store, business, {"anon-ada": {"marketing": True}})
    campaign_id = _campaign(store, business, [_member("ada")])
    mailer = mailer_for(sink)
    asyncio.run(
        sending.send_campaign(
            store,
            business_id=business,
            campaign_id=campaign_id,
            mailer=mailer,
            wiring=ledger.wiring(),
        )
    )
    pixel, click = _links(sink.messages[0].message)
    later = utcnow() + timedelta(minutes=5)

    def opened(agent: str | None, ip: str, when: object) -> bool:
        return _in_write(
            store,
            tracking.record_open,
            mailer=mailer,
            token=pixel,
            user_agent=agent,
            ip=ip,
            now=when,  # type: ignore[arg-type]
        )

    assert opened(HUMAN, "17.58.1.2", later) is False  # Apple Mail Privacy Protection
    assert opened("Mozilla/5.0 (compatible; Barracuda)", "203.0.113.9", later) is False
    assert opened(HUMAN, "203.0.113.9", utcnow()) is False  # sub-second after delivery
    assert opened(HUMAN, "203.0.113.9", later) is True
    target = _in_write(
        store,
        tracking.record_click,
        mailer=mailer,
        token=click,
        user_agent=HUMAN,
        ip="203.0.113.9",
        now=later,
    )
    assert target == "https://shop.example/spring?x=1&y=2"
    with pytest.raises(InvalidLink):
        _in_write(
            store,
            tracking.record_click,
            mailer=mailer,
            token=click[:-2] + "xx",
            user_agent=HUMAN,
            ip=None,
        )
    # A valid signature from another salt, or a link index the message does not hold.
    forged = mailer.signer.dumps("click", [sink.messages[0].message["X-Accord-Message"], 7])
    with pytest.raises(InvalidLink):
        _in_write(
            store, tracking.record_click, mailer=mailer, token=forged, user_agent=HUMAN, ip=None
        )
    with pytest.raises(InvalidLink):
        _in_write(
            store, tracking.record_click, mailer=mailer, token=pixel, user_agent=HUMAN, ip=None
        )

    with store.read() as conn:
        kpis = campaign_kpis(conn, business_id=business, campaign_id=campaign_id)
    assert (kpis.sent, kpis.delivered, kpis.human_openers, kpis.clickers) == (1, 1, 1, 1)
    assert kpis.machine_opens == 1  # three machine hits on one message
    assert kpis.rates["open_rate"].value == 1.0
    assert kpis.rates["open_rate"].band == "above"
    assert kpis.rates["click_to_open_rate"].value == 1.0
    low, high = kpis.rates["click_through_rate"].low, kpis.rates["click_through_rate"].high
    assert low is not None and high is not None and 0.2 < low < 1.0 and high == 1.0


def test_one_click_unsubscribe_withdraws_and_stops_later_campaigns(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    ledger = FakeLedger()
    grant(store, business, {"anon-ada": {"marketing": True}})
    mailer = mailer_for(sink)
    first = _campaign(store, business, [_member("ada")])
    asyncio.run(
        sending.send_campaign(
            store, business_id=business, campaign_id=first, mailer=mailer, wiring=ledger.wiring()
        )
    )
    header = sink.messages[0].message["List-Unsubscribe"]
    token = header.strip("<>").rsplit("/", 1)[1]
    result = _in_write(
        store,
        tracking.unsubscribe,
        mailer=mailer,
        token=token,
        wiring=ledger.wiring(),
        via="one_click",
        ip="10.0.0.1",
    )
    assert result.unsubscribed and result.email == "ada@people.example"
    with store.read() as conn:
        assert reach.list_suppressions(conn, business_id=business)[0]["reason"] == "unsubscribed"
    assert ledger.recorded[0]["purposes"] == {"marketing": False}
    # Unsubscribing twice is harmless and records nothing more.
    _in_write(
        store,
        tracking.unsubscribe,
        mailer=mailer,
        token=token,
        wiring=ledger.wiring(),
        via="one_click",
        ip=None,
    )
    assert len(ledger.recorded) == 1

    second = _campaign(store, business, [_member("ada")])
    report = asyncio.run(
        sending.send_campaign(
            store, business_id=business, campaign_id=second, mailer=mailer, wiring=ledger.wiring()
        )
    )
    assert report.sent == 0 and report.skipped == {"unsubscribed": 1}
    with store.read() as conn:
        kpis = campaign_kpis(conn, business_id=business, campaign_id=first)
    assert kpis.unsubscribes == 1 and kpis.rates["unsubscribe_rate"].value == 1.0


def _dsn(recipient: str, status: str, original: EmailMessage) -> bytes:
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.people.example"
    report["To"] = "news@shop.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("The message could not be delivered.", "plain"))
    status_text = (
        "Reporting-MTA: dns; mx.people.example\n\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Action: {'failed' if status.startswith('5') else 'delayed'}\n"
        f"Status: {status}\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n"
    )
    report.attach(message_from_string("Content-Type: message/delivery-status\n\n" + status_text))
    headers = MIMEText("".join(f"{k}: {v}\n" for k, v in original.items()), "rfc822-headers")
    report.attach(headers)
    return report.as_bytes()


def test_hard_bounces_suppress_and_soft_ones_do_not(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    ledger = FakeLedger()
    grant(store, business, {f"anon-{n}": {"marketing": True} for n in ("ada", "bo")})
    mailer = mailer_for(sink)
    campaign_id = _campaign(store, business, [_member("ada"), _member("bo")])
    asyncio.run(
        sending.send_campaign(
            store,
            business_id=business,
            campaign_id=campaign_id,
            mailer=mailer,
            wiring=ledger.wiring(),
        )
    )
    [to_ada] = sink.to("ada@people.example")
    [to_bo] = sink.to("bo@people.example")
    hard = parse_report_email(_dsn("ada@people.example", "5.1.1", to_ada))
    soft = parse_report_email(_dsn("bo@people.example", "4.2.2", to_bo))
    assert [(r.email, r.hard, r.status, r.message_id) for r in hard] == [
        ("ada@people.example", True, "5.1.1", to_ada["X-Accord-Message"])
    ]
    assert soft == []  # "delayed" is not a bounce
    with store.write() as conn:
        assert apply_delivery_reports(conn, business_id=business, reports=hard) == 1
        statuses = dict(
            conn.execute(
                select(email_messages.c.email, email_messages.c.status).where(
                    email_messages.c.campaign_id == campaign_id
                )
            ).all()
        )
        kpis = campaign_kpis(conn, business_id=business, campaign_id=campaign_id)
        refused = reach.suppressed(
            conn,
            business_id=business,
            kind="email",
            values=["ada@people.example", "bo@people.example"],
            channel="email",
        )
    assert statuses == {"ada@people.example": "bounced", "bo@people.example": "sent"}
    assert refused == {"ada@people.example": "hard_bounce"}
    assert (kpis.sent, kpis.delivered, kpis.bounces) == (2, 1, 1)
    assert kpis.rates["delivery_rate"].value == 0.5
    assert kpis.rates["delivery_rate"].band == "below"


def _ab_test_with_clicks(
    store: Store, business: str, sink: SmtpSink
) -> tuple[str, Any, FakeLedger, Any]:
    """An A/B test of subjects sent to half of 240 people, B clicked 24 times and A 6:
    the campaign, its mailer and wiring, and when it started."""
    names = [f"p{i:03d}" for i in range(240)]
    ledger = FakeLedger()
    grant(store, business, {f"anon-{n}": {"marketing": True} for n in names})
    mailer = mailer_for(sink)
    start = utcnow()
    campaign_id = _campaign(
        store,
        business,
        [_member(n) for n in names],
        due_at=start,
        ab_test=AbTestIn(
            subject="Last days of spring", sample_share=0.5, min_sample=50, wait_hours=2
        ),
    )
    [first] = asyncio.run(sending.run_due(store, mailer=mailer, wiring=ledger.wiring(), now=start))
    assert first.status == "testing" and first.sent == 120
    subjects = [r.message["Subject"] for r in sink.messages]
    assert subjects.count("Last days of spring") == 60
    # Nothing is due before the waiting time is over.
    assert (
        asyncio.run(
            sending.run_due(
                store, mailer=mailer, wiring=ledger.wiring(), now=start + timedelta(hours=1)
            )
        )
        == []
    )
    later = start + timedelta(hours=1)
    clicks = {"A": 0, "B": 0}
    for received in sink.messages:
        variant = "B" if received.message["Subject"] == "Last days of spring" else "A"
        if clicks[variant] >= (6 if variant == "A" else 24):
            continue
        clicks[variant] += 1
        _pixel, click = _links(received.message)
        _in_write(
            store,
            tracking.record_click,
            mailer=mailer,
            token=click,
            user_agent=HUMAN,
            ip="198.51.100.1",
            now=later,
        )
    return campaign_id, mailer, ledger, start


def test_ab_test_sends_the_significant_winner_to_the_rest(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    campaign_id, mailer, ledger, start = _ab_test_with_clicks(store, business, sink)
    with store.read() as conn:
        decision = ab_decision(conn, business_id=business, campaign_id=campaign_id)
    assert decision.winner == "B" and decision.test is not None and decision.test.p_value < 0.05
    [second] = asyncio.run(
        sending.run_due(
            store, mailer=mailer, wiring=ledger.wiring(), now=start + timedelta(hours=3)
        )
    )
    assert second.status == "sent" and second.sent == 120
    rest = [r.message["Subject"] for r in sink.messages[120:]]
    assert rest == ["Last days of spring"] * 120
    assert len({r.envelope_to[0] for r in sink.messages}) == 240


def test_item_16_ab_statistics_exclude_rollout_mail(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    campaign_id, mailer, ledger, start = _ab_test_with_clicks(store, business, sink)
    with store.read() as conn:
        before = ab_decision(conn, business_id=business, campaign_id=campaign_id)
    asyncio.run(
        sending.run_due(
            store, mailer=mailer, wiring=ledger.wiring(), now=start + timedelta(hours=3)
        )
    )
    with store.read() as conn:
        after = ab_decision(conn, business_id=business, campaign_id=campaign_id)
        arms = {
            v: campaign_kpis(conn, business_id=business, campaign_id=campaign_id, variant=v)
            for v in ("A", "B")
        }
        overall = campaign_kpis(conn, business_id=business, campaign_id=campaign_id)
    # The 120 rollout messages of the winner are in the campaign's figures, not the test's.
    assert (arms["A"].delivered, arms["B"].delivered, overall.delivered) == (60, 60, 240)
    assert after.winner == before.winner == "B"
    assert after.test is not None and before.test is not None
    assert after.test.p_value == pytest.approx(before.test.p_value)


def test_a_scheduled_campaign_waits_for_its_time_and_tests_go_to_the_marketer(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    ledger = FakeLedger()
    grant(store, business, {"anon-ada": {"marketing": True}})
    mailer = mailer_for(sink)
    due = utcnow() + timedelta(days=1)
    campaign_id = _campaign(store, business, [_member("ada")], due_at=due)
    test = asyncio.run(
        sending.send_test(
            store,
            business_id=business,
            campaign_id=campaign_id,
            to=["me@shop.example"],
            mailer=mailer,
        )
    )
    assert test.sent == 1
    assert sink.to("me@shop.example")[0]["Subject"] == "[Test A] Spring for you"
    assert asyncio.run(sending.run_due(store, mailer=mailer, wiring=ledger.wiring())) == []
    [report] = asyncio.run(
        sending.run_due(
            store, mailer=mailer, wiring=ledger.wiring(), now=due + timedelta(seconds=1)
        )
    )
    assert report.sent == 1 and sink.to("ada@people.example")
    with store.read() as conn:
        kpis = campaign_kpis(conn, business_id=business, campaign_id=campaign_id)
    assert kpis.sent == 1  # the test send is not counted


def test_ab_test_of_content_sends_each_template_to_half_the_sample(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    names = [f"q{i}" for i in range(8)]
    ledger = FakeLedger()
    grant(store, business, {f"anon-{n}": {"marketing": True} for n in names})
    with store.write() as conn:
        other = templates.create_template(
            conn,
            business_id=business,
            checked=templates.check_template(
                TemplateIn(name="b", subject="Spring, shorter", html="<p>Variant B body</p>")
            ),
        )
    campaign_id = _campaign(
        store,
        business,
        [_member(n) for n in names],
        ab_test=AbTestIn(template_id=other, sample_share=0.5, min_sample=1),
    )
    report = asyncio.run(
        sending.send_campaign(
            store,
            business_id=business,
            campaign_id=campaign_id,
            mailer=mailer_for(sink),
            wiring=ledger.wiring(),
        )
    )
    assert report.status == "testing" and report.sent == 4
    bodies = [body_text(r.message, "html") for r in sink.messages]
    assert sum("Variant B body" in b for b in bodies) == 2
    assert sum("Hello q" in b for b in bodies) == 2


def test_item_15_ab_variant_subject_is_rendered_for_each_recipient(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    ledger = FakeLedger()
    names = [f"r{i}" for i in range(4)]
    grant(store, business, {f"anon-{n}": {"marketing": True} for n in names})
    members = [
        MemberIn(email=f"{n}@people.example", anonymous_id=f"anon-{n}", traits={"first_name": n})
        for n in names
    ]
    campaign_id = _campaign(
        store,
        business,
        members,
        ab_test=AbTestIn(
            subject='Last days, {{ contact.first_name | default("friend") }}',
            sample_share=1.0,
            min_sample=1,
        ),
    )
    asyncio.run(
        sending.send_campaign(
            store,
            business_id=business,
            campaign_id=campaign_id,
            mailer=mailer_for(sink),
            wiring=ledger.wiring(),
        )
    )
    subjects = {r.envelope_to[0]: r.message["Subject"] for r in sink.messages}
    b_subjects = [s for s in subjects.values() if s.startswith("Last days")]
    assert b_subjects and all("{{" not in s for s in subjects.values())
    for address, subject in subjects.items():
        if subject.startswith("Last days"):
            assert subject == f"Last days, {address.split('@')[0]}"


def test_item_15_ab_variant_subject_that_does_not_parse_is_refused(
    store: Store, keys: Bootstrap
) -> None:
    with pytest.raises(InvalidInput) as refused:
        _campaign(store, keys.business_id, [], ab_test=AbTestIn(subject="Hi {{ broken"))
    assert refused.value.problems[0].field == "ab_test.subject"


def test_item_15_unsubscribe_link_and_footer_with_postal_address(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    with store.write() as conn:
        conn.execute(
            update(businesses)
            .where(businesses.c.id == business)
            .values(address="Via Roma 1, 20121 Milano, Italy")
        )
        body = templates.check_template(
            TemplateIn(
                name="with link",
                subject="News",
                html='<p>Hi</p><a href="{{ unsubscribe_url }}">Stop these emails</a>',
                text="Hi. Stop: {{ unsubscribe_url }}",
            )
        )
        template_id = templates.create_template(conn, business_id=business, checked=body)
        list_id = lists.create_list(conn, business_id=business, data=ListIn(name="l"))
        lists.add_member(conn, business_id=business, list_id=list_id, member=_member("ada"))
        campaign_id = campaigns.create_campaign(
            conn,
            business_id=business,
            data=CampaignIn(
                name="c", template_id=template_id, list_id=list_id, from_address="n@shop.example"
            ),
        )
    ledger = FakeLedger()
    grant(store, business, {"anon-ada": {"marketing": True}})
    asyncio.run(
        sending.send_campaign(
            store,
            business_id=business,
            campaign_id=campaign_id,
            mailer=mailer_for(sink),
            wiring=ledger.wiring(),
        )
    )
    [received] = sink.messages
    header = received.message["List-Unsubscribe"].strip("<>")
    html = body_text(received.message, "html")
    text = body_text(received.message)
    assert header.startswith(f"{BASE_URL}/e/u/")
    # The body link is the same one-click address, not sent through the click redirect.
    assert f'<a href="{header}">Stop these emails</a>' in html
    assert f"Stop: {header}" in text
    footer = re.search(r'<p class="accord-footer"[^>]*>(.*?)</p>', html, re.S)
    assert footer and "Via Roma 1, 20121 Milano, Italy" in footer.group(1)
    assert f'href="{header}"' in footer.group(1)
    assert text.rstrip().endswith(f"Via Roma 1, 20121 Milano, Italy\nUnsubscribe: {header}")
    # Unsubscribing through it works.
    with store.write() as conn:
        tracking.unsubscribe(
            conn,
            mailer=mailer_for(sink),
            token=header.rsplit("/", 1)[1],
            wiring=ledger.wiring(),
            via="link",
            ip=None,
        )
        assert service.is_unsubscribed(conn, business_id=business, email="ada@people.example")
