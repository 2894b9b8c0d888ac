"""The client's address behind trusted reverse proxies.

By default no peer is trusted: `X-Forwarded-For` and `X-Forwarded-Proto` are ignored and
the client is the TCP peer (so nobody can pick the address that sign-in throttling and
form rate limits count). With `ACCORD_TRUSTED_PROXIES` (addresses or networks, comma
separated), a request from one of them takes its client from `X-Forwarded-For`, read from
the right and skipping the trusted proxies, and its scheme from `X-Forwarded-Proto`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """`10.0.0.1, 192.168.0.0/16` as networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"ACCORD_TRUSTED_PROXIES: {item!r} is not an address") from exc
    return tuple(networks)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str | None, networks: Sequence[Network]) -> str:
    """The client: the peer, unless it is a trusted proxy, then the right-most address of
    `X-Forwarded-For` that is not itself a trusted proxy."""
    if not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


class TrustedProxies:
    """Pure ASGI middleware rewriting the scope's client and scheme from trusted proxies."""

    def __init__(self, app: ASGIApp, *, trusted: str) -> None:
        self.app = app
        self.networks = parse_networks(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and self.networks and scope.get("client"):
            peer, port = scope["client"]
            if _trusted(peer, self.networks):
                headers = Headers(scope=scope)
                scope = dict(scope)
                client = client_address(peer, headers.get("x-forwarded-for"), self.networks)
                scope["client"] = (client, port)
                proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
                if proto in {"http", "https"} and scope["type"] == "http":
                    scope["scheme"] = proto
        await self.app(scope, receive, send)
