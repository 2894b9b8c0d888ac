"""Sending through the configured SMTP server: reused connections, bounded concurrency and
rate for campaigns and journeys, and `send_text` for one account email (invitations,
address confirmations)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from accord.core.errors import MailNotSent
from accord.core.settings import Settings
from accord.messaging.mime import OutgoingEmail, build_text_mime


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = None
    security: Literal["none", "starttls", "tls"] = "none"
    timeout_seconds: float = 30.0
    # Messages per second across all connections (0: no limit), and open connections.
    rate_per_second: float = 100.0
    concurrency: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        """The server of `ACCORD_SMTP_*`; without a host, a local MTA on 127.0.0.1."""
        return cls(
            host=settings.smtp_host or "127.0.0.1",
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
            rate_per_second=settings.email_rate_per_second,
            concurrency=settings.email_concurrency,
        )


@dataclass(frozen=True)
class Outcome:
    index: int
    ok: bool
    error: str | None = None


class RateLimiter:
    """Spaces sends evenly so no second holds more than `rate` of them."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self._interval == 0:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


def _client(config: SmtpConfig) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        timeout=config.timeout_seconds,
    )


async def send_all(
    messages: Sequence[OutgoingEmail],
    config: SmtpConfig,
    *,
    on_outcome: Callable[[Outcome], Awaitable[None] | None] | None = None,
) -> list[Outcome]:
    """Send every message; one failure is an outcome, not an exception.

    Each worker keeps one SMTP connection open for many transactions and reconnects
    after a failure, so a broken connection costs one message, not the batch.
    """
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(messages)):
        queue.put_nowait(index)
    limiter = RateLimiter(config.rate_per_second)
    outcomes: list[Outcome] = []

    async def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            result = on_outcome(outcome)
            if result is not None:
                await result

    async def worker() -> None:
        client: aiosmtplib.SMTP | None = None
        try:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await limiter.wait()
                try:
                    if client is None or not client.is_connected:
                        client = _client(config)
                        await client.connect()
                    message = messages[index]
                    await client.sendmail(message.sender, [message.recipient], message.data)
                    await report(Outcome(index, True))
                # A non-ASCII address the server cannot take (no SMTPUTF8) fails alone.
                except (aiosmtplib.SMTPException, OSError, UnicodeEncodeError) as exc:
                    await report(Outcome(index, False, f"{type(exc).__name__}: {exc}"[:200]))
                    if client is not None and client.is_connected:
                        client.close()
                    client = None
        finally:
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()

    workers = max(1, min(config.concurrency, len(messages)))
    await asyncio.gather(*(worker() for _ in range(workers)))
    return sorted(outcomes, key=lambda outcome: outcome.index)


async def send_text(config: SmtpConfig, *, sender: str, to: str, subject: str, text: str) -> None:
    """Send one plain-text email; raises `MailNotSent` when the server does not take it."""
    message = build_text_mime(
        sender=sender, recipient=to, headers=[("Subject", subject)], text=text
    )
    [outcome] = await send_all([message], config)
    if not outcome.ok:
        raise MailNotSent(recipient=to, reason=outcome.error or "unknown failure")
