"""A real local SMTP server (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from accord.core.settings import Settings
from tests.live_app import free_port


@dataclass
class Received:
    envelope_from: str
    envelope_to: list[str]
    message: EmailMessage
    # When the sink accepted it.
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    count_only: bool = False
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.count += 1
            if not self.count_only:
                parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.messages if address in r.envelope_to]

    def wait_for(self, address: str, timeout: float = 10.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no message to {address} within {timeout} s")


@contextmanager
def running_sink(*, count_only: bool = False) -> Iterator[SmtpSink]:
    port = free_port()
    sink = SmtpSink(host="127.0.0.1", port=port, count_only=count_only)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def body_text(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def mail_settings(settings: Settings, sink: SmtpSink, **overrides: Any) -> Settings:
    """`settings` sending through `sink` at no rate limit, with links to the test client."""
    return settings.model_copy(
        update={
            "smtp_host": sink.host,
            "smtp_port": sink.port,
            "public_url": "http://testserver",
            "email_rate_per_second": 0,
            **overrides,
        }
    )
