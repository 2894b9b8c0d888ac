"""Consent configuration of a business: properties, purposes, vendors, notices, geo rules."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, func, select, update

from accord.consent.geo import DEFAULT_RULES
from accord.consent.gvl import GlobalVendorList
from accord.consent.ledger import canonical_json
from accord.consent.models import (
    NOTICE_TEXT_KEYS,
    NoticeIn,
    PolicyIn,
    PropertyIn,
    PurposeIn,
    PurposeText,
    VendorIn,
    consent_geo_rules,
    consent_notices,
    consent_policies,
    consent_properties,
    consent_purposes,
    consent_vendors,
)
from accord.consent.signals import CONSENT_MODE_SIGNALS
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.core.links import link_problem

DEFAULT_PURPOSES: tuple[PurposeIn, ...] = (
    PurposeIn(
        key="necessary",
        texts={
            "en": PurposeText(
                name="Strictly necessary",
                description="Needed for the site to work and to keep it secure. Always on.",
            )
        },
        legal_basis="legitimate_interest",
        consent_mode=["security_storage"],
        position=0,
    ),
    PurposeIn(
        key="preferences",
        texts={
            "en": PurposeText(
                name="Preferences", description="Remember your choices such as language."
            )
        },
        tcf_purposes=[5, 6],
        consent_mode=["functionality_storage", "personalization_storage"],
        position=1,
    ),
    PurposeIn(
        key="statistics",
        texts={
            "en": PurposeText(
                name="Statistics",
                description="Measure how the site is used so we can improve it.",
            )
        },
        tcf_purposes=[7, 8, 9, 10],
        consent_mode=["analytics_storage"],
        cookies=["^_ga", "_gid"],
        position=2,
    ),
    PurposeIn(
        key="marketing",
        texts={
            "en": PurposeText(
                name="Marketing",
                description="Show you relevant advertising here and on other sites.",
            )
        },
        tcf_purposes=[1, 2, 3, 4],
        consent_mode=["ad_storage", "ad_user_data", "ad_personalization"],
        cookies=["_fbp", "^_gcl", "IDE"],
        position=3,
    ),
)

DEFAULT_TEXTS_EN: dict[str, str] = {
    "title": "We value your privacy",
    "description": (
        "We use cookies and similar technologies for the purposes below. "
        "Choose which ones you allow; you can change your mind at any time."
    ),
    "accept_all": "Accept all",
    "reject_all": "Reject all",
    "customise": "Customise",
    "save": "Save choices",
    "close": "Close",
    "privacy_policy_label": "Privacy policy",
    "privacy_policy_url": "/privacy",
    "reopen_label": "Privacy choices",
    "do_not_sell_label": "Do Not Sell or Share My Personal Information",
    "placeholder": "This content is blocked until you allow {purpose}.",
    "placeholder_button": "Allow and show",
}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _load(text: str) -> Any:
    return orjson.loads(text)


# --- Properties ----------------------------------------------------------------------


def create_property(conn: Connection, *, business_id: str, spec: PropertyIn) -> dict[str, Any]:
    """A new site or app; the standard purposes and a first English notice come with it."""
    if _property_row(conn, business_id, spec.key) is not None:
        raise InvalidInput([FieldProblem("key", f"property {spec.key!r} already exists")])
    ensure_default_purposes(conn, business_id=business_id)
    property_id = new_id("prop")
    conn.execute(
        consent_properties.insert().values(
            id=property_id, business_id=business_id, created_at=utcnow(), **spec.model_dump()
        )
    )
    publish_notice(
        conn,
        business_id=business_id,
        property_key=spec.key,
        spec=NoticeIn.model_validate({"variants": [{"texts": {"en": DEFAULT_TEXTS_EN}}]}),
    )
    return get_property(conn, business_id=business_id, key=spec.key)


def _property_row(conn: Connection, business_id: str, key: str) -> Row[Any] | None:
    return conn.execute(
        select(consent_properties).where(
            consent_properties.c.business_id == business_id, consent_properties.c.key == key
        )
    ).first()


def _property_json(row: Row[Any]) -> dict[str, Any]:
    out = dict(row._mapping)
    out["created_at"] = row.created_at.isoformat()
    return out


def get_property(conn: Connection, *, business_id: str, key: str) -> dict[str, Any]:
    row = _property_row(conn, business_id, key)
    if row is None:
        raise NotFound(f"property {key!r}")
    return _property_json(row)


def list_properties(conn: Connection, *, business_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(consent_properties)
        .where(consent_properties.c.business_id == business_id)
        .order_by(consent_properties.c.key)
    ).all()
    return [_property_json(row) for row in rows]


def update_property(conn: Connection, *, business_id: str, spec: PropertyIn) -> dict[str, Any]:
    current = get_property(conn, business_id=business_id, key=spec.key)
    conn.execute(
        update(consent_properties)
        .where(consent_properties.c.id == current["id"])
        .values(**spec.model_dump(exclude={"key"}))
    )
    return get_property(conn, business_id=business_id, key=spec.key)


# --- Purposes ------------------------------------------------------------------------


def ensure_default_purposes(conn: Connection, *, business_id: str) -> None:
    """Create the four standard purposes the first time a business needs purposes."""
    existing = set(
        conn.execute(
            select(consent_purposes.c.key).where(consent_purposes.c.business_id == business_id)
        ).scalars()
    )
    for spec in DEFAULT_PURPOSES:
        if spec.key not in existing:
            _insert_purpose(conn, business_id, spec)


def _purpose_values(spec: PurposeIn) -> dict[str, Any]:
    problems = [
        FieldProblem("tcf_purposes", f"{p} is not an IAB TCF purpose (1..11)")
        for p in spec.tcf_purposes
        if not 1 <= p <= 11
    ]
    problems += [
        FieldProblem("consent_mode", f"{s!r} is not a Consent Mode signal")
        for s in spec.consent_mode
        if s not in CONSENT_MODE_SIGNALS
    ]
    if problems:
        raise InvalidInput(problems)
    return {
        "texts": _json({lang: text.model_dump() for lang, text in spec.texts.items()}),
        "legal_basis": spec.legal_basis,
        "required": spec.key == "necessary",
        "tcf_purposes": _json(sorted(set(spec.tcf_purposes))),
        "consent_mode": _json(spec.consent_mode),
        "cookies": _json(spec.cookies),
        "position": spec.position,
    }


def _insert_purpose(conn: Connection, business_id: str, spec: PurposeIn) -> None:
    conn.execute(
        consent_purposes.insert().values(
            id=new_id("purp"),
            business_id=business_id,
            key=spec.key,
            created_at=utcnow(),
            **_purpose_values(spec),
        )
    )


def save_purpose(conn: Connection, *, business_id: str, spec: PurposeIn) -> dict[str, Any]:
    """Create or change a purpose. Published notices keep the texts they were shown with."""
    ensure_default_purposes(conn, business_id=business_id)
    values = _purpose_values(spec)
    changed = conn.execute(
        update(consent_purposes)
        .where(consent_purposes.c.business_id == business_id, consent_purposes.c.key == spec.key)
        .values(**values)
    ).rowcount
    if not changed:
        _insert_purpose(conn, business_id, spec)
    return next(p for p in list_purposes(conn, business_id=business_id) if p["key"] == spec.key)


def list_purposes(conn: Connection, *, business_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(consent_purposes)
        .where(consent_purposes.c.business_id == business_id)
        .order_by(consent_purposes.c.position, consent_purposes.c.key)
    ).all()
    return [
        {
            "key": row.key,
            "texts": _load(row.texts),
            "legal_basis": row.legal_basis,
            "required": row.required,
            "tcf_purposes": _load(row.tcf_purposes),
            "consent_mode": _load(row.consent_mode),
            "cookies": _load(row.cookies),
            "position": row.position,
        }
        for row in rows
    ]


def purpose_keys(conn: Connection, *, business_id: str) -> set[str]:
    return set(
        conn.execute(
            select(consent_purposes.c.key).where(consent_purposes.c.business_id == business_id)
        ).scalars()
    )


# --- Vendors -------------------------------------------------------------------------


def save_vendor(conn: Connection, *, business_id: str, spec: VendorIn) -> dict[str, Any]:
    problems: list[FieldProblem] = []
    unknown = sorted(set(spec.purposes) - purpose_keys(conn, business_id=business_id))
    if unknown:
        problems.append(FieldProblem("purposes", f"unknown purposes: {', '.join(unknown)}"))
    if reason := link_problem(spec.policy_url):
        problems.append(FieldProblem("policy_url", reason))
    if problems:
        raise InvalidInput(problems)
    values = {
        "name": spec.name,
        "purposes": _json(spec.purposes),
        "tcf_id": spec.tcf_id,
        "policy_url": spec.policy_url,
    }
    changed = conn.execute(
        update(consent_vendors)
        .where(consent_vendors.c.business_id == business_id, consent_vendors.c.key == spec.key)
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(
            consent_vendors.insert().values(
                id=new_id("vend"),
                business_id=business_id,
                key=spec.key,
                created_at=utcnow(),
                **values,
            )
        )
    return next(v for v in list_vendors(conn, business_id=business_id) if v["id"] == spec.key)


def list_vendors(conn: Connection, *, business_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(consent_vendors)
        .where(consent_vendors.c.business_id == business_id)
        .order_by(consent_vendors.c.key)
    ).all()
    return [
        {
            "id": row.key,
            "name": row.name,
            "purposes": _load(row.purposes),
            "tcf_id": row.tcf_id,
            "policy_url": row.policy_url,
        }
        for row in rows
    ]


def import_gvl(
    conn: Connection,
    *,
    business_id: str,
    gvl: GlobalVendorList,
    tcf_ids: set[int] | None = None,
) -> int:
    """Add or update vendors from a Global Vendor List; their TCF purposes become ours.

    A vendor gets each of our purposes whose TCF purposes it declares (by consent or
    legitimate interest); vendors deleted from the list are skipped. `tcf_ids` limits
    the import to the vendors a site uses.
    """
    purposes = list_purposes(conn, business_id=business_id)
    count = 0
    for vendor in gvl.active_vendors():
        if tcf_ids is not None and vendor.id not in tcf_ids:
            continue
        declared = set(vendor.purposes) | set(vendor.leg_int_purposes)
        ours = [p["key"] for p in purposes if declared & set(p["tcf_purposes"])]
        policy_url = vendor.policy_url or next(
            (url.privacy for url in vendor.urls if url.privacy), None
        )
        if link_problem(policy_url):
            policy_url = None
        save_vendor(
            conn,
            business_id=business_id,
            spec=VendorIn(
                key=str(vendor.id),
                name=vendor.name[:255],
                purposes=ours,
                tcf_id=vendor.id,
                policy_url=(policy_url or "")[:1000] or None,
            ),
        )
        count += 1
    conn.execute(
        update(consent_properties)
        .where(consent_properties.c.business_id == business_id)
        .values(gvl_version=gvl.vendor_list_version)
    )
    return count


# --- Notices -------------------------------------------------------------------------


def text_hash(texts: Mapping[str, str], purposes: list[dict[str, str]]) -> str:
    """SHA-256 hex of what a visitor read: the notice texts and the purposes' names and
    descriptions in one language, as canonical JSON
    `{"purposes": [{"description", "key", "name"}...], "texts": {...}}`."""
    return hashlib.sha256(canonical_json({"purposes": purposes, "texts": dict(texts)})).hexdigest()


def purpose_text(purpose: dict[str, Any], language: str, fallback: str) -> dict[str, str]:
    texts = purpose["texts"]
    chosen = texts.get(language) or texts.get(fallback) or next(iter(texts.values()))
    return {
        "key": purpose["key"],
        "name": chosen["name"],
        "description": chosen.get("description", ""),
    }


def publish_notice(
    conn: Connection, *, business_id: str, property_key: str, spec: NoticeIn
) -> dict[str, Any]:
    """Publish the next version of a property's notice; earlier versions stay as they were.

    The purposes' current texts are copied into the version, so later edits to a
    purpose never change what an earlier version showed.
    """
    prop = get_property(conn, business_id=business_id, key=property_key)
    problems: list[FieldProblem] = []
    variants = [v.variant for v in spec.variants]
    if len(set(variants)) != len(variants):
        problems.append(FieldProblem("variants", "variant names must be different"))
    for i, variant in enumerate(spec.variants):
        if variant.default_language not in variant.texts:
            problems.append(
                FieldProblem(f"variants[{i}].default_language", "has no texts in that language")
            )
        if reason := link_problem(variant.logo_url):
            problems.append(FieldProblem(f"variants[{i}].logo_url", reason))
        for language, given in variant.texts.items():
            if reason := link_problem(given.get("privacy_policy_url")):
                problems.append(
                    FieldProblem(f"variants[{i}].texts.{language}.privacy_policy_url", reason)
                )
            unknown = sorted(set(given) - set(NOTICE_TEXT_KEYS))
            if unknown:
                problems.append(
                    FieldProblem(
                        f"variants[{i}].texts.{language}", f"unknown keys: {', '.join(unknown)}"
                    )
                )
    if problems:
        raise InvalidInput(problems)
    # The row lock on the property serialises two publications racing on PostgreSQL.
    lock = select(consent_properties.c.id).where(consent_properties.c.id == prop["id"])
    if conn.dialect.name == "postgresql":
        conn.execute(lock.with_for_update())
    latest = conn.execute(
        select(func.max(consent_notices.c.version)).where(
            consent_notices.c.property_id == prop["id"]
        )
    ).scalar()
    version = (latest or 0) + 1
    purposes = list_purposes(conn, business_id=business_id)
    now = utcnow()
    for variant in spec.variants:
        # Missing keys fall back to the English defaults, so a banner is never blank.
        texts: dict[str, dict[str, str]] = {
            language: {**DEFAULT_TEXTS_EN, **given} for language, given in variant.texts.items()
        }
        hashes = {
            language: text_hash(
                language_texts,
                [purpose_text(p, language, variant.default_language) for p in purposes],
            )
            for language, language_texts in texts.items()
        }
        conn.execute(
            consent_notices.insert().values(
                id=new_id("ntc"),
                business_id=business_id,
                property_id=prop["id"],
                version=version,
                variant=variant.variant,
                weight=variant.weight,
                default_language=variant.default_language,
                texts=_json(texts),
                purposes=_json(purposes),
                layout=variant.layout,
                colours=_json(variant.colours.model_dump()),
                logo_url=variant.logo_url,
                text_hashes=_json(hashes),
                published_at=now,
            )
        )
    return {"property": property_key, "version": version, "variants": variants}


def _notice_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "property_id": row.property_id,
        "version": row.version,
        "variant": row.variant,
        "weight": row.weight,
        "default_language": row.default_language,
        "texts": _load(row.texts),
        "purposes": _load(row.purposes),
        "layout": row.layout,
        "colours": _load(row.colours),
        "logo_url": row.logo_url,
        "text_hashes": _load(row.text_hashes),
        "published_at": row.published_at.isoformat(),
    }


def notice_versions(
    conn: Connection, *, business_id: str, property_key: str
) -> list[dict[str, Any]]:
    prop = get_property(conn, business_id=business_id, key=property_key)
    rows = conn.execute(
        select(consent_notices)
        .where(consent_notices.c.property_id == prop["id"])
        .order_by(consent_notices.c.version, consent_notices.c.variant)
    ).all()
    return [_notice_json(row) for row in rows]


def notice_by_id(conn: Connection, *, business_id: str, notice_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(consent_notices).where(
            consent_notices.c.business_id == business_id, consent_notices.c.id == notice_id
        )
    ).first()
    return _notice_json(row) if row is not None else None


def current_variants(conn: Connection, *, property_id: str) -> list[dict[str, Any]]:
    latest = (
        select(func.max(consent_notices.c.version))
        .where(consent_notices.c.property_id == property_id)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(consent_notices)
        .where(consent_notices.c.property_id == property_id, consent_notices.c.version == latest)
        .order_by(consent_notices.c.variant)
    ).all()
    return [_notice_json(row) for row in rows]


# --- Geo rules and policy ------------------------------------------------------------


def geo_rules(conn: Connection, *, business_id: str) -> dict[str, str]:
    rows = conn.execute(
        select(consent_geo_rules.c.region, consent_geo_rules.c.regime).where(
            consent_geo_rules.c.business_id == business_id
        )
    ).all()
    return {row.region: row.regime for row in rows}


def set_geo_rule(conn: Connection, *, business_id: str, region: str, regime: str) -> None:
    conn.execute(
        delete(consent_geo_rules).where(
            consent_geo_rules.c.business_id == business_id, consent_geo_rules.c.region == region
        )
    )
    conn.execute(
        consent_geo_rules.insert().values(business_id=business_id, region=region, regime=regime)
    )


def delete_geo_rule(conn: Connection, *, business_id: str, region: str) -> bool:
    return bool(
        conn.execute(
            delete(consent_geo_rules).where(
                consent_geo_rules.c.business_id == business_id,
                consent_geo_rules.c.region == region,
            )
        ).rowcount
    )


def effective_geo_rules(conn: Connection, *, business_id: str) -> dict[str, str]:
    """The business's rules over the defaults (what `regime_for` will apply)."""
    return {**DEFAULT_RULES, **geo_rules(conn, business_id=business_id)}


