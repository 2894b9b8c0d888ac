"""The outbound-request guard (issue 19, item 1): what it refuses, when, and what the
operator's allow-list lets through, down to the connection and every redirect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from accord.consent.scanner import ScanFailed, scan
from accord.core import outbound
from accord.core.errors import InvalidInput
from accord.core.outbound import OutboundPolicy, OutboundRefused
from accord.core.settings import Settings
from accord.messaging.channels import Outgoing, Webhook
from tests.webhook_receiver import running_receiver


def resolving(names: dict[str, str]) -> outbound.Resolver:
    """A resolver that answers from `names`, as a DNS server the tenant controls would."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError("does not resolve")
        return [names[host]]

    return resolve


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("fd00::1", "private"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
    ],
)
def test_item_1_ssrf_non_public_addresses_are_refused(host: str, kind: str) -> None:
    why = OutboundPolicy().refusal(host, 443)
    assert why is not None and kind in why


def test_item_1_ssrf_public_addresses_pass_and_the_allow_list_opens_the_rest() -> None:
    assert OutboundPolicy().refusal("93.184.215.14", 443) is None
    allowed = OutboundPolicy.from_setting("10.0.0.0/8, 127.0.0.1 ,hooks.internal")
    assert allowed.refusal("10.9.9.9", 443) is None
    assert allowed.refusal("127.0.0.1", 80) is None
    assert allowed.refusal("127.0.0.2", 80) is not None
    assert allowed.refusal("hooks.internal", 80) is None
    assert allowed.refusal("169.254.169.254", 80) is not None


def test_item_1_ssrf_settings_read_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_OUTBOUND_ALLOW", "192.168.1.0/24,crm.lan")
    policy = Settings().outbound_policy()
    assert policy.refusal("192.168.1.7", 443) is None
    assert policy.refusal("crm.lan", 443) is None
    assert policy.refusal("192.168.2.7", 443) is not None


def test_item_1_ssrf_save_time_check_names_the_field_and_resolves_names() -> None:
    policy = OutboundPolicy(resolver=resolving({"hooks.shop.test": "169.254.169.254"}))
    with pytest.raises(InvalidInput) as refused:
        policy.check_url("http://hooks.shop.test/x", field_name="url")
    [problem] = refused.value.problems
    assert problem.field == "url" and "169.254.169.254" in problem.reason
    assert [p.field for p in policy.problems({"a": "http://[::1]:8080/", "b": "ftp://x/"})] == [
        "a",
        "b",
    ]
    # A name that does not resolve yet is left to the check at call time.
    policy.check_url("https://not-yet.shop.test/hook", field_name="url")


def test_item_1_ssrf_call_time_check_follows_dns_to_loopback() -> None:
    with running_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        # The name passed at save time (it did not resolve) and now resolves to loopback.
        policy = OutboundPolicy(resolver=resolving({"hooks.shop.test": "127.0.0.1"}))
        with outbound.client(policy, timeout=5) as client, pytest.raises(OutboundRefused):
            client.post(f"http://hooks.shop.test:{port}/hook", content=b"{}")
        assert receiver.received == []
        # The operator allows the name: the connection goes to the address checked.
        allowed = OutboundPolicy(
            hosts=frozenset({"hooks.shop.test"}),
            resolver=resolving({"hooks.shop.test": "127.0.0.1"}),
        )
        with outbound.client(allowed, timeout=5) as client:
            assert client.post(f"http://hooks.shop.test:{port}/hook", content=b"{}").status_code
        assert len(receiver.received) == 1


@contextmanager
def redirecting_to(location: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_item_1_ssrf_a_redirect_to_a_refused_address_is_refused() -> None:
    with running_receiver() as inside:
        with redirecting_to(inside.url.replace("127.0.0.1", "localhost")) as allowed_url:
            # Only the redirecting server's address is allowed, not where it points.
            policy = OutboundPolicy(
                hosts=frozenset({"127.0.0.1"}), resolver=resolving({"localhost": "127.0.0.1"})
            )
            with outbound.client(policy, timeout=5) as client, pytest.raises(OutboundRefused):
                client.post(allowed_url, content=b"{}", follow_redirects=True)
        assert inside.received == []


def test_item_1_ssrf_journey_webhook_refuses_loopback() -> None:
    with running_receiver() as receiver:
        hook = Webhook(secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", sleep=lambda _: None)
        message = Outgoing(
            id="msg_1", business_id="b", profile_id="p", channel="webhook", to=receiver.url, body=""
        )
        delivery = hook.send(message)
        assert delivery.status == "failed" and "loopback" in delivery.detail
        assert receiver.received == []


def test_item_1_ssrf_the_cookie_scanner_refuses_an_internal_start_address() -> None:
    # Refused before any browser starts: the job's scans carry the operator's policy.
    with pytest.raises(ScanFailed, match="outbound request refused"):
        scan("http://169.254.169.254/latest/meta-data/", pages=1, outbound=OutboundPolicy())
