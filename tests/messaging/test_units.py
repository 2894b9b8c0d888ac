"""Pure parts of email: statistics, machine opens, templates, bounce parsers, rate limit."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from email import message_from_string
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.core.errors import InvalidInput
from accord.core.signing import Signer
from accord.messaging.bounces import parse_report_email, parse_sendgrid, parse_ses
from accord.messaging.mailer import Mailer, build_message
from accord.messaging.smtp import RateLimiter, SmtpConfig
from accord.messaging.stats import choose_winner, rate, two_proportion_z_test, wilson_interval
from accord.messaging.templates import RenderedEmail, compile_template, personalisation
from accord.messaging.tracking import machine_reason, track_html


@given(
    st.integers(min_value=1, max_value=10_000).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
    )
)
def test_wilson_interval_holds_the_observed_rate_inside_zero_one(case: tuple[int, int]) -> None:
    successes, trials = case
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0


def test_wilson_interval_known_value() -> None:
    low, high = wilson_interval(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)


@given(st.integers(0, 500), st.integers(0, 500))
def test_z_test_is_antisymmetric(a: int, b: int) -> None:
    forward = two_proportion_z_test(a, 500, b, 500)
    backward = two_proportion_z_test(b, 500, a, 500)
    assert forward.z == pytest.approx(-backward.z)
    assert forward.p_value == pytest.approx(backward.p_value)
    assert 0.0 <= forward.p_value <= 1.0


def test_z_test_known_value_and_winner_rules() -> None:
    test = two_proportion_z_test(10, 100, 20, 100)
    assert test.z == pytest.approx(1.980, abs=1e-3) and test.p_value == pytest.approx(
        0.0477, abs=1e-3
    )
    small = choose_winner(
        successes_a=1, trials_a=10, successes_b=9, trials_b=10, min_sample=50, alpha=0.05
    )
    assert small.winner is None and "at least 50" in small.reason
    tie = choose_winner(
        successes_a=20, trials_a=200, successes_b=22, trials_b=200, min_sample=50, alpha=0.05
    )
    assert tie.winner is None
    a_wins = choose_winner(
        successes_a=40, trials_a=200, successes_b=10, trials_b=200, min_sample=50, alpha=0.05
    )
    assert a_wins.winner == "A"


def test_rates_carry_their_benchmark_band() -> None:
    assert rate(93, 100, name="delivery_rate").band == "within"
    assert rate(5, 100, name="open_rate").band == "below"
    assert rate(5, 100, name="click_through_rate").band == "above"
    empty = rate(0, 0, name="open_rate")
    assert empty.value is None and empty.band is None


SENT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130 Safari/537.36"


@pytest.mark.parametrize(
    ("agent", "ip", "after", "expected"),
    [
        (HUMAN, "198.51.100.7", 60, None),
        (HUMAN, "17.100.2.3", 60, "apple_privacy_proxy"),
        ("Mozilla/5.0", "17.0.0.1", 3600, "apple_privacy_proxy"),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "198.51.100.7", 60, "link_scanner"),
        ("python-requests/2.32", "198.51.100.7", 60, "link_scanner"),
        (None, "198.51.100.7", 60, "no_user_agent"),
        (HUMAN, "198.51.100.7", 0.4, "too_soon_after_delivery"),
        # Gmail fetches images when the message is opened, so its proxy is a person.
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
            "GoogleImageProxy)",
            "66.249.84.1",
            60,
            None,
        ),
        (HUMAN, "not-an-ip", 60, None),
    ],
)
def test_machine_reason(agent: str | None, ip: str, after: float, expected: str | None) -> None:
    assert (
        machine_reason(
            user_agent=agent,
            ip=ip,
            sent_at=SENT,
            occurred_at=SENT + timedelta(seconds=after),
            min_human_delay=timedelta(seconds=2),
        )
        == expected
    )


def test_templates_fall_back_safely_and_the_sandbox_refuses_internals() -> None:
    template = compile_template(
        subject="Hi {{ contact.first_name | default('there') }}",
        html="<p>{{ contact.city }}{{ contact.address.street }}</p><b>{{ contact.bio }}</b>",
        text="{{ contact.first_name }}",
    )
    rendered = template.render(personalisation({"bio": "<script>x</script>"}, email="a@b.example"))
    assert rendered.subject == "Hi there"
    assert "&lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    escape = compile_template(
        subject="x", html="{{ ''.__class__.__mro__[1].__subclasses__() }}", text=""
    )
    with pytest.raises(InvalidInput):
        escape.render({})
    with pytest.raises(InvalidInput) as caught:
        compile_template(subject="{{ broken", html="<p>", text="")
    assert caught.value.problems[0].field == "subject"


def test_click_links_keep_their_targets_and_only_web_links_are_tracked() -> None:
    signer = Signer("k")
    tracked = track_html(
        "<body><a href='https://a.example/x?a=1&amp;b=2'>a</a><a href=\"mailto:x@y\">m</a>"
        '<a class="c" href="http://b.example">b</a></body>',
        message_id="msg_1",
        base_url="https://mail.example",
        signer=signer,
    )
    assert tracked.links == ["https://a.example/x?a=1&b=2", "http://b.example"]
    assert tracked.html.count("https://mail.example/e/c/") == 2
    assert tracked.html.index("/e/o/") < tracked.html.index("</body>")


def _arf(recipient: str) -> bytes:
    report = MIMEMultipart("report", report_type="feedback-report")
    report.attach(MIMEText("This is an abuse report", "plain"))
    report.attach(
        message_from_string(
            "Content-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: ISP/1.0\n"
            f"Version: 1\nOriginal-Rcpt-To: <{recipient}>\n"
        )
    )
    original = MIMEText("offer", "plain")
    original["To"] = recipient
    original["X-Accord-Message"] = "msg_42"
    report.attach(MIMEMessage(original))
    return report.as_bytes()


def test_abuse_reports_are_complaints() -> None:
    [complaint] = parse_report_email(_arf("ada@people.example"))
    assert (complaint.email, complaint.kind, complaint.status, complaint.message_id) == (
        "ada@people.example",
        "complaint",
        "abuse",
        "msg_42",
    )
    with pytest.raises(InvalidInput):
        parse_report_email(b"Subject: hello\n\nnot a report")


@given(
    st.emails(),
    st.sampled_from(["5.1.1", "5.2.2", "5.7.1", "4.4.1"]),
    st.sampled_from(["failed", "delayed", "delivered"]),
)
def test_dsn_parsing_reports_failed_recipients_only(address: str, status: str, action: str) -> None:
    report = MIMEMultipart("report", report_type="delivery-status")
    report.attach(MIMEText("bounce", "plain"))
    report.attach(
        message_from_string(
            "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
            f"Original-Recipient: rfc822;{address}\nFinal-Recipient: rfc822; {address}\n"
            f"Action: {action}\nStatus: {status}\n"
        )
    )
    found = parse_report_email(report.as_bytes())
    if action != "failed":
        assert found == []
    else:
        assert [(r.email, r.hard, r.status) for r in found] == [
            (address.lower(), status.startswith("5"), status)
        ]


def test_ses_and_sendgrid_events() -> None:
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "A@x.example"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {"headers": []},
    }
    [found] = parse_ses(orjson.dumps(complaint))
    assert (found.email, found.kind, found.hard) == ("a@x.example", "complaint", True)
    transient = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Transient",
            "bouncedRecipients": [{"emailAddress": "b@x.example"}],
        },
        "mail": {},
    }
    assert parse_ses(orjson.dumps(transient))[0].hard is False
    events = [
        {
            "email": "c@x.example",
            "event": "bounce",
            "type": "bounce",
            "status": "5.0.0",
            "accord_message": "msg_9",
        },
        {"email": "d@x.example", "event": "bounce", "type": "blocked", "status": "5.7.1"},
        {"email": "e@x.example", "event": "spamreport"},
        {"email": "f@x.example", "event": "open"},
    ]
    parsed = parse_sendgrid(orjson.dumps(events))
    assert [(r.email, r.kind, r.hard, r.message_id) for r in parsed] == [
        ("c@x.example", "bounce", True, "msg_9"),
        ("d@x.example", "bounce", False, None),
        ("e@x.example", "complaint", True, None),
    ]
    with pytest.raises(InvalidInput):
        parse_sendgrid(b"{}")
    with pytest.raises(InvalidInput):
        parse_ses(b"not json")


def test_rate_limiter_spaces_sends() -> None:
    async def run() -> float:
        limiter = RateLimiter(200)
        start = time.monotonic()
        for _ in range(41):
            await limiter.wait()
        return time.monotonic() - start

    assert asyncio.run(run()) >= 0.19


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("Accord <accord@localhost>", "localhost"),
        ("news@shop.example", "shop.example"),
        ('"Shop, Inc." <news@shop.example>', "shop.example"),
    ],
)
def test_item_16_message_id_is_one_bracketed_address(sender: str, domain: str) -> None:
    message, _links, _subject = build_message(
        message_id="msg_1",
        template=RenderedEmail(subject="Hi", html="<p>Hi</p>", text="Hi"),
        context={},
        to="ada@example.com",
        from_address=sender,
        mailer=Mailer(smtp=SmtpConfig(), signer=Signer("k" * 32), base_url="http://x.test"),
    )
    header = message_from_string(message.data.decode())["Message-ID"]
    assert re.fullmatch(rf"<msg_1\.[0-9a-f]{{12}}@{re.escape(domain)}>", header), header
