"""Webhook destinations: entries and exits POSTed as signed JSON, with retries, and
what to do with a batch after a delivery run.

The signature follows the Standard Webhooks scheme: header `webhook-signature` holds
`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed by the destination's
secret, with `webhook-id` and `webhook-timestamp` beside it, so receivers can check
origin and freshness and drop replays. A secret is `whsec_` and the key in base64, and
the HMAC key is the decoded bytes: what every Standard Webhooks library does with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def new_secret() -> str:
    """A destination's signing secret: 32 random bytes, written as Standard Webhooks does."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for: the bytes its base64 part encodes."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        # Destinations added before secrets were base64 hold URL-safe text; their
        # receivers were told to key the HMAC with the text itself.
        return secret.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver does: recompute the signature and check the timestamp is fresh."""
    try:
        timestamp = int(headers["webhook-timestamp"])
        expected = signature(secret, headers["webhook-id"], timestamp, body)
    except (KeyError, ValueError):
        return False
    fresh = abs(time.time() - timestamp) <= tolerance
    offered = headers.get("webhook-signature", "").split()
    return fresh and any(hmac.compare_digest(expected, s) for s in offered)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None
    error: str | None = None


def deliver(
    client: httpx.Client,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: bytes,
    attempts: int = 5,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST once, and again with exponential backoff on timeouts, 429 and 5xx."""
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
        }
        try:
            response = client.post(url, content=body, headers=headers)
            status, error = response.status_code, None
            if response.is_success:
                return Delivery(True, attempt, status)
            if status not in RETRY_STATUSES:
                return Delivery(False, attempt, status, f"refused with HTTP {status}")
        except httpx.TransportError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1))
    return Delivery(False, attempts, status, error or f"HTTP {status} after {attempts} attempts")


def refused(status: int | None) -> bool:
    """The receiver answered that this message will never be accepted (400, 401, 404,
    410, 413, 422…): sending it again cannot help. 408, 425 and 429 only ask for later."""
    return status is not None and 400 <= status < 500 and status not in RETRY_STATUSES


Settlement = Literal["delivered", "retry", "park"]


def settle(delivery: Delivery, *, failures: int, dead_letter_after: int) -> Settlement:
    """What becomes of the pending batch after a delivery run.

    `failures` counts the failed runs on this batch, this one included. A refused batch
    is parked at once; one that keeps failing is parked after `dead_letter_after` runs,
    so a destination that is down or broken no longer holds back the changes after it.
    """
    if delivery.delivered:
        return "delivered"
    if refused(delivery.status) or failures >= dead_letter_after:
        return "park"
    return "retry"
