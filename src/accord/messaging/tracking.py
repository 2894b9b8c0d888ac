"""Open pixel, click redirect and unsubscribe links with signed tokens; machine opens."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape, unescape
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from accord.core.errors import InvalidLink, LinkExpired

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


class Signer:
    """Signs and checks the tokens of tracking, unsubscribe and other public links."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._by_salt: dict[str, URLSafeSerializer] = {}

    def _serializer(self, salt: str) -> URLSafeSerializer:
        serializer = self._by_salt.get(salt)
        if serializer is None:
            serializer = self._by_salt[salt] = URLSafeSerializer(self._secret, salt=salt)
        return serializer

    def dumps(self, salt: str, payload: Any) -> str:
        return str(self._serializer(salt).dumps(payload))

    def dumps_timed(self, salt: str, payload: Any) -> str:
        return str(URLSafeTimedSerializer(self._secret, salt=salt).dumps(payload))

    def loads_timed(self, salt: str, token: str, *, max_age_seconds: int, what: str) -> Any:
        """The payload of a link that expires; expired and forged links differ in error."""
        serializer = URLSafeTimedSerializer(self._secret, salt=salt)
        try:
            return serializer.loads(token, max_age=max_age_seconds)
        except SignatureExpired as exc:
            raise LinkExpired(what) from exc
        except BadSignature as exc:
            raise InvalidLink(f"the {what} link is not valid: it was changed or cut") from exc

    def loads(self, salt: str, token: str) -> Any:
        try:
            return self._serializer(salt).loads(token)
        except BadSignature as exc:
            raise InvalidLink("the link is not valid: it was changed or cut") from exc


@dataclass(frozen=True)
class TrackedHtml:
    html: str
    links: list[str]


def track_html(html: str, *, message_id: str, base_url: str, signer: Signer) -> TrackedHtml:
    """Send every web link through the click redirect and add the open pixel."""
    links: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        target = unescape(match.group(3))
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
