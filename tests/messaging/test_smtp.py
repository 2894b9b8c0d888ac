"""The one SMTP sender against a real local server: one plain-text email, and failures."""

from __future__ import annotations

import asyncio

import pytest

from accord.core.errors import MailNotSent
from accord.core.settings import Settings
from accord.messaging.mime import build_text_mime
from accord.messaging.smtp import SmtpConfig, send_all, send_text
from tests.live_app import free_port
from tests.smtp_sink import body_text, running_sink


def test_send_text_delivers_one_plain_text_email_with_an_encoded_subject() -> None:
    with running_sink() as sink:
        config = SmtpConfig(host=sink.host, port=sink.port)
        asyncio.run(
            send_text(
                config,
                sender="Accord <accord@example.test>",
                to="zoe@example.test",
                subject="Bienvenue, Zoë",
                text="Première ligne\nsecond line\n",
            )
        )
        message = sink.wait_for("zoe@example.test")
    assert str(message["Subject"]) == "Bienvenue, Zoë"
    assert str(message["From"]) == "Accord <accord@example.test>"
    assert message.get_content_type() == "text/plain"
    assert body_text(message).replace("\r\n", "\n") == "Première ligne\nsecond line\n"


def test_send_text_raises_mail_not_sent_when_no_server_answers() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), timeout_seconds=2)
    with pytest.raises(MailNotSent) as raised:
        asyncio.run(
            send_text(config, sender="a@example.test", to="b@example.test", subject="s", text="t")
        )
    assert raised.value.recipient == "b@example.test"
    assert "could not be sent" in str(raised.value)


def test_config_from_settings_reads_the_smtp_settings_and_falls_back_to_a_local_mta() -> None:
    configured = SmtpConfig.from_settings(
        Settings(
            smtp_host="mail.example.test",
            smtp_port=465,
            smtp_username="user",
            smtp_password="secret",
            smtp_security="tls",
        )
    )
    assert (configured.host, configured.port, configured.security) == (
        "mail.example.test",
        465,
        "tls",
    )
    assert (configured.username, configured.password) == ("user", "secret")
    assert SmtpConfig.from_settings(Settings()).host == "127.0.0.1"


def test_an_address_the_server_cannot_take_fails_alone_and_the_rest_are_sent() -> None:
    with running_sink() as sink:
        messages = [
            build_text_mime(sender="a@example.test", recipient=to, headers=[], text="hi")
            for to in ("zoë@example.test", "bob@example.test", "ann@example.test")
        ]
        outcomes = asyncio.run(send_all(messages, SmtpConfig(host=sink.host, port=sink.port)))
        sink.wait_for("ann@example.test")
    assert [outcome.ok for outcome in outcomes] == [False, True, True]
    assert outcomes[0].error is not None and "UnicodeEncodeError" in outcomes[0].error
    assert sorted(r.envelope_to[0] for r in sink.messages) == [
        "ann@example.test",
        "bob@example.test",
    ]
