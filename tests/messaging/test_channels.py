"""Each channel adapter against a local HTTP server that checks what the provider would."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.core import outbound
from accord.core.outbound import OutboundPolicy
from accord.core.webhooks import verify
from accord.messaging.channels import (
    Outgoing,
    TwilioSms,
    Webhook,
    WebPush,
    WhatsAppCloud,
)

# The test providers listen on loopback: the operator allows it here.
LOOPBACK = OutboundPolicy.from_setting("127.0.0.1")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Provider:
    """A local stand-in for a provider: records requests, answers from a script."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    # Status codes to answer with, in order; then 201 for ever.
    script: list[int] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state.requests.append(
                Recorded(
                    "POST",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
            )
            status = state.script.pop(0) if state.script else 201
            body = json.dumps(state.reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Location", f"{state.url}/messages/1")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _message(to: Any, body: str = "Your cart misses you", **extra: Any) -> Outgoing:
    return Outgoing(
        id="msg_1", business_id="biz", profile_id="p1", channel="x", to=to, body=body, **extra
    )


def test_twilio_sms_posts_the_documented_form(provider: Provider) -> None:
    provider.reply = {"sid": "SM123"}
    sms = TwilioSms(
        account_sid="AC1", auth_token="secret", sender="+15005550006", base_url=provider.url
    )
    result = sms.send(_message("+447700900123"))
    assert (result.status, result.provider_id) == ("sent", "SM123")
    [request] = provider.requests
    assert request.path == "/2010-04-01/Accounts/AC1/Messages.json"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC1:secret").decode()
    assert parse_qs(request.body.decode()) == {
        "To": ["+447700900123"],
        "From": ["+15005550006"],
        "Body": ["Your cart misses you"],
    }


def test_retryable_failures_are_retried_then_reported(provider: Provider) -> None:
    provider.script = [503, 503, 503]
    sms = TwilioSms(
        account_sid="AC1", auth_token="t", sender="+1", base_url=provider.url, sleep=lambda _: None
    )
    result = sms.send(_message("+447700900123"))
    assert result.status == "failed" and "503" in result.detail and not result.permanent
    assert len(provider.requests) == 3


def test_a_rejected_number_fails_permanently_without_retry(provider: Provider) -> None:
    provider.script = [400]
    sms = TwilioSms(
        account_sid="AC1", auth_token="t", sender="+1", base_url=provider.url, sleep=lambda _: None
    )
    result = sms.send(_message("+0"))
    assert result.status == "failed" and result.permanent
    assert len(provider.requests) == 1


def test_whatsapp_cloud_sends_text_and_templates(provider: Provider) -> None:
    provider.reply = {"messages": [{"id": "wamid.1"}]}
    channel = WhatsAppCloud(phone_number_id="1055", access_token="tok", base_url=provider.url)
    assert channel.send(_message("+393331234567")).provider_id == "wamid.1"
    channel.send(_message("+393331234567", body="template:cart_reminder:it"))
    text, template = (json.loads(r.body) for r in provider.requests)
    assert provider.requests[0].path == "/1055/messages"
    assert provider.requests[0].headers["authorization"] == "Bearer tok"
    assert text == {
        "messaging_product": "whatsapp",
        "to": "393331234567",
        "type": "text",
        "text": {"body": "Your cart misses you", "preview_url": False},
    }
    assert template["template"] == {"name": "cart_reminder", "language": {"code": "it"}}


def test_webhook_is_signed_the_standard_webhooks_way(provider: Provider) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    hook = Webhook(
        secret=secret,
        clock=lambda: 1_800_000_000,
        client=outbound.client(LOOPBACK, timeout=5),
    )
    result = hook.send(_message(f"{provider.url}/hook", data={"cart": "c1"}))
    assert result.status == "sent"
    [request] = provider.requests
    headers = {
        k: request.headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "1800000000"
    assert verify(secret, headers, request.body, now=1_800_000_010)
    assert not verify(
        "whsec_" + base64.b64encode(b"other").decode(), headers, request.body, now=1_800_000_000
    )
    assert not verify(secret, headers, request.body + b" ", now=1_800_000_000)
    assert not verify(secret, headers, request.body, now=1_800_003_600)
    assert json.loads(request.body)["data"] == {"cart": "c1"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_web_push_payload_decrypts_with_the_subscription_keys(provider: Provider) -> None:
    # The browser's side: a P-256 key pair and an auth secret make the subscription.
    receiver = ec.generate_private_key(ec.SECP256R1())
    auth_secret = os.urandom(16)
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    subscription = {
        "endpoint": f"{provider.url}/push/abc",
        "keys": {"p256dh": _b64(public), "auth": _b64(auth_secret)},
    }
    vapid = ec.generate_private_key(ec.SECP256R1())
    vapid_raw = vapid.private_numbers().private_value.to_bytes(32, "big")
    push = WebPush(
        vapid_private_key=_b64(vapid_raw), subject="mailto:ops@example.com", outbound=LOOPBACK
    )

    result = push.send(_message(subscription, title="Cart", url="https://shop.example/cart"))

    assert result.status == "sent"
    [request] = provider.requests
    assert request.path == "/push/abc"
    assert request.headers["content-encoding"] == "aes128gcm"
    plain = http_ece.decrypt(
        request.body, private_key=receiver, auth_secret=auth_secret, version="aes128gcm"
    )
    assert json.loads(plain) == {
        "title": "Cart",
        "body": "Your cart misses you",
        "url": "https://shop.example/cart",
        "id": "msg_1",
    }
    # VAPID: `vapid t=<JWT>, k=<public key>`; the JWT verifies with that key.
    scheme, _, params = request.headers["authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid"
    key = base64.urlsafe_b64decode(fields["k"] + "==")
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    claims = jwt.decode(fields["t"], verifier, algorithms=["ES256"], audience=provider.url)
    assert claims["sub"] == "mailto:ops@example.com"


def test_an_expired_push_subscription_fails_permanently(provider: Provider) -> None:
    provider.script = [410]
    receiver = ec.generate_private_key(ec.SECP256R1())
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    subscription = {
        "endpoint": f"{provider.url}/push/gone",
        "keys": {"p256dh": _b64(public), "auth": _b64(os.urandom(16))},
    }
    vapid_raw = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    push = WebPush(
        vapid_private_key=_b64(vapid_raw.to_bytes(32, "big")),
        subject="mailto:x@y.z",
        outbound=LOOPBACK,
    )
    result = push.send(_message(subscription))
    assert result.status == "failed" and result.permanent
