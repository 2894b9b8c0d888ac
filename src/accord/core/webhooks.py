"""Outbound webhooks: Standard Webhooks signing (standardwebhooks.com) and when to retry.

Header `webhook-signature` holds `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
keyed by the destination's secret, with `webhook-id` and `webhook-timestamp` beside it,
so receivers can check origin and freshness and drop replays. A secret is `whsec_` and
the key in base64, and the HMAC key is the decoded bytes: what every Standard Webhooks
library does with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)

# Answers that ask the sender to try again later: timeouts, too early, too many, 5xx.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def new_secret() -> str:
    """A destination's signing secret: 32 random bytes, written as Standard Webhooks does."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: the bytes its base64 part encodes."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        # Secrets made before they were base64 hold URL-safe text; their receivers were
        # told to key the HMAC with the text itself.
        return secret.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str, *, message_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one signed JSON POST; `message_id` stays the same across retries."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret, message_id, stamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: recompute the signature and check the timestamp is fresh."""
    try:
        timestamp = int(headers["webhook-timestamp"])
        expected = signature(secret, headers["webhook-id"], timestamp, body)
    except (KeyError, ValueError):
        return False
    fresh = abs((time.time() if now is None else now) - timestamp) <= tolerance
    offered = headers.get("webhook-signature", "").split()
    return fresh and any(hmac.compare_digest(expected, s) for s in offered)
