"""Channel grouping: which marketing channel a touch came through, from its UTM
parameters (`context.campaign.*`) and its referrer, as a pure function and as the same
rules in Ibis (docs/analytics.md lists them; tests hold the two in agreement).

A touch is an event that carries campaign parameters or comes from another site; an
event with neither is not a touch (a conversion with no touch counts as `direct`).
"""

from __future__ import annotations

import re
from typing import Any

import ibis

CHANNELS = (
    "paid search",
    "paid social",
    "display",
    "email",
    "affiliate",
    "social",
    "organic search",
    "referral",
    "other",
    "direct",
)
NO_CAMPAIGN = "(none)"

PAID_MEDIUMS = ("cpc", "ppc", "paid", "paidsearch", "paid_search", "sem")
PAID_SOCIAL_MEDIUMS = ("paid_social", "paidsocial", "social_paid", "social-paid")
DISPLAY_MEDIUMS = ("display", "banner", "cpm", "cpv", "programmatic")
EMAIL_MEDIUMS = ("email", "e-mail", "newsletter")
AFFILIATE_MEDIUMS = ("affiliate", "affiliates", "partner")
SOCIAL_MEDIUMS = ("social", "social-network", "social-media", "sm", "organic_social")
ORGANIC_MEDIUMS = ("organic",)
REFERRAL_MEDIUMS = ("referral",)
SEARCH_SOURCES = ("google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia", "qwant")
SOCIAL_SOURCES = (
    "facebook",
    "fb",
    "instagram",
    "ig",
    "twitter",
    "x",
    "linkedin",
    "pinterest",
    "reddit",
    "tiktok",
    "youtube",
    "snapchat",
)
SEARCH_HOSTS = r"(^|\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant)\."
SOCIAL_HOSTS = (
    r"(^|\.)(facebook|instagram|twitter|linkedin|pinterest|reddit|tiktok|youtube|snapchat)\."
    r"|^(t\.co|x\.com|lnkd\.in|fb\.me)$"
)
# What the engines' TRIM removes (Ibis `strip`), so both sides clean text alike.
BLANKS = " \t\n\r\x0b\x0c"
# The host of an absolute http(s) URL, lower-cased afterwards.
HOST = r"^[hH][tT][tT][pP][sS]?://([^/:?#@]+)"


def host(url: str | None) -> str | None:
    if not url:
        return None
    found = re.match(HOST, url)
    return found.group(1).lower() if found and found.group(1) else None


def _clean(value: str | None) -> str | None:
    value = value.strip(BLANKS).lower() if value else None
    return value or None


def referrer_host(referrer: str | None, page_url: str | None) -> str | None:
    """The referring site, when it is another site than the page's own."""
    found = host(referrer)
    return found if found is not None and found != host(page_url) else None


def is_touch(
    utm_source: str | None, utm_medium: str | None, utm_campaign: str | None, external: str | None
) -> bool:
    return any(_clean(v) for v in (utm_source, utm_medium, utm_campaign)) or external is not None


def channel(utm_source: str | None, utm_medium: str | None, external: str | None) -> str:
    """The channel of one touch: its UTM source and medium, and the other site it came
    from (`referrer_host`). The first rule that holds wins."""
    source, medium = _clean(utm_source), _clean(utm_medium)
    social_source = source in SOCIAL_SOURCES
    search_source = source in SEARCH_SOURCES
    if medium in PAID_SOCIAL_MEDIUMS or (medium in PAID_MEDIUMS and social_source):
        return "paid social"
    if medium in PAID_MEDIUMS:
        return "paid search"
    if medium in DISPLAY_MEDIUMS:
        return "display"
    if medium in EMAIL_MEDIUMS or source in EMAIL_MEDIUMS:
        return "email"
    if medium in AFFILIATE_MEDIUMS:
        return "affiliate"
    if medium in SOCIAL_MEDIUMS or (medium is None and social_source):
        return "social"
    if medium in ORGANIC_MEDIUMS or (medium is None and search_source):
        return "organic search"
    if medium in REFERRAL_MEDIUMS:
        return "referral"
    if medium is not None or source is not None:
        return "other"
    if external is not None:
        if re.search(SOCIAL_HOSTS, external):
            return "social"
        if re.search(SEARCH_HOSTS, external):
            return "organic search"
        return "referral"
    return "direct"


def campaign(utm_campaign: str | None) -> str:
    text = utm_campaign.strip(BLANKS) if utm_campaign else ""
    return text or NO_CAMPAIGN


# -- the same rules on the engine -------------------------------------------------------


def _clean_column(column: Any) -> Any:
    cleaned = column.strip().lower()
    return (cleaned == "").ifelse(ibis.null("string"), cleaned)


def host_column(url: Any) -> Any:
    found = url.re_extract(HOST, 1).lower()
    return (found == "").ifelse(ibis.null("string"), found)


def referrer_host_column(referrer: Any, page_url: Any) -> Any:
    found = host_column(referrer)
    own = host_column(page_url)
    return (own.notnull() & (found == own)).fill_null(False).ifelse(ibis.null("string"), found)


def is_touch_column(table: Any, external: Any) -> Any:
    parts = [
        _clean_column(table[c]).notnull() for c in ("utm_source", "utm_medium", "utm_campaign")
    ]
    return parts[0] | parts[1] | parts[2] | external.notnull()


def channel_column(utm_source: Any, utm_medium: Any, external: Any) -> Any:
    source, medium = _clean_column(utm_source), _clean_column(utm_medium)

    def medium_in(values: tuple[str, ...]) -> Any:
        return medium.isin(list(values)).fill_null(False)

    def source_in(values: tuple[str, ...]) -> Any:
        return source.isin(list(values)).fill_null(False)

    no_medium = medium.isnull()
    rules = [
        (
            medium_in(PAID_SOCIAL_MEDIUMS) | (medium_in(PAID_MEDIUMS) & source_in(SOCIAL_SOURCES)),
            "paid social",
        ),
        (medium_in(PAID_MEDIUMS), "paid search"),
        (medium_in(DISPLAY_MEDIUMS), "display"),
        (medium_in(EMAIL_MEDIUMS) | source_in(EMAIL_MEDIUMS), "email"),
        (medium_in(AFFILIATE_MEDIUMS), "affiliate"),
        (medium_in(SOCIAL_MEDIUMS) | (no_medium & source_in(SOCIAL_SOURCES)), "social"),
        (medium_in(ORGANIC_MEDIUMS) | (no_medium & source_in(SEARCH_SOURCES)), "organic search"),
        (medium_in(REFERRAL_MEDIUMS), "referral"),
        (medium.notnull() | source.notnull(), "other"),
        (external.notnull() & external.re_search(SOCIAL_HOSTS).fill_null(False), "social"),
        (external.notnull() & external.re_search(SEARCH_HOSTS).fill_null(False), "organic search"),
        (external.notnull(), "referral"),
    ]
    return ibis.cases(*rules, else_="direct")


def campaign_column(utm_campaign: Any) -> Any:
    text = utm_campaign.strip()
    return (text.isnull() | (text == "")).ifelse(NO_CAMPAIGN, text)
