"""`accord email send-due` and `accord email bounces` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_string
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.core.signing import Signer
from accord.leads import confirmation, forms, submissions
from accord.leads.models import FormIn
from accord.leads.validation import CleanSubmission
from accord.messaging import campaigns, lists, templates
from accord.messaging.models import CampaignIn, ListIn, MemberIn, TemplateIn
from accord.process.email import default_wiring
from accord.reach.models import suppressions
from accord.store.db import Store
from tests.smtp_sink import running_sink
from tests.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def test_send_due_sends_scheduled_campaigns_and_bounces_suppress(
    cli: Cli, store: Store, keys: Bootstrap, tmp_path: Path
) -> None:
    business = keys.business_id
    with store.write() as conn:
        form = forms.create_form(
            conn,
            business_id=business,
            data=FormIn.model_validate(
                {
                    "slug": "single",
                    "title": {"en": "Sign up"},
                    "fields": [{"key": "email", "kind": "email"}],
                    "consents": [{"purpose": "marketing", "label": {"en": "Email me"}}],
                    "privacy_policy_url": "https://shop.example/privacy",
                    "from_address": "news@shop.example",
                    "double_opt_in": False,
                }
            ),
        )
        done = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="ada@people.example", purposes=["marketing"]),
            anonymous_id="anon-ada",
            ip="192.0.2.1",
            user_agent="test",
        )
        assert not done.needs_confirmation
        confirmation.confirm(
            conn, lead_id=done.lead_id, ip="192.0.2.1", wiring=default_wiring(), signer=Signer("k")
        )
        list_id = lists.create_list(conn, business_id=business, data=ListIn(name="n"))
        for email, anonymous_id in (
            ("ada@people.example", "anon-ada"),
            ("bo@people.example", "anon-bo"),
        ):
            lists.add_member(
                conn,
                business_id=business,
                list_id=list_id,
                member=MemberIn(email=email, anonymous_id=anonymous_id),
            )
        template_id = templates.create_template(
            conn,
            business_id=business,
            checked=templates.check_template(
                TemplateIn(name="t", subject="Hello", html="<p>Hello</p>")
            ),
        )
        campaigns.create_campaign(
            conn,
            business_id=business,
            data=CampaignIn(
                name="c",
                template_id=template_id,
                list_id=list_id,
                from_address="news@shop.example",
                due_at=utcnow() - timedelta(minutes=1),
            ),
        )
    with running_sink() as sink:
        cli.env["ACCORD_SMTP_PORT"] = str(sink.port)
        result = cli("email", "send-due", "--once")
        assert "sent 1" in result.output
        assert [r.envelope_to for r in sink.messages] == [["ada@people.example"]]
        original = sink.messages[0].message

    report = MIMEMultipart("report", report_type="delivery-status")
    report.attach(MIMEText("gone", "plain"))
    report.attach(
        message_from_string(
            "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
            "Final-Recipient: rfc822; ada@people.example\nAction: failed\nStatus: 5.1.1\n"
        )
    )
    report.attach(MIMEText(f"X-Accord-Message: {original['X-Accord-Message']}\n", "rfc822-headers"))
    dsn = tmp_path / "bounce.eml"
    dsn.write_bytes(report.as_bytes())
    result = cli("email", "bounces", str(dsn), "--business", keys.write_key)
    assert "1 reports, 1 about messages we sent" in result.output
    with store.read() as conn:
        assert conn.execute(select(suppressions.c.value)).scalars().all() == ["ada@people.example"]
