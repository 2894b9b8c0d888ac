"""Webhook destinations: entries and exits POSTed as signed JSON, with retries, and
what to do with a batch after a delivery run.

Every request is signed the Standard Webhooks way, by `accord.core.webhooks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from accord.core.outbound import OutboundRefused
from accord.core.webhooks import RETRY_STATUSES, signed_headers


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
        headers = signed_headers(secret, message_id=message_id, body=body)
        try:
            response = client.post(url, content=body, headers=headers)
            status, error = response.status_code, None
            if response.is_success:
                return Delivery(True, attempt, status)
            if status not in RETRY_STATUSES:
                return Delivery(False, attempt, status, f"refused with HTTP {status}")
        except OutboundRefused as exc:
            # The address will not change on retry: refused once is refused.
            return Delivery(False, attempt, None, str(exc))
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
