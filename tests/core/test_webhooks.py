"""Standard Webhooks signing: round trip, tampering, freshness and the published test vector."""

from __future__ import annotations

import time

from accord.core.webhooks import new_secret, signature, signed_headers, signing_key, verify


def test_signature_round_trip_and_tamper() -> None:
    body = b'{"changes":[]}'
    now = int(time.time())
    headers = {
        "webhook-id": "whk_1-9",
        "webhook-timestamp": str(now),
        "webhook-signature": signature("whsec_s", "whk_1-9", now, body),
    }
    assert verify("whsec_s", headers, body)
    assert not verify("whsec_s", headers, body + b" ")
    assert not verify("whsec_s", {**headers, "webhook-timestamp": str(now - 3600)}, body)
    assert not verify("whsec_s", {}, body)


def test_signatures_match_the_standard_webhooks_test_vector() -> None:
    """The specification's published vector: any Standard Webhooks library given the
    destination's secret verifies what Accord signs."""
    assert (
        signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_new_secrets_are_base64_keys_of_32_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(signing_key(first)) == 32
    # A secret from before they were base64 (URL-safe text) still signs with its text.
    assert signing_key("whsec_a-b_c") == b"whsec_a-b_c"


def test_signed_headers_verify_and_keep_the_id_across_retries() -> None:
    body = b'{"id":"out_1"}'
    first = signed_headers("whsec_s", message_id="out_1", body=body, timestamp=1_800_000_000)
    again = signed_headers("whsec_s", message_id="out_1", body=body, timestamp=1_800_000_060)
    assert first["webhook-id"] == again["webhook-id"] == "out_1"
    assert verify("whsec_s", again, body, now=1_800_000_060)
    assert not verify("whsec_s", first, body, now=1_800_000_000 + 3600)
