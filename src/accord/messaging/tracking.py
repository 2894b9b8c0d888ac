"""Signed open, click and unsubscribe links; machine opens; recording what people do."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape, unescape
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, select

from accord.core.clock import utcnow
from accord.core.errors import InvalidLink
from accord.core.signing import Signer
from accord.messaging.models import email_events, email_messages
from accord.messaging.ports import Wiring
from accord.messaging.service import is_unsubscribed, suppress_email

if TYPE_CHECKING:
    from accord.messaging.mailer import Mailer

# href="http(s)://..." of anchors in rendered HTML; other schemes (mailto:, tel:) stay.
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)

# Apple Mail Privacy Protection fetches every image through Apple's proxies as soon as
# a message arrives, whether or not it is read. Apple egresses from its own 17.0.0.0/8.
APPLE_PROXY_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
# Security gateways and link scanners that fetch every link and image of a message.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "forcepoint",
    "trendmicro",
    "bingpreview",
    "microsoft office protocol discovery",
    "safelinks",
    "python-requests",
    "python-httpx",
    "go-http-client",
    "curl/",
    "wget/",
    "headlesschrome",
    "bot",
    "spider",
    "crawler",
)


@dataclass(frozen=True)
class TrackedHtml:
    html: str
    links: list[str]


def track_html(html: str, *, message_id: str, base_url: str, signer: Signer) -> TrackedHtml:
    """Send every web link through the click redirect and add the open pixel."""
    links: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        target = unescape(match.group(3))
        if target.startswith(f"{base_url}/e/u/"):
            return match.group(0)  # the unsubscribe link is no click to count
        index = len(links)
        links.append(target)
        token = signer.dumps("click", [message_id, index])
        return f"{match.group(1)}{match.group(2)}{base_url}/e/c/{token}{match.group(2)}"

    tracked = _HREF.sub(rewrite, html)
    pixel_token = signer.dumps("open", message_id)
    pixel = (
        f'<img src="{escape(base_url)}/e/o/{pixel_token}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px">'
    )
    body_end = tracked.lower().rfind("</body>")
    if body_end == -1:
        tracked += pixel
    else:
        tracked = tracked[:body_end] + pixel + tracked[body_end:]
    return TrackedHtml(html=tracked, links=links)


def machine_reason(
    *,
    user_agent: str | None,
    ip: str | None,
    sent_at: datetime | None,
    occurred_at: datetime,
    min_human_delay: timedelta,
) -> str | None:
    """Why an open or click was made by a machine, or None when a person made it."""
    agent = (user_agent or "").lower()
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is not None and any(address in net for net in APPLE_PROXY_NETWORKS):
            return "apple_privacy_proxy"
    if not agent:
        return "no_user_agent"
    for marker in SCANNER_AGENTS:
        if marker in agent:
            return "link_scanner"
    if sent_at is not None and occurred_at - sent_at < min_human_delay:
        return "too_soon_after_delivery"
    return None


def _message(conn: Connection, message_id: str) -> Any:
    row = conn.execute(select(email_messages).where(email_messages.c.id == message_id)).first()
    if row is None:
        raise InvalidLink("the link points to no message")
    return row


def _track(
    conn: Connection,
    *,
    mailer: Mailer,
    wiring: Wiring | None,
    message: Any,
    kind: str,
    detail: str | None,
    user_agent: str | None,
    ip: str | None,
    now: datetime | None,
) -> bool:
    now = now or utcnow()
    reason = machine_reason(
        user_agent=user_agent,
        ip=ip,
        sent_at=message.sent_at,
        occurred_at=now,
        min_human_delay=mailer.min_human_delay,
    )
    conn.execute(
        email_events.insert().values(
            business_id=message.business_id,
            message_id=message.id,
            campaign_id=message.campaign_id,
            kind=kind,
            machine=reason is not None,
            detail=" ".join(p for p in (detail, reason) if p)[:500] or None,
            user_agent=(user_agent or "")[:500] or None,
            ip=ip,
            occurred_at=now,
        )
    )
    if reason is None and wiring is not None and wiring.on_engagement is not None:
        wiring.on_engagement(conn, business_id=message.business_id, email=message.email, kind=kind)
    return reason is None


def record_open(
    conn: Connection,
    *,
    mailer: Mailer,
    token: str,
    user_agent: str | None,
    ip: str | None,
    now: datetime | None = None,
    wiring: Wiring | None = None,
) -> bool:
    """Record a pixel hit; True when a person (not a machine) opened the message."""
    message_id = mailer.signer.loads("open", token)
    if not isinstance(message_id, str):
        raise InvalidLink("the link is not valid")
    message = _message(conn, message_id)
    return _track(
        conn,
        mailer=mailer,
        wiring=wiring,
        message=message,
        kind="open",
        detail=None,
        user_agent=user_agent,
        ip=ip,
        now=now,
    )


def record_click(
    conn: Connection,
    *,
    mailer: Mailer,
    token: str,
    user_agent: str | None,
    ip: str | None,
    now: datetime | None = None,
    wiring: Wiring | None = None,
) -> str:
    """Record a click and return where it goes: only ever one of the message's links."""
    payload = mailer.signer.loads("click", token)
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], str)
        or not isinstance(payload[1], int)
    ):
        raise InvalidLink("the link is not valid")
    message = _message(conn, payload[0])
    links = orjson.loads(message.links)
    if not 0 <= payload[1] < len(links):
        raise InvalidLink("the link points to nothing in its message")
    target = str(links[payload[1]])
    _track(
        conn,
        mailer=mailer,
        wiring=wiring,
        message=message,
        kind="click",
        detail=target,
        user_agent=user_agent,
        ip=ip,
        now=now,
    )
    return target


@dataclass(frozen=True)
class Subscription:
    email: str
    unsubscribed: bool


def subscription(conn: Connection, *, mailer: Mailer, token: str) -> Subscription:
    message_id = mailer.signer.loads("unsubscribe", token)
    message = _message(conn, str(message_id))
    found = is_unsubscribed(conn, business_id=message.business_id, email=message.email)
    return Subscription(email=message.email, unsubscribed=found)


def unsubscribe(
    conn: Connection,
    *,
    mailer: Mailer,
    token: str,
    wiring: Wiring,
    via: str,
    ip: str | None,
    now: datetime | None = None,
) -> Subscription:
    """Stop marketing email to the message's recipient (one-click or preference page)."""
    message_id = mailer.signer.loads("unsubscribe", token)
    now = now or utcnow()
    message = _message(conn, str(message_id))
    if not is_unsubscribed(conn, business_id=message.business_id, email=message.email):
        suppress_email(
            conn, business_id=message.business_id, email=message.email, reason="unsubscribed"
        )
        conn.execute(
            email_events.insert().values(
                business_id=message.business_id,
                message_id=message.id,
                campaign_id=message.campaign_id,
                kind="unsubscribe",
                machine=False,
                detail=via,
                ip=ip,
                occurred_at=now,
            )
        )
        if wiring.record_consent is not None:
            wiring.record_consent(
                conn,
                business_id=message.business_id,
                anonymous_id=message.anonymous_id,
                user_id=message.user_id,
                purposes={wiring.consent_purpose: False},
                source=f"email_unsubscribe:{via}",
                evidence={"message_id": message.id, "ip": ip, "at": now.isoformat()},
            )
    return Subscription(email=message.email, unsubscribed=True)