def get_policy(conn: Connection, *, business_id: str) -> PolicyIn:
    row = conn.execute(
        select(consent_policies).where(consent_policies.c.business_id == business_id)
    ).first()
    if row is None:
        return PolicyIn()
    return PolicyIn(
        event_purposes=_load(row.event_purposes),
        default_purpose=row.default_purpose,
        anonymous_counting=row.anonymous_counting,
        honour_gpc=row.honour_gpc,
    )


def set_policy(conn: Connection, *, business_id: str, spec: PolicyIn) -> PolicyIn:
    known = purpose_keys(conn, business_id=business_id) | {p.key for p in DEFAULT_PURPOSES}
    used = set(spec.event_purposes.values()) | {spec.default_purpose}
    unknown = sorted(used - known)
    if unknown:
        raise InvalidInput(
            [FieldProblem("event_purposes", f"unknown purposes: {', '.join(unknown)}")]
        )
    conn.execute(delete(consent_policies).where(consent_policies.c.business_id == business_id))
    conn.execute(
        consent_policies.insert().values(
            business_id=business_id,
            event_purposes=_json(spec.event_purposes),
            default_purpose=spec.default_purpose,
            anonymous_counting=spec.anonymous_counting,
            honour_gpc=spec.honour_gpc,
            updated_at=utcnow(),
        )
    )
    return spec
