"""Security headers on every response, and a `Retry-After` on every 429.

Every response gets `X-Content-Type-Options: nosniff` and a `Referrer-Policy`; HTML pages
also get a Content-Security-Policy that allows no inline script (every script of the UI is
a file under /static, or plotly.js and cmp.js served by Accord) and says who may frame
them, and an HSTS header when served over https (directly or through a trusted proxy).

Framing: pages may not be framed (`frame-ancestors 'none'`, `X-Frame-Options: DENY`),
except the consent banner preview, which the designer page frames from the same origin,
and the hosted landing pages `/l/{slug}`, which businesses embed in their own sites with
the form's iframe snippet. The confirmation and download links under /l/ are not framed.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Styles may be inline: plotly.js sets style attributes and adds <style> elements.
# Images may come from any https address (business logos) or data: URLs (QR codes).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; font-src 'self' data:; connect-src 'self'; "
    "frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors {ancestors}"
)
REFERRER_POLICY = "same-origin"
HSTS = "max-age=31536000; includeSubDomains"
# A 429 whose handler did not say when to come back: one minute.
DEFAULT_RETRY_AFTER = "60"

_SAME_ORIGIN_FRAMED = re.compile(r"^/consent/properties/[^/]+/preview$")
# /l/{slug} (not /l/confirm/... or /l/download/...): embedded by other sites.
_EMBEDDED = re.compile(r"^/l/(?!confirm/|download/)[^/]+/?$")


def frame_ancestors(path: str) -> str:
    """Who may frame the page at `path`."""
    if _SAME_ORIGIN_FRAMED.match(path):
        return "'self'"
    if _EMBEDDED.match(path):
        return "*"
    return "'none'"


def content_security_policy(path: str) -> str:
    return _CSP.format(ancestors=frame_ancestors(path))


class SecurityHeaders:
    """Pure ASGI middleware (no buffering: streamed responses stay streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", REFERRER_POLICY)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", content_security_policy(path))
                    ancestors = frame_ancestors(path)
                    if ancestors != "*":
                        options = "SAMEORIGIN" if ancestors == "'self'" else "DENY"
                        headers.setdefault("X-Frame-Options", options)
                if message["status"] == 429:
                    headers.setdefault("Retry-After", DEFAULT_RETRY_AFTER)
            await send(message)

        await self.app(scope, receive, send_with_headers)
