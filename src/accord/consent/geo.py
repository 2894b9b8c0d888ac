"""Which privacy regime applies where: country from the proxy or the IP, then geo rules.

Country: the proxy's header (`ACCORD_CONSENT_COUNTRY_HEADER`, default `CF-IPCountry`)
wins; without it, the connecting IP is looked up offline in the regional-registry
table that the `iptocc` package ships. Regime: the most specific rule wins ("CC-REGION",
then "CC", then "*"), the business's own rule before the default at each level. A visitor
whose location is unknown falls under the business's rule "XX" (Cloudflare's code for an
unknown country), else its "*" rule, else the strictest regime, `gdpr`: the banner and
collection alike, so nothing optional runs or is kept before a choice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import iptocc

EU_EEA = (  # noqa: SIM905
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO"
).split()
# US states with a comprehensive privacy law giving an opt-out of sale / sharing.
US_STATES_WITH_LAWS = (  # noqa: SIM905
    "CA VA CO CT UT TX OR MT IA DE NE NH NJ TN MN MD IN KY RI"
).split()
US_STATES = (  # noqa: SIM905
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO "
    "MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
).split()


# The rule key of a visitor whose country is unknown (a business may set its own).
UNKNOWN_LOCATION = "XX"
# The strictest regime: opt-in for every purpose but the necessary one.
STRICTEST_REGIME = "gdpr"


def default_rules() -> dict[str, str]:
    """The regimes that apply when a business has set no rule of its own."""
    rules = {country: "gdpr" for country in EU_EEA}
    rules["GB"] = "uk_gdpr"
    rules["BR"] = "lgpd"
    # A US visitor whose state is unknown gets the opt-out with its "Do Not Sell" link.
    rules["US"] = "ccpa"
    for state in US_STATES:
        rules[f"US-{state}"] = "ccpa" if state in US_STATES_WITH_LAWS else "default"
    rules["*"] = "default"
    return rules


DEFAULT_RULES = default_rules()
# Cloudflare's values for "unknown" and "Tor".
_UNKNOWN_COUNTRIES = frozenset({"XX", "T1", ""})


def country_from(
    headers: Mapping[str, str], client_ip: str | None, *, country_header: str
) -> str | None:
    """The visitor's ISO country: the proxy's header wins over the offline IP table."""
    value = headers.get(country_header.lower()) or headers.get(country_header)
    if value is not None:
        code = value.strip().upper()
        if len(code) == 2 and code.isalpha() and code not in _UNKNOWN_COUNTRIES:
            return code
    return country_of_ip(client_ip)


def country_of_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None
    code = iptocc.country_code(ip)
    return code.upper() if isinstance(code, str) else None


def region_from(headers: Mapping[str, str], *, region_header: str) -> str | None:
    value = headers.get(region_header.lower()) or headers.get(region_header)
    if value is None:
        return None
    code = value.strip().upper()
    return code if 1 <= len(code) <= 3 and code.isalnum() else None


def regime_for(
    country: str | None,
    region: str | None,
    rules: Mapping[str, str],
) -> str:
    """The regime of the most specific rule ("US-CA" before "US" before "*"); at the same
    level the business's rule beats the default one. With no country: the business's "XX"
    rule, else its "*" rule, else the strictest regime (a consent-first default)."""
    if not country:
        for key in (UNKNOWN_LOCATION, "*"):
            if key in rules:
                return rules[key]
        return STRICTEST_REGIME
    candidates = []
    if region:
        candidates.append(f"{country}-{region}")
    candidates.append(country)
    for key in candidates:
        for table in (rules, DEFAULT_RULES):
            if key in table:
                return table[key]
    return rules.get("*", DEFAULT_RULES["*"])


def truncate_ip(ip: str | None) -> str | None:
    """IPv4 to its /24, IPv6 to its /48: enough for fraud checks, not a person."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def device_of(user_agent: str | None) -> str | None:
    """A coarse device class from a user agent: mobile, tablet, desktop or bot."""
    if not user_agent:
        return None
    ua = user_agent.lower()
    if any(word in ua for word in ("bot", "crawler", "spider", "headless")):
        return "bot"
    if "ipad" in ua or "tablet" in ua or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if "mobi" in ua or "iphone" in ua or "android" in ua:
        return "mobile"
    return "desktop"
