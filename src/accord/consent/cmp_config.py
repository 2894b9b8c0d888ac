"""The configuration cmp.js reads: the visitor's regime, notice variant, language and purposes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from accord.consent.config import (
    DEFAULT_TEXTS_EN,
    current_variants,
    geo_rules,
    get_policy,
    get_property,
    list_purposes,
    list_vendors,
    purpose_text,
    text_hash,
)
from accord.consent.geo import regime_for
from accord.consent.models import OPT_IN_REGIMES, NoticeVariantIn
from accord.core.errors import NotFound

TCF_POLICY_VERSION = 5
CMP_VERSION = 1


def pick_language(
    available: list[str], *, requested: str | None, accept_language: str | None, default: str
) -> str:
    """The visitor's language among those a notice has: exact tag, then primary subtag."""
    wanted: list[str] = []
    if requested:
        wanted.append(requested)
    if accept_language:
        weighted = []
        for index, part in enumerate(accept_language.split(",")):
            pieces = part.strip().split(";")
            quality = 1.0
            for param in pieces[1:]:
                name, _, value = param.strip().partition("=")
                if name == "q":
                    try:
                        quality = float(value)
                    except ValueError:
                        quality = 0.0
            if pieces[0] and pieces[0] != "*" and quality > 0:
                weighted.append((-quality, index, pieces[0]))
        wanted += [tag for _, _, tag in sorted(weighted)]
    lowered = {language.lower(): language for language in available}
    for tag in wanted:
        tag = tag.strip().lower()
        if tag in lowered:
            return lowered[tag]
        primary = tag.split("-")[0]
        if primary in lowered:
            return lowered[primary]
    return default


def assign_variant(variants: list[dict[str, Any]], *, seed: str, anonymous_id: str | None) -> Any:
    """A sticky, weighted choice: the same visitor and test seed always get the same variant.

    The bucket is the first 8 bytes of SHA-256(seed + ":" + anonymousId) as a number in
    [0, 1); without an anonymousId the first variant (the control) is shown.
    """
    if not anonymous_id or len(variants) == 1:
        return variants[0]
    digest = hashlib.sha256(f"{seed}:{anonymous_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(v["weight"] for v in variants)
    cumulative = 0.0
    for variant in variants:
        cumulative += variant["weight"] / total
        if point < cumulative:
            return variant
    return variants[-1]


@dataclass(frozen=True)
class Visitor:
    country: str | None
    region: str | None
    gpc: bool
    language: str | None
    accept_language: str | None
    anonymous_id: str | None


def public_config(
    conn: Connection,
    *,
    business_id: str,
    property_key: str,
    visitor: Visitor,
    endpoint: str = "/v1/consent",
) -> dict[str, Any]:
    """The JSON cmp.js reads: regime, notice in the visitor's language, purposes, vendors."""
    prop = get_property(conn, business_id=business_id, key=property_key)
    variants = current_variants(conn, property_id=prop["id"])
    if not variants:
        raise NotFound(f"published notice of property {property_key!r}")
    notice = assign_variant(
        variants, seed=f"{prop['id']}:{variants[0]['version']}", anonymous_id=visitor.anonymous_id
    )
    languages = sorted(notice["texts"])
    language = pick_language(
        languages,
        requested=visitor.language,
        accept_language=visitor.accept_language,
        default=notice["default_language"],
    )
    # Where the visitor is cannot be told: the strictest regime, so no tag runs before a
    # choice, unless the business set a rule for unknown locations ("XX") or "*".
    regime = regime_for(
        visitor.country,
        visitor.region,
        geo_rules(conn, business_id=business_id),
    )
    answer = _banner_config(
        conn,
        business_id=business_id,
        prop=prop,
        notice=notice,
        language=language,
        regime=regime,
        country=visitor.country,
        gpc=visitor.gpc,
        endpoint=endpoint,
    )
    # The collection policy, so accord.js sends only what the gate would keep (policy.py).
    answer["collection"] = get_policy(conn, business_id=business_id).model_dump()
    return answer


def preview_config(
    conn: Connection,
    *,
    business_id: str,
    property_key: str,
    draft: NoticeVariantIn,
    language: str,
    regime: str,
) -> dict[str, Any]:
    """What cmp.js would read if `draft` were published: the banner designer's preview.

    The draft's texts get the English defaults for missing keys and the purposes their
    current texts, as publishing would do; nothing is stored.
    """
    prop = get_property(conn, business_id=business_id, key=property_key)
    purposes = list_purposes(conn, business_id=business_id)
    texts = {lang: {**DEFAULT_TEXTS_EN, **given} for lang, given in draft.texts.items()}
    shown = language if language in texts else draft.default_language
    if shown not in texts:
        shown = next(iter(texts))
    notice = {
        "id": "preview",
        "version": 0,
        "variant": draft.variant,
        "default_language": draft.default_language,
        "texts": texts,
        "purposes": purposes,
        "layout": draft.layout,
        "colours": draft.colours.model_dump(),
        "logo_url": draft.logo_url,
        "text_hashes": {
            shown: text_hash(
                texts[shown],
                [purpose_text(p, shown, draft.default_language) for p in purposes],
            )
        },
    }
    return _banner_config(
        conn,
        business_id=business_id,
        prop=prop,
        notice=notice,
        language=shown,
        regime=regime,
        country=None,
        gpc=False,
        endpoint="/v1/consent",
    )


def _banner_config(
    conn: Connection,
    *,
    business_id: str,
    prop: dict[str, Any],
    notice: dict[str, Any],
    language: str,
    regime: str,
    country: str | None,
    gpc: bool,
    endpoint: str,
) -> dict[str, Any]:
    purposes = []
    for purpose in notice["purposes"]:
        shown = purpose_text(purpose, language, notice["default_language"])
        purposes.append(
            {
                "key": purpose["key"],
                "name": shown["name"],
                "description": shown["description"],
                "legal_basis": purpose["legal_basis"],
                "required": purpose["required"],
                "tcf_purposes": purpose["tcf_purposes"],
                "consent_mode": purpose["consent_mode"],
                "cookies": purpose["cookies"],
            }
        )
    cmp_id = prop["cmp_id"]
    return {
        "property": prop["key"],
        "regime": regime,
        "country": country,
        "gpc": gpc,
        "requires_opt_in": regime in OPT_IN_REGIMES,
        "show_do_not_sell": regime == "ccpa",
        "notice": {
            "id": notice["id"],
            "version": notice["version"],
            "variant": notice["variant"],
            "language": language,
            "languages": sorted(notice["texts"]),
            "text_hash": notice["text_hashes"][language],
            "layout": notice["layout"],
            "colours": notice["colours"],
            "logo_url": notice["logo_url"],
            "texts": notice["texts"][language],
        },
        "purposes": purposes,
        "vendors": list_vendors(conn, business_id=business_id),
        "cmp": {
            "cmp_id": cmp_id,
            "cmp_version": CMP_VERSION,
            "tcf_policy_version": TCF_POLICY_VERSION,
            "gvl_version": prop["gvl_version"],
            "publisher_cc": prop["publisher_cc"],
            "tcf_enabled": cmp_id is not None,
        },
        "cookie": {
            "name": prop["cookie_name"],
            "max_age_days": prop["cookie_max_age_days"],
            "domain": prop["cookie_domain"],
        },
        "endpoint": endpoint,
    }
