"""Audience webhook requests pass the official Standard Webhooks library's verification."""

from __future__ import annotations

import httpx
import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from accord.accounts.models import Bootstrap
from accord.audiences import definitions, destinations, webhook
from accord.audiences.models import WebhookIn
from accord.core.outbound import OutboundPolicy
from accord.store.db import Store


def test_item_16_audience_webhook_signatures_pass_standardwebhooks(
    store: Store, keys: Bootstrap
) -> None:
    with store.write() as conn:
        definitions.ensure_predefined(conn, business_id=keys.business_id)
        hook = destinations.add_webhook(
            conn,
            business_id=keys.business_id,
            audience="cart-abandoners",
            webhook_in=WebhookIn(url="https://hooks.example/accord"),
            outbound=OutboundPolicy(),
        )
    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    body = orjson.dumps({"changes": [{"change": "entered", "user_id": "eve"}]})
    with httpx.Client(transport=httpx.MockTransport(receiver)) as client:
        delivery = webhook.deliver(
            client,
            url="https://hooks.example/accord",
            secret=hook["secret"],
            message_id="chg_1",
            body=body,
        )
    assert delivery.delivered
    [request] = received
    headers = dict(request.headers)
    # What a receiver written with the reference library does with the secret it was shown.
    assert Webhook(hook["secret"]).verify(request.content, headers) == {
        "changes": [{"change": "entered", "user_id": "eve"}]
    }
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "b3RoZXIgc2VjcmV0IGtleSBvZiAzMiBieXRlcyEhISE=").verify(
            request.content, headers
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(request.content + b" ", headers)
