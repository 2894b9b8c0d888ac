"""Channels other than email: SMS, WhatsApp, web push and webhooks, behind one interface.

Each adapter speaks a provider's documented HTTP API. The outbox id travels with every
request as its idempotency key, so a retry after a crash can be recognised downstream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from accord.core.outbound import OutboundPolicy, OutboundRefused
from accord.core.outbound import client as outbound_client
from accord.core.webhooks import RETRY_STATUSES, signed_headers


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one person on one channel."""

    id: str
    business_id: str
    profile_id: str
    channel: str
    # Phone number (E.164), push subscription JSON, or webhook URL, by channel.
    to: Any
    body: str
    title: str = ""
    url: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    status: Literal["sent", "failed"]
    provider_id: str = ""
    detail: str = ""
    # A failure that will not change on retry (bad number, expired subscription).
    permanent: bool = False


class Channel(Protocol):
    name: str

    def send(self, message: Outgoing) -> Delivery: ...


def _post(
    client: httpx.Client,
    url: str,
    *,
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None],
    **kwargs: Any,
) -> httpx.Response | str:
    """POST with bounded retries on timeouts and retryable statuses; the last response
    or the last transport error as text."""
    last: httpx.Response | str = "not attempted"
    for attempt in range(attempts):
        try:
            last = client.post(url, **kwargs)
        except OutboundRefused as exc:
            # The address will not change on retry: refused once is refused.
            return str(exc)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last.status_code not in RETRY_STATUSES:
                return last
        if attempt + 1 < attempts:
            sleep(backoff * 2**attempt)
    return last


def _outcome(response: httpx.Response | str, provider_id: Callable[[Any], str]) -> Delivery:
    if isinstance(response, str):
        return Delivery("failed", detail=response)
    if 200 <= response.status_code < 300:
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        return Delivery("sent", provider_id=provider_id(payload))
    permanent = 400 <= response.status_code < 500 and response.status_code not in RETRY_STATUSES
    return Delivery(
        "failed", detail=f"HTTP {response.status_code}: {response.text[:300]}", permanent=permanent
    )


@dataclass
class TwilioSms:
    """SMS through Twilio's Messages resource (form-encoded POST, HTTP Basic auth)."""

    account_sid: str
    auth_token: str
    sender: str
    base_url: str = "https://api.twilio.com"
    attempts: int = 3
    backoff: float = 0.5
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))
    sleep: Callable[[float], None] = time.sleep
    name: str = "sms"

    def send(self, message: Outgoing) -> Delivery:
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        response = _post(
            self.client,
            url,
            attempts=self.attempts,
            backoff=self.backoff,
            sleep=self.sleep,
            auth=(self.account_sid, self.auth_token),
            data={"To": message.to, "From": self.sender, "Body": message.body},
            headers={"I-Twilio-Idempotency-Token": message.id},
        )
        return _outcome(response, lambda p: str(p.get("sid", "")))


@dataclass
class WhatsAppCloud:
    """WhatsApp through Meta's Cloud API (`/{phone-number-id}/messages`, bearer token).

    Outside the 24-hour customer-service window only approved templates may be sent;
    a message whose body starts with `template:` is sent as that template.
    """

    phone_number_id: str
    access_token: str
    base_url: str = "https://graph.facebook.com/v21.0"
    attempts: int = 3
    backoff: float = 0.5
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))
    sleep: Callable[[float], None] = time.sleep
    name: str = "whatsapp"

    def send(self, message: Outgoing) -> Delivery:
        to = str(message.to).lstrip("+")
        payload: dict[str, Any]
        if message.body.startswith("template:"):
            template, _, language = message.body[len("template:") :].partition(":")
            payload = {
                "messaging_product": "whatsapp",
                "to": to,
                "type": "template",
                "template": {"name": template, "language": {"code": language or "en"}},
            }
        else:
            payload = {
                "messaging_product": "whatsapp",
                "to": to,
                "type": "text",
                "text": {"body": message.body, "preview_url": bool(message.url)},
            }
        response = _post(
            self.client,
            f"{self.base_url}/{self.phone_number_id}/messages",
            attempts=self.attempts,
            backoff=self.backoff,
            sleep=self.sleep,
            json=payload,
            headers={"Authorization": f"Bearer {self.access_token}"},
        )
        return _outcome(response, lambda p: str((p.get("messages") or [{}])[0].get("id", "")))


@dataclass
class WebPush:
    """Web push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption
    (RFC 8291), through pywebpush."""

    vapid_private_key: str
    subject: str  # mailto: or https: contact for the push service
    ttl: int = 86400
    # A subscription's endpoint comes from a visitor's browser: only public push services.
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    name: str = "push"

    def send(self, message: Outgoing) -> Delivery:
        from pywebpush import WebPushException, webpush

        subscription = message.to if isinstance(message.to, dict) else json.loads(message.to)
        problems = self.outbound.problems({"endpoint": str(subscription.get("endpoint", ""))})
        if problems:
            return Delivery("failed", detail=problems[0].reason, permanent=True)
        payload = json.dumps(
            {"title": message.title, "body": message.body, "url": message.url, "id": message.id}
        )
        try:
            response = webpush(
                subscription_info=subscription,
                data=payload,
                vapid_private_key=self.vapid_private_key,
                vapid_claims={"sub": self.subject},
                ttl=self.ttl,
                timeout=10,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else 0
            # 404 and 410 mean the subscription is gone for good.
            return Delivery("failed", detail=str(exc)[:300], permanent=status in (404, 410))
        assert not isinstance(response, str)
        return Delivery("sent", provider_id=response.headers.get("Location", ""))


def _public_only_client() -> httpx.Client:
    return outbound_client(OutboundPolicy(), timeout=10)


@dataclass
class Webhook:
    """A JSON POST signed (Standard Webhooks) with the destination's secret, retried on
    failure; the outbox id is the `webhook-id`, the same on every retry."""

    secret: str
    attempts: int = 5
    backoff: float = 0.5
    # Destinations are tenant-given URLs: public addresses only, unless the caller's
    # client carries the operator's allow-list.
    client: httpx.Client = field(
        default_factory=lambda: outbound_client(OutboundPolicy(), timeout=10)
    )
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    name: str = "webhook"

    def send(self, message: Outgoing) -> Delivery:
        body = json.dumps(
            {
                "id": message.id,
                "business_id": message.business_id,
                "profile_id": message.profile_id,
                "message": message.body,
                "data": message.data,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        response = _post(
            self.client,
            str(message.to),
            attempts=self.attempts,
            backoff=self.backoff,
            sleep=self.sleep,
            content=body,
            headers=signed_headers(
                self.secret, message_id=message.id, body=body, timestamp=int(self.clock())
            ),
        )
        return _outcome(response, lambda p: str(p.get("id", "")) if isinstance(p, dict) else "")
