"""KPIs of every campaign message sent in a window (the overview's email widget)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.messaging import sending
from accord.messaging.bounces import apply_delivery_reports, parse_report_email
from accord.messaging.kpis import campaign_kpis, kpis_between
from accord.store.db import Store
from tests.messaging.helpers import FakeLedger, grant, mailer_for
from tests.messaging.test_campaigns import _campaign, _dsn, _member
from tests.smtp_sink import SmtpSink


def test_kpis_between_add_up_every_campaign_sent_in_the_window(
    store: Store, keys: Bootstrap, sink: SmtpSink
) -> None:
    business = keys.business_id
    grant(store, business, {f"anon-{n}": {"marketing": True} for n in ("ada", "bo", "cy")})
    mailer = mailer_for(sink)
    first = _campaign(store, business, [_member("ada"), _member("bo")])
    second = _campaign(store, business, [_member("cy")])
    for campaign_id in (first, second):
        asyncio.run(
            sending.send_campaign(
                store,
                business_id=business,
                campaign_id=campaign_id,
                mailer=mailer,
                wiring=FakeLedger().wiring(),
            )
        )
    [to_ada] = sink.to("ada@people.example")
    with store.write() as conn:
        reports = parse_report_email(_dsn("ada@people.example", "5.1.1", to_ada))
        apply_delivery_reports(conn, business_id=business, reports=reports)
    now = utcnow()
    with store.read() as conn:
        window = kpis_between(
            conn, business_id=business, since=now - timedelta(days=30), until=now + timedelta(1)
        )
        before = kpis_between(
            conn, business_id=business, since=now - timedelta(days=30), until=now - timedelta(1)
        )
        one = campaign_kpis(conn, business_id=business, campaign_id=first)
    assert (window.sent, window.delivered, window.bounces) == (3, 2, 1)
    assert window.rates["bounce_rate"].value == 1 / 3
    assert (one.sent, one.bounces) == (2, 1)
    assert (before.sent, before.delivered, before.rates["open_rate"].value) == (0, 0, None)
