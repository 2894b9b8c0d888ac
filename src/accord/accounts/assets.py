"""The assets a business owns: properties, pixels, ad accounts with campaigns, social accounts.

Each kind keeps its details in its own table keyed by the id of its `assets` row, which
`service.register_asset` makes; permissions, partner shares and the audit log work on
that row, so every kind, including those later contexts add, is handled alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from sqlalchemy import Connection, func, select, update

from accord.accounts import origins
from accord.accounts.models import (
    Actor,
    AdAccountIn,
    AssetView,
    CampaignIn,
    CampaignPatch,
    CampaignView,
    PixelView,
    PropertyIn,
    SocialAccountIn,
    ad_accounts,
    assets,
    campaigns,
    properties,
    social_accounts,
    sources,
)
from accord.accounts.service import (
    PIXEL_KINDS,
    audit,
    close_asset,
    create_source,
    register_asset,
)
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id

MAX_PIXEL_NAME = 50
MAX_ASSET_NAME = 200
PLATFORMS = ("site", "app")
OBJECTIVES = ("awareness", "consideration", "leads", "conversions")
PRICING = ("CPM", "CPC", "CPL")
CAMPAIGN_STATUSES = ("draft", "active", "paused", "ended")
NETWORKS = ("facebook", "instagram", "linkedin", "tiktok", "x", "youtube")
# ISO 4217 codes advertisers use most; others are refused rather than guessed.
CURRENCIES = frozenset(
    {
        "AED",
        "ARS",
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "JPY",
        "KRW",
        "MXN",
        "MYR",
        "NGN",
        "NOK",
        "NZD",
        "PEN",
        "PHP",
        "PKR",
        "PLN",
        "RON",
        "SAR",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "TWD",
        "UAH",
        "USD",
        "VND",
        "ZAR",
    }
)


def _name_problems(name: str, limit: int = MAX_ASSET_NAME) -> list[FieldProblem]:
    if not name.strip():
        return [FieldProblem("name", "give it a name")]
    if len(name.strip()) > limit:
        return [
            FieldProblem("name", f"at most {limit} characters (this one has {len(name.strip())})")
        ]
    return []


def _asset(conn: Connection, *, business_id: str, asset_id: str, kind: str) -> Any:
    row = conn.execute(
        select(assets).where(
            assets.c.id == asset_id, assets.c.business_id == business_id, assets.c.kind == kind
        )
    ).first()
    if row is None:
        raise NotFound(kind.replace("_", " "))
    return row


# -- pixels ----------------------------------------------------------------------------


def create_pixel(
    conn: Connection,
    *,
    business_id: str,
    name: str,
    kind: str,
    max_pixels: int,
    actor: Actor,
    ip: str | None,
) -> PixelView:
    problems = _name_problems(name, MAX_PIXEL_NAME)
    if kind not in PIXEL_KINDS:
        problems.append(FieldProblem("kind", f"one of {', '.join(PIXEL_KINDS)}"))
    if problems:
        raise InvalidInput(problems)
    _check_pixel_room(conn, business_id=business_id, max_pixels=max_pixels)
    ref = create_source(conn, business_id=business_id, name=name.strip(), kind=kind)
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="pixel.create",
        asset=("pixel", ref.source_id),
        after={"name": name.strip(), "kind": kind},
        ip=ip,
    )
    return get_pixel(conn, business_id=business_id, pixel_id=ref.source_id)


def _check_pixel_room(conn: Connection, *, business_id: str, max_pixels: int) -> None:
    """Refuse one more enabled pixel when the business already has `max_pixels` enabled.

    Only enabled pixels count, so disabling one makes room, as the refusal advises.
    """
    count = conn.execute(
        select(func.count()).where(
            sources.c.business_id == business_id,
            sources.c.kind.in_(PIXEL_KINDS),
            sources.c.enabled.is_(True),
        )
    ).scalar_one()
    if count >= max_pixels:
        raise InvalidInput(
            [
                FieldProblem(
                    "pixels",
                    f"a business can have at most {max_pixels} pixels enabled and this one "
                    f"has {count}; disable or reuse one, or ask the operator to raise "
                    "ACCORD_MAX_PIXELS_PER_BUSINESS",
                )
            ]
        )


def get_pixel(conn: Connection, *, business_id: str, pixel_id: str) -> PixelView:
    row = conn.execute(
        select(sources).where(sources.c.id == pixel_id, sources.c.business_id == business_id)
    ).first()
    if row is None:
        raise NotFound("pixel")
    return PixelView(
        id=row.id,
        name=row.name,
        kind=row.kind,
        write_key=row.write_key,
        enabled=row.enabled,
        created_at=row.created_at,
        allowed_origins=list(origins.loaded(row.allowed_origins) or []) or None,
    )


def set_pixel_enabled(
    conn: Connection,
    *,
    business_id: str,
    pixel_id: str,
    enabled: bool,
    max_pixels: int,
    actor: Actor,
    ip: str | None,
) -> PixelView:
    """Stop or resume collection with the pixel's write key; enabling one counts against
    `max_pixels` again. Setting the state it already has changes nothing."""
    before = get_pixel(conn, business_id=business_id, pixel_id=pixel_id)
    if before.enabled == enabled:
        return before
    if enabled:
        _check_pixel_room(conn, business_id=business_id, max_pixels=max_pixels)
    conn.execute(
        update(sources)
        .where(sources.c.id == pixel_id, sources.c.business_id == business_id)
        .values(enabled=enabled)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="pixel.enable" if enabled else "pixel.disable",
        asset=("pixel", pixel_id),
        before={"enabled": before.enabled},
        after={"enabled": enabled},
        ip=ip,
    )
    return get_pixel(conn, business_id=business_id, pixel_id=pixel_id)


def rename_pixel(
    conn: Connection,
    *,
    business_id: str,
    pixel_id: str,
    name: str,
    actor: Actor,
    ip: str | None,
) -> PixelView:
    """Rename a pixel (its source and its asset row alike); the write key stays."""
    before = get_pixel(conn, business_id=business_id, pixel_id=pixel_id)
    problems = _name_problems(name, MAX_PIXEL_NAME)
    if problems:
        raise InvalidInput(problems)
    new_name = name.strip()
    if new_name == before.name:
        return before
    conn.execute(
        update(sources)
        .where(sources.c.id == pixel_id, sources.c.business_id == business_id)
        .values(name=new_name)
    )
    conn.execute(
        update(assets)
        .where(assets.c.id == pixel_id, assets.c.business_id == business_id)
        .values(name=new_name)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="pixel.rename",
        asset=("pixel", pixel_id),
        before={"name": before.name},
        after={"name": new_name},
        ip=ip,
    )
    return get_pixel(conn, business_id=business_id, pixel_id=pixel_id)


# -- properties ------------------------------------------------------------------------


def create_property(
    conn: Connection, *, business_id: str, data: PropertyIn, actor: Actor, ip: str | None
) -> AssetView:
    problems = _name_problems(data.name)
    if data.platform not in PLATFORMS:
        problems.append(FieldProblem("platform", "site or app"))
    address = data.address.strip()
    if not address or len(address) > 300:
        problems.append(FieldProblem("address", "the site's URL or the app's bundle id"))
    elif data.platform == "site" and not address.startswith(("http://", "https://")):
        problems.append(FieldProblem("address", "a site's address starts with https://"))
    if problems:
        raise InvalidInput(problems)
    return _add_asset(
        conn,
        business_id=business_id,
        kind="property",
        name=data.name,
        action="property.create",
        data=data,
        details={"platform": data.platform, "address": address},
        actor=actor,
        ip=ip,
    )


# -- ad accounts and campaigns ---------------------------------------------------------


def create_ad_account(
    conn: Connection, *, business_id: str, data: AdAccountIn, actor: Actor, ip: str | None
) -> AssetView:
    problems = _name_problems(data.name)
    currency = data.currency.strip().upper()
    if currency not in CURRENCIES:
        problems.append(FieldProblem("currency", "an ISO 4217 currency code such as EUR or USD"))
    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(FieldProblem("timezone", "an IANA time zone such as Europe/Paris"))
    if problems:
        raise InvalidInput(problems)
    return _add_asset(
        conn,
        business_id=business_id,
        kind="ad_account",
        name=data.name,
        action="ad_account.create",
        data=data,
        details={
            "currency": currency,
            "timezone": data.timezone,
            "spend_limit_minor": data.spend_limit_minor,
        },
        actor=actor,
        ip=ip,
    )


def close_ad_account(
    conn: Connection, *, business_id: str, ad_account_id: str, actor: Actor, ip: str | None
) -> AssetView:
    """Ad accounts are never removed, only closed; a closed one takes no new campaigns."""
    row = _asset(conn, business_id=business_id, asset_id=ad_account_id, kind="ad_account")
    if row.closed_at is not None:
        raise InvalidInput([FieldProblem("ad_account", "this ad account is already closed")])
    close_asset(conn, business_id=business_id, asset_id=ad_account_id)
    conn.execute(
        update(campaigns)
        .where(campaigns.c.ad_account_id == ad_account_id, campaigns.c.status == "active")
        .values(status="paused")
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="ad_account.close",
        asset=("ad_account", ad_account_id),
        before={"closed": False},
        after={"closed": True},
        ip=ip,
    )
    return get_asset(conn, business_id=business_id, asset_id=ad_account_id)


def _campaign_problems(
    conn: Connection,
    *,
    account: Any,
    name: str,
    status: str,
    budget_minor: int,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> list[FieldProblem]:
    """What creating and changing a campaign both check: the name, the status, the dates,
    an open ad account and the budget within its spend limit."""
    problems = _name_problems(name)
    if account.closed_at is not None:
        problems.append(FieldProblem("ad_account", "this ad account is closed"))
    if status not in CAMPAIGN_STATUSES:
        problems.append(FieldProblem("status", f"one of {', '.join(CAMPAIGN_STATUSES)}"))
    if starts_at and ends_at and ends_at <= starts_at:
        problems.append(FieldProblem("ends_at", "must be after starts_at"))
    limit, currency = conn.execute(
        select(ad_accounts.c.spend_limit_minor, ad_accounts.c.currency).where(
            ad_accounts.c.asset_id == account.id
        )
    ).one()
    if limit is not None and budget_minor > limit:
        # Shown in the currency's units, as people type budgets, not in cents.
        shown = f"{limit / 100:,.2f} {currency.upper()}"
        problems.append(
            FieldProblem("budget_minor", f"above the ad account's spend limit of {shown}")
        )
    return problems


def create_campaign(
    conn: Connection,
    *,
    business_id: str,
    ad_account_id: str,
    data: CampaignIn,
    actor: Actor,
    ip: str | None,
) -> CampaignView:
    account = _asset(conn, business_id=business_id, asset_id=ad_account_id, kind="ad_account")
    problems = _campaign_problems(
        conn,
        account=account,
        name=data.name,
        status=data.status,
        budget_minor=data.budget_minor,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
    )
    if data.objective not in OBJECTIVES:
        problems.append(FieldProblem("objective", f"one of {', '.join(OBJECTIVES)}"))
    if data.pricing not in PRICING:
        problems.append(FieldProblem("pricing", f"one of {', '.join(PRICING)}"))
    if problems:
        raise InvalidInput(problems)
    campaign_id = new_id("cmp")
    conn.execute(
        campaigns.insert().values(
            id=campaign_id,
            business_id=business_id,
            ad_account_id=ad_account_id,
            name=data.name.strip(),
            objective=data.objective,
            pricing=data.pricing,
            budget_minor=data.budget_minor,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            status=data.status,
            created_at=utcnow(),
        )
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="campaign.create",
        asset=("ad_account", ad_account_id),
        after={"campaign_id": campaign_id, **data.model_dump(mode="json")},
        ip=ip,
    )
    return get_campaign(
        conn, business_id=business_id, ad_account_id=ad_account_id, campaign_id=campaign_id
    )


# Fields a campaign's owner may change after creating it; objective and pricing are
# what the campaign is, so a different one is a new campaign.
CAMPAIGN_EDITABLE = ("name", "budget_minor", "starts_at", "ends_at", "status")


def update_campaign(
    conn: Connection,
    *,
    business_id: str,
    ad_account_id: str,
    campaign_id: str,
    data: CampaignPatch,
    actor: Actor,
    ip: str | None,
) -> CampaignView:
    """Change the fields `data` sets, with the checks of `create_campaign`.

    An ended campaign stays ended, and one that has run does not become a draft again.
    """
    account = _asset(conn, business_id=business_id, asset_id=ad_account_id, kind="ad_account")
    before = get_campaign(
        conn, business_id=business_id, ad_account_id=ad_account_id, campaign_id=campaign_id
    )
    current = before.model_dump(include=set(CAMPAIGN_EDITABLE))
    given = data.model_dump(include=data.model_fields_set & set(CAMPAIGN_EDITABLE))
    if "name" in given and given["name"] is not None:
        given["name"] = given["name"].strip()
    after = {**current, **given}
    problems: list[FieldProblem] = []
    for required in ("name", "budget_minor", "status"):
        if after[required] is None:
            problems.append(FieldProblem(required, "cannot be empty"))
    if problems:
        raise InvalidInput(problems)
    problems = _campaign_problems(
        conn,
        account=account,
        name=after["name"],
        status=after["status"],
        budget_minor=after["budget_minor"],
        starts_at=after["starts_at"],
        ends_at=after["ends_at"],
    )
    if after["status"] != before.status:
        if before.status == "ended":
            problems.append(FieldProblem("status", "an ended campaign stays ended"))
        elif after["status"] == "draft":
            problems.append(
                FieldProblem("status", f"a {before.status} campaign cannot become a draft again")
            )
    if problems:
        raise InvalidInput(problems)
    changed = {k: v for k, v in after.items() if v != current[k]}
    if not changed:
        return before
    conn.execute(
        update(campaigns)
        .where(
            campaigns.c.id == campaign_id,
            campaigns.c.business_id == business_id,
            campaigns.c.ad_account_id == ad_account_id,
        )
        .values(**changed)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="campaign.update",
        asset=("ad_account", ad_account_id),
        before={"campaign_id": campaign_id, **_as_json({k: current[k] for k in changed})},
        after={"campaign_id": campaign_id, **_as_json(changed)},
        ip=ip,
    )
    return get_campaign(
        conn, business_id=business_id, ad_account_id=ad_account_id, campaign_id=campaign_id
    )


def _as_json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def get_campaign(
    conn: Connection, *, business_id: str, ad_account_id: str, campaign_id: str
) -> CampaignView:
    """One campaign of an ad account owned by `business_id`."""
    row = conn.execute(
        select(campaigns).where(
            campaigns.c.id == campaign_id,
            campaigns.c.business_id == business_id,
            campaigns.c.ad_account_id == ad_account_id,
        )
    ).first()
    if row is None:
        raise NotFound("campaign")
    return CampaignView(**{k: v for k, v in row._mapping.items() if k != "business_id"})


def list_campaigns(conn: Connection, *, business_id: str, ad_account_id: str) -> list[CampaignView]:
    rows = conn.execute(
        select(campaigns)
        .where(campaigns.c.business_id == business_id, campaigns.c.ad_account_id == ad_account_id)
        .order_by(campaigns.c.created_at.desc())
    ).all()
    return [
        CampaignView(**{k: v for k, v in r._mapping.items() if k != "business_id"}) for r in rows
    ]


# -- social accounts -------------------------------------------------------------------


def connect_social_account(
    conn: Connection, *, business_id: str, data: SocialAccountIn, actor: Actor, ip: str | None
) -> AssetView:
    problems = _name_problems(data.name)
    if data.network not in NETWORKS:
        problems.append(FieldProblem("network", f"one of {', '.join(NETWORKS)}"))
    if not data.page_reference.strip() or len(data.page_reference) > 200:
        problems.append(FieldProblem("page_reference", "the page's id or address"))
    if problems:
        raise InvalidInput(problems)
    return _add_asset(
        conn,
        business_id=business_id,
        kind="social_account",
        name=data.name,
        action="social_account.connect",
        data=data,
        details={"network": data.network, "page_reference": data.page_reference.strip()},
        actor=actor,
        ip=ip,
    )


# -- any asset -------------------------------------------------------------------------

_DETAILS = {
    "property": properties,
    "ad_account": ad_accounts,
    "social_account": social_accounts,
}


def _add_asset(
    conn: Connection,
    *,
    business_id: str,
    kind: str,
    name: str,
    action: str,
    data: BaseModel,
    details: dict[str, Any],
    actor: Actor,
    ip: str | None,
) -> AssetView:
    """Register a checked asset, keep its kind's details in its table, audit the change."""
    asset_id = register_asset(conn, business_id=business_id, kind=kind, name=name.strip())
    conn.execute(
        _DETAILS[kind].insert().values(asset_id=asset_id, business_id=business_id, **details)
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action=action,
        asset=(kind, asset_id),
        after=data.model_dump(),
        ip=ip,
    )
    return get_asset(conn, business_id=business_id, asset_id=asset_id)


def get_asset(conn: Connection, *, business_id: str, asset_id: str) -> AssetView:
    """One asset with its kind's details; `business_id` is the owner."""
    row = conn.execute(
        select(assets).where(assets.c.id == asset_id, assets.c.business_id == business_id)
    ).first()
    if row is None:
        raise NotFound("asset")
    details: dict[str, object] = {}
    table = _DETAILS.get(row.kind)
    if table is not None:
        extra = conn.execute(select(table).where(table.c.asset_id == asset_id)).first()
        if extra is not None:
            details = {
                k: v for k, v in extra._mapping.items() if k not in ("asset_id", "business_id")
            }
    elif row.kind == "pixel":
        pixel = get_pixel(conn, business_id=business_id, pixel_id=asset_id)
        details = {"kind": pixel.kind, "write_key": pixel.write_key, "enabled": pixel.enabled}
    return AssetView(
        id=row.id,
        business_id=row.business_id,
        kind=row.kind,
        name=row.name,
        created_at=row.created_at,
        closed_at=row.closed_at,
        details=details,
    )


def asset_views(conn: Connection, *, rows: list[dict[str, Any]]) -> list[AssetView]:
    return [get_asset(conn, business_id=r["business_id"], asset_id=r["id"]) for r in rows]
