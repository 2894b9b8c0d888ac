"""The outbound-request guard: a URL a tenant gave is fetched only at a public address,
or at one the operator names in `ACCORD_OUTBOUND_ALLOW`.

Checked twice: when the URL is saved (`check_url`, a 400 naming the field) and when a
connection is opened (`client`): the host is resolved, every address it resolves to is
checked, and the connection goes to the address that was checked, so a DNS answer that
changes in between (rebinding) or a redirect to another host cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from accord.core.errors import FieldProblem, InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) to the addresses it resolves to; `socket.getaddrinfo` unless a test says.
Resolver = Callable[[str, int], list[str]]


class OutboundRefused(httpx.TransportError):
    """The guard refused to connect: the host is, or resolves to, a non-public address."""


def system_resolver(host: str, port: int) -> list[str]:
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in found]


def _why_not_public(address: Address) -> str | None:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is not None:
        return _why_not_public(mapped)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses outbound requests may reach: public ones, and what the operator
    allows by network (`10.0.0.0/8`, `127.0.0.1`) or by host name (`hooks.internal`)."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_setting(
        cls, allow: str | Iterable[str], resolver: Resolver | None = None
    ) -> OutboundPolicy:
        """`ACCORD_OUTBOUND_ALLOW`: networks and host names, separated by commas."""
        entries = allow.split(",") if isinstance(allow, str) else list(allow)
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts), resolver or system_resolver)

    def refusal(self, host: str, port: int, *, unresolved_ok: bool = False) -> str | None:
        """Why a connection to `host` must not be opened, or None when it may."""
        name = host.lower().rstrip(".").strip("[]")
        if name in self.hosts:
            return None
        try:
            addresses = [ipaddress.ip_address(name)]
        except ValueError:
            try:
                addresses = [
                    ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(name, port)
                ]
            except (OSError, UnicodeError):
                return None if unresolved_ok else f"{host} does not resolve"
        if not addresses:
            return None if unresolved_ok else f"{host} does not resolve"
        for address in addresses:
            why = _why_not_public(address)
            if why is not None and not any(address in net for net in self.networks):
                where = f"{host} is" if str(address) == name else f"{host} resolves to {address},"
                return f"{where} {why}; ACCORD_OUTBOUND_ALLOW can allow it"
        return None

    def address_for(self, host: str, port: int) -> str:
        """The checked address to connect to for `host`; OutboundRefused when refused."""
        name = host.lower().rstrip(".").strip("[]")
        why = self.refusal(host, port)
        if why is not None:
            raise OutboundRefused(f"outbound request refused: {why}")
        try:
            return str(ipaddress.ip_address(name))
        except ValueError:
            return self.resolver(name, port)[0].split("%")[0]

    def check_url(self, url: str, *, field_name: str) -> None:
        """At save time: an http(s) URL whose host is not, and does not resolve to, a
        refused address. A name that does not resolve yet is checked when it is called."""
        problems = self.problems({field_name: url})
        if problems:
            raise InvalidInput(problems)

    def problems(self, urls: Mapping[str, str]) -> list[FieldProblem]:
        """The save-time problems of several URLs, by field."""
        out: list[FieldProblem] = []
        for field_name, url in urls.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                out.append(FieldProblem(field_name, "must be an http(s) URL with a host"))
                continue
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                out.append(FieldProblem(field_name, "has an invalid port"))
                continue
            why = self.refusal(parts.hostname, port, unresolved_ok=True)
            if why is not None:
                out.append(FieldProblem(field_name, f"refused: {why}"))
        return out


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to an address the policy checked, whatever host was asked for."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        address = self._policy.address_for(host, port)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over the guarded backend; TLS still checks the host's name."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(trust_env=False)
        # A proxy would connect for us, unchecked: the guarded pool has none.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_GuardedBackend(policy),
        )


def client(policy: OutboundPolicy, *, timeout: float) -> httpx.Client:
    """The one way to fetch a tenant-given URL: every connection, redirects included,
    goes through the guard."""
    return httpx.Client(transport=GuardedTransport(policy), timeout=timeout, trust_env=False)
