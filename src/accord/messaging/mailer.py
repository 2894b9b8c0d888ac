"""How this installation sends one message: the mailer, building a message, sending it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from html import escape
from typing import Any

import orjson
from sqlalchemy import update

from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.core.signing import Signer
from accord.messaging.bounces import MESSAGE_ID_HEADER
from accord.messaging.mime import OutgoingEmail, build_mime
from accord.messaging.models import email_messages
from accord.messaging.smtp import Outcome, SmtpConfig, send_all
from accord.messaging.templates import CompiledTemplate, RenderedEmail
from accord.messaging.tracking import track_html
from accord.store.db import Store

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Mailer:
    """How this installation sends: SMTP, link signing, public address, machine rule."""

    smtp: SmtpConfig
    signer: Signer
    base_url: str
    chunk: int = 500
    min_human_delay: timedelta = timedelta(seconds=2)

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(
            # Without a configured server, campaigns go to a local MTA on port 25.
            smtp=SmtpConfig.from_settings(settings),
            signer=Signer(settings.resolved_secret_key()),
            base_url=settings.resolved_public_url(),
            chunk=settings.email_send_chunk,
            min_human_delay=timedelta(seconds=settings.email_min_human_seconds),
        )


def message_id_header(message_id: str, from_address: str) -> str:
    """`<id.random@domain>` (RFC 5322), the domain taken from the sender's address, which
    may carry a display name (`Shop <news@shop.example>`)."""
    _name, address = parseaddr(from_address)
    domain = address.rpartition("@")[2].strip("<>[] ") or "localhost"
    return f"<{message_id}.{uuid.uuid4().hex[:12]}@{domain}>"


@dataclass(frozen=True)
class Footer:
    """Who sends a marketing email and where they are, with the way out: the footer
    CAN-SPAM requires (and EU rules expect) under every marketing message."""

    sender: str
    postal_address: str | None

    def _lines(self) -> list[str]:
        return [self.sender, *([self.postal_address] if self.postal_address else [])]

    def html(self, unsubscribe_url: str) -> str:
        who = " · ".join(escape(line) for line in self._lines())
        return (
            '<p class="accord-footer" style="font-size:12px;color:#666;margin-top:24px">'
            f'{who}<br><a href="{escape(unsubscribe_url)}">Unsubscribe</a></p>'
        )

    def text(self, unsubscribe_url: str) -> str:
        return "\n\n-- \n" + "\n".join(self._lines()) + f"\nUnsubscribe: {unsubscribe_url}\n"


def _before_body_end(html: str, addition: str) -> str:
    body_end = html.lower().rfind("</body>")
    return html + addition if body_end == -1 else html[:body_end] + addition + html[body_end:]


def build_message(
    *,
    message_id: str,
    template: CompiledTemplate | RenderedEmail,
    context: dict[str, Any],
    to: str,
    from_address: str,
    mailer: Mailer,
    subject_prefix: str = "",
    tracking: bool = True,
    unsubscribe: bool = True,
    footer: Footer | None = None,
) -> tuple[OutgoingEmail, list[str], str]:
    """The raw message, the links it holds and its subject; `context` is what the
    template sees (`personalisation(...)` for marketing email), plus `unsubscribe_url`
    when the message carries one. A `footer` goes under the HTML and the text."""
    unsubscribe_url = ""
    if unsubscribe:
        token = mailer.signer.dumps("unsubscribe", message_id)
        unsubscribe_url = f"{mailer.base_url}/e/u/{token}"
        context = {**context, "unsubscribe_url": unsubscribe_url}
    # A message another context already rendered (a journey's) is taken as it is.
    rendered = template if isinstance(template, RenderedEmail) else template.render(context)
    subject = subject_prefix + rendered.subject
    html, links = rendered.html, []
    if tracking:
        tracked = track_html(
            html, message_id=message_id, base_url=mailer.base_url, signer=mailer.signer
        )
        html, links = tracked.html, tracked.links
    text = rendered.text or subject
    if footer is not None and unsubscribe:
        html = _before_body_end(html, footer.html(unsubscribe_url))
        text += footer.text(unsubscribe_url)
    headers = [
        ("Subject", subject),
        ("Message-ID", message_id_header(message_id, from_address)),
        (MESSAGE_ID_HEADER, message_id),
    ]
    if unsubscribe:
        headers.append(("List-Unsubscribe", f"<{unsubscribe_url}>"))
        headers.append(("List-Unsubscribe-Post", ONE_CLICK))
    message = build_mime(
        sender=from_address,
        recipient=to,
        headers=headers,
        text=text,
        html=html,
    )
    return message, links, subject


async def send_transactional(
    store: Store,
    *,
    business_id: str,
    kind: str,
    to: str,
    from_address: str,
    template: CompiledTemplate,
    context: dict[str, Any],
    mailer: Mailer,
) -> tuple[str, Outcome]:
    """One message that is not marketing (a double opt-in confirmation): no consent check,
    no tracking, no unsubscribe header; kept in `email_messages` as proof it was sent."""
    message_id = new_id("msg")
    outcome = await _send_one(
        store,
        business_id=business_id,
        kind=kind,
        message_id=message_id,
        to=to,
        built=build_message(
            message_id=message_id,
            template=template,
            context=context,
            to=to,
            from_address=from_address,
            mailer=mailer,
            tracking=False,
            unsubscribe=False,
        ),
        mailer=mailer,
    )
    return message_id, outcome


async def send_rendered(
    store: Store,
    *,
    business_id: str,
    kind: str,
    message_id: str,
    to: str,
    rendered: RenderedEmail,
    from_address: str,
    mailer: Mailer,
) -> Outcome:
    """One marketing message rendered elsewhere (a journey step): tracked, with one-click
    unsubscribe, kept in `email_messages` under the caller's id so opens, clicks and
    unsubscribes count. The caller has checked consent and suppression."""
    return await _send_one(
        store,
        business_id=business_id,
        kind=kind,
        message_id=message_id,
        to=to,
        built=build_message(
            message_id=message_id,
            template=rendered,
            context={},
            to=to,
            from_address=from_address,
            mailer=mailer,
        ),
        mailer=mailer,
    )


async def _send_one(
    store: Store,
    *,
    business_id: str,
    kind: str,
    message_id: str,
    to: str,
    built: tuple[OutgoingEmail, list[str], str],
    mailer: Mailer,
) -> Outcome:
    """Keep one message in `email_messages`, send it, and record how it went."""
    message, links, subject = built

    def keep() -> None:
        with store.write() as conn:
            conn.execute(
                email_messages.insert().values(
                    id=message_id,
                    business_id=business_id,
                    kind=kind,
                    email=to,
                    subject=subject,
                    links=orjson.dumps(links).decode(),
                    status="queued",
                    created_at=utcnow(),
                )
            )

    def settle(outcome: Outcome) -> None:
        with store.write() as conn:
            conn.execute(
                update(email_messages)
                .where(email_messages.c.id == message_id)
                .values(
                    status="sent" if outcome.ok else "failed",
                    reason=outcome.error,
                    sent_at=utcnow() if outcome.ok else None,
                )
            )

    await asyncio.to_thread(keep)
    [outcome] = await send_all([message], mailer.smtp)
    await asyncio.to_thread(settle, outcome)
    return outcome
