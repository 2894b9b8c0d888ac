"""CORS for the public write-key endpoints, in one place, so browsers on any site can call them.

Under `PUBLIC_PREFIXES` (collection `/v1/track` ... `/v1/t`, `/v1/consent*`,
`/v1/recommendations`, `/v1/experiments/{key}/assignment`: every `/v1/` route takes a
write key, none an admin token or cookie):

- a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, before
  routing, with the methods and the request headers browser libraries send
  (analytics.js, RudderStack's SDK, accord.js, cmp.js). A preflight carries no write key,
  so it is refused (403, no CORS headers) only when no enabled pixel allows the origin;
  the pixel of the write key is checked on the request itself (`WriteKeyCache.resolve`);
- every other response, errors included, gets `Access-Control-Allow-Origin: *` (the same
  for every caller, so shared caches need no `Vary: Origin`), so the
  page can read a 400's `problems` or a 401; a refused origin is told so with a 403 it
  can read too.

Credentials are never allowed: write keys are not cookies, and `*` forbids them anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accord.accounts.service import origin_allowed_anywhere
from accord.store.db import Store

# `/v1/` holds only write-key endpoints; the names listed in the module docstring are all
# under it (tests/web/test_cors.py checks each).
PUBLIC_PREFIXES = ("/v1/",)
ALLOW_METHODS = "GET, POST, OPTIONS"
# What the libraries send beyond the CORS-safelisted headers: RudderStack's SDK adds
# Authorization, AnonymousId, SentAt and its retry headers (Rsa-*), cmp.js reads Sec-GPC,
# gzip senders add Content-Encoding.
ALLOW_HEADERS = ", ".join(
    (
        "Content-Type",
        "Authorization",
        "Content-Encoding",
        "Sec-GPC",
        "AnonymousId",
        "SentAt",
        "Rsa-Recovered",
        "Rsa-Retry-Attempt",
        "Rsa-Retry-Reason",
        "Rsa-Since-First-Attempt",
        "Rsa-Since-Last-Attempt",
    )
)
EXPOSE_HEADERS = "Retry-After"
MAX_AGE_SECONDS = "86400"
# How long a preflight's answer about an origin is remembered (as write keys are).
ORIGIN_CACHE_SECONDS = 30.0
MAX_REMEMBERED_ORIGINS = 10_000


def is_public(path: str) -> bool:
    return path.startswith(PUBLIC_PREFIXES)


@dataclass
class _OriginCache:
    ttl_seconds: float
    entries: dict[str, tuple[float, bool]] = field(default_factory=dict)

    def allowed(self, store: Store, origin: str) -> bool:
        now = time.monotonic()
        hit = self.entries.get(origin)
        if hit is not None and hit[0] > now:
            return hit[1]
        answer = origin_allowed_anywhere(store, origin)
        if len(self.entries) >= MAX_REMEMBERED_ORIGINS:
            self.entries.clear()
        self.entries[origin] = (now + self.ttl_seconds, answer)
        return answer


class PublicCors:
    """Pure ASGI middleware (responses stay streamed)."""

    def __init__(self, app: ASGIApp, ttl_seconds: float = ORIGIN_CACHE_SECONDS) -> None:
        self.app = app
        self.origins = _OriginCache(ttl_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_public(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if origin is not None and preflight:
            response = await self._preflight(scope, origin)
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = "*"
                out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, origin: str) -> Response:
        store: Store = scope["app"].state.accord.store
        if not await run_in_threadpool(self.origins.allowed, store, origin):
            return Response(
                f"origin {origin[:200]} is not allowed by any pixel's allowed origins",
                status_code=403,
                media_type="text/plain",
            )
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE_SECONDS,
                "Vary": "Origin",
            },
        )
