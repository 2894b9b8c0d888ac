"""Country, region and regime resolution; IP truncation; device classes."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent.geo import (
    EU_EEA,
    country_from,
    country_of_ip,
    device_of,
    regime_for,
    truncate_ip,
)


@pytest.mark.parametrize(
    ("country", "region", "rules", "regime"),
    [
        ("DE", None, {}, "gdpr"),
        ("NO", None, {}, "gdpr"),
        ("GB", None, {}, "uk_gdpr"),
        ("BR", None, {}, "lgpd"),
        ("US", "CA", {}, "ccpa"),
        ("US", "VA", {}, "ccpa"),
        ("US", "AL", {}, "default"),
        ("US", None, {}, "ccpa"),
        ("JP", None, {}, "default"),
        (None, None, {}, "gdpr"),  # unknown location: the strictest regime
        (None, None, {"*": "gdpr"}, "gdpr"),
        (None, None, {"XX": "ccpa", "*": "gdpr"}, "ccpa"),  # XX: unknown location
        ("DE", None, {"*": "ccpa"}, "gdpr"),  # "*" is for everywhere not named
        ("JP", None, {"*": "gdpr"}, "gdpr"),
        ("CH", None, {"CH": "gdpr"}, "gdpr"),
        ("US", "CA", {"US": "default"}, "ccpa"),
        ("US", "CA", {"US-CA": "default"}, "default"),
    ],
)
def test_regime_for(
    country: str | None, region: str | None, rules: dict[str, str], regime: str
) -> None:
    assert regime_for(country, region, rules) == regime


def test_every_eu_eea_country_is_gdpr() -> None:
    assert len(EU_EEA) == 30
    assert {regime_for(c, None, {}) for c in EU_EEA} == {"gdpr"}


def test_the_proxy_header_wins_over_the_ip_table() -> None:
    headers = {"cf-ipcountry": "fr"}
    assert country_from(headers, "8.8.8.8", country_header="CF-IPCountry") == "FR"
    # Unknown / Tor values fall back to the IP table, which runs offline.
    assert country_from({"cf-ipcountry": "XX"}, "8.8.8.8", country_header="CF-IPCountry") == "US"
    assert country_from({}, "81.2.69.160", country_header="CF-IPCountry") == "GB"
    assert country_from({}, "testclient", country_header="CF-IPCountry") is None
    assert country_of_ip("127.0.0.1") is None


@pytest.mark.parametrize(
    ("ip", "truncated"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("garbage", None),
        (None, None),
    ],
)
def test_truncate_ip(ip: str | None, truncated: str | None) -> None:
    assert truncate_ip(ip) == truncated


@given(st.ip_addresses())
def test_truncation_keeps_only_the_network(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    out = truncate_ip(str(address))
    assert out is not None
    cut = ipaddress.ip_address(out)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        assert int(cut) & ((1 << 80) - 1) == 0
        assert int(cut) >> 80 == int(address) >> 80
    else:
        assert int(cut) & 0xFF == 0


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X200) Safari/537.36", "tablet"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0", "desktop"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
        (None, None),
    ],
)
def test_device_of(agent: str | None, device: str | None) -> None:
    assert device_of(agent) == device


def test_item_14_unknown_locations_take_the_strictest_regime_unless_the_business_says() -> None:
    assert regime_for(None, None, {}) == "gdpr"
    assert regime_for(None, None, {"*": "ccpa"}) == "ccpa"
    assert regime_for(None, None, {"XX": "default"}) == "default"
    assert regime_for("JP", None, {}) == "default"
