"""The asset pages: pixels, properties, ad accounts with their campaigns, social accounts."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from accord.accounts import assets as asset_service
from accord.accounts import permissions, pixel_web, service
from accord.accounts.models import (
    AdAccountIn,
    CampaignIn,
    CampaignPatch,
    CampaignView,
    PixelView,
    PropertyIn,
    SocialAccountIn,
)
from accord.accounts.pages.common import (
    AdsManage,
    AdsRead,
    AssetsManage,
    AssetsRead,
    caller_action,
    form_action,
)
from accord.consent import config as consent_config
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.web import store_work
from accord.web.account_mail import base_url
from accord.web.auth import Caller, require_asset
from accord.web.state import State
from accord.web.ui import arender, redirect

router = APIRouter(include_in_schema=False)


@router.get("/assets")
async def assets_page(request: Request, state: State, caller: AssetsRead) -> HTMLResponse:
    def work(conn: Connection) -> list[Any]:
        return asset_service.asset_views(
            conn, rows=service.visible_assets(conn, access=caller.access)
        )

    found = await store_work.read(state, work)
    by_kind: dict[str, list[Any]] = {}
    for asset in found:
        by_kind.setdefault(asset.kind, []).append(asset)
    return await arender(
        request,
        "accounts/assets.html",
        caller=caller,
        by_kind=by_kind,
        can_create=caller.can("assets.manage") and permissions.may_create(caller.role, "pixel"),
        can_ads=caller.can("ads.manage") and permissions.may_create(caller.role, "ad_account"),
        objectives=asset_service.OBJECTIVES,
        networks=asset_service.NETWORKS,
        max_pixels=state.settings.max_pixels_per_business,
    )


@router.post("/assets/pixels")
async def create_pixel(
    request: Request,
    state: State,
    caller: AssetsManage,
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "web",
) -> Response:
    if not permissions.may_create(caller.role, "pixel"):
        return redirect(request, "/assets", error=permissions.creator_refusal("pixel"))

    return await caller_action(
        request,
        state,
        caller,
        "/assets",
        f"Pixel {name.strip()} created",
        asset_service.create_pixel,
        name=name,
        kind=kind,
        max_pixels=state.settings.max_pixels_per_business,
    )


# Budgets and limits far beyond any ad account, refused rather than overflowing the column.
MAX_MONEY = 10**12


def minor_units(text: str) -> int:
    """An amount typed in currency units ("250.00") in minor units (25000); `ValueError`
    when it is not a finite number of reasonable size (`inf`, `nan`, `1e400`)."""
    amount = float(text)
    if not math.isfinite(amount) or abs(amount) > MAX_MONEY:
        raise ValueError(f"not an amount: {text!r}")
    return round(amount * 100)


def _problems_by_field(problems: list[FieldProblem]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in problems:
        found.setdefault(problem.field, []).append(problem.reason)
    return found


def _may(conn: Connection, caller: Caller, *, kind: str, asset_id: str, task: str) -> bool:
    """Whether the caller holds `task` on the asset (to show its forms, or not)."""
    try:
        service.check_asset(conn, access=caller.access, asset_id=asset_id, kind=kind, task=task)
    except NotFound:
        return False
    return True


async def _pixel_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    owner: str,
    pixel_id: str,
    name: str | None = None,
    origins_text: str | None = None,
    problems: list[FieldProblem] | None = None,
) -> HTMLResponse:
    def work(conn: Connection) -> tuple[PixelView, bool, str | None]:
        pixel = asset_service.get_pixel(conn, business_id=owner, pixel_id=pixel_id)
        may_manage = caller.can("assets.manage") and _may(
            conn, caller, kind="pixel", asset_id=pixel_id, task="manage"
        )
        banners = consent_config.list_properties(conn, business_id=owner)
        return pixel, may_manage, banners[0]["key"] if banners else None

    pixel, may_manage, property_key = await store_work.read(state, work)
    snippet = pixel_web.install_snippet(
        base_url=base_url(request, state.settings),
        write_key=pixel.write_key,
        property_key=property_key,
    )
    return await arender(
        request,
        "accounts/pixel.html",
        caller=caller,
        pixel=pixel,
        snippet=snippet,
        has_banner=property_key is not None,
        may_manage=may_manage,
        name=pixel.name if name is None else name,
        origins_text=origins_text
        if origins_text is not None
        else "\n".join(pixel.allowed_origins or []),
        problems=_problems_by_field(problems or []),
        origin_problems=[
            f"{p.field}: {p.reason}"
            for p in problems or []
            if p.field.startswith("allowed_origins")
        ],
        status=400 if problems else 200,
    )


@router.get("/assets/pixels/{pixel_id}")
async def pixel_page(
    request: Request, state: State, pixel_id: str, caller: AssetsRead
) -> HTMLResponse:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="analyse")
    return await _pixel_page(request, state, caller, owner=owner, pixel_id=pixel_id)


@router.post("/assets/pixels/{pixel_id}")
async def rename_pixel(
    request: Request,
    state: State,
    pixel_id: str,
    caller: AssetsManage,
    name: Annotated[str, Form()] = "",
) -> Response:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="manage")

    def work(conn: Connection) -> PixelView:
        return asset_service.rename_pixel(
            conn, business_id=owner, pixel_id=pixel_id, name=name, actor=caller.actor, ip=caller.ip
        )

    try:
        pixel = await store_work.write(state, work)
    except InvalidInput as exc:
        return await _pixel_page(
            request, state, caller, owner=owner, pixel_id=pixel_id, name=name, problems=exc.problems
        )
    return redirect(request, f"/assets/pixels/{pixel_id}", notice=f"Pixel renamed {pixel.name}")


@router.post("/assets/pixels/{pixel_id}/origins")
async def set_pixel_origins(
    request: Request,
    state: State,
    pixel_id: str,
    caller: AssetsManage,
    allowed_origins: Annotated[str, Form()] = "",
) -> Response:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="manage")

    def work(conn: Connection) -> PixelView:
        return pixel_web.set_allowed_origins(
            conn,
            business_id=owner,
            pixel_id=pixel_id,
            entries=allowed_origins.splitlines(),
            actor=caller.actor,
            ip=caller.ip,
        )

    try:
        pixel = await store_work.write(state, work)
    except InvalidInput as exc:
        return await _pixel_page(
            request,
            state,
            caller,
            owner=owner,
            pixel_id=pixel_id,
            origins_text=allowed_origins,
            problems=exc.problems,
        )
    state.write_keys.forget(pixel.write_key)
    shown = ", ".join(pixel.allowed_origins or []) or "any origin"
    return redirect(request, f"/assets/pixels/{pixel_id}", notice=f"Browsers allowed from {shown}")


@router.post("/assets/pixels/{pixel_id}/enabled")
async def enable_pixel(
    request: Request,
    state: State,
    pixel_id: str,
    caller: AssetsManage,
    enabled: Annotated[str, Form()] = "",
) -> Response:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="manage")
    if enabled not in ("true", "false"):
        problem = FieldProblem("enabled", "true or false")
        return await _pixel_page(
            request, state, caller, owner=owner, pixel_id=pixel_id, problems=[problem]
        )

    def work(conn: Connection) -> PixelView:
        return asset_service.set_pixel_enabled(
            conn,
            business_id=owner,
            pixel_id=pixel_id,
            enabled=enabled == "true",
            max_pixels=state.settings.max_pixels_per_business,
            actor=caller.actor,
            ip=caller.ip,
        )

    try:
        pixel = await store_work.write(state, work)
    except InvalidInput as exc:
        return await _pixel_page(
            request, state, caller, owner=owner, pixel_id=pixel_id, problems=exc.problems
        )
    if not pixel.enabled:
        state.write_keys.forget(pixel.write_key)
    notice = "Pixel enabled" if pixel.enabled else "Pixel disabled: its write key takes no events"
    return redirect(request, f"/assets/pixels/{pixel_id}", notice=notice)


@router.post("/assets/properties")
async def create_property(
    request: Request,
    state: State,
    caller: AssetsManage,
    name: Annotated[str, Form()] = "",
    platform: Annotated[str, Form()] = "site",
    address: Annotated[str, Form()] = "",
) -> Response:
    if not permissions.may_create(caller.role, "property"):
        return redirect(request, "/assets", error=permissions.creator_refusal("property"))
    data = PropertyIn(name=name, platform=platform, address=address)

    return await caller_action(
        request,
        state,
        caller,
        "/assets",
        f"Property {name.strip()} added",
        asset_service.create_property,
        data=data,
    )


@router.post("/assets/ad-accounts")
async def create_ad_account(
    request: Request,
    state: State,
    caller: AdsManage,
    name: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    spend_limit: Annotated[str, Form()] = "",
) -> Response:
    if not permissions.may_create(caller.role, "ad_account"):
        return redirect(request, "/assets", error=permissions.creator_refusal("ad_account"))
    try:
        limit = minor_units(spend_limit) if spend_limit.strip() else None
    except ValueError:
        return redirect(request, "/assets", error="spend limit: a number such as 1500.00")
    data = AdAccountIn(name=name, currency=currency, timezone=timezone, spend_limit_minor=limit)

    return await caller_action(
        request,
        state,
        caller,
        "/assets",
        f"Ad account {name.strip()} added",
        asset_service.create_ad_account,
        data=data,
    )


@router.get("/assets/ad-accounts/{ad_account_id}")
async def ad_account_page(
    request: Request, state: State, ad_account_id: str, caller: AdsRead
) -> HTMLResponse:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="analyse"
    )

    def work(conn: Connection) -> dict[str, Any]:
        return {
            "account": asset_service.get_asset(conn, business_id=owner, asset_id=ad_account_id),
            "campaigns": asset_service.list_campaigns(
                conn, business_id=owner, ad_account_id=ad_account_id
            ),
        }

    return await arender(
        request,
        "accounts/ad_account.html",
        caller=caller,
        objectives=asset_service.OBJECTIVES,
        pricing=asset_service.PRICING,
        statuses=asset_service.CAMPAIGN_STATUSES,
        can_advertise=caller.can("ads.manage"),
        **await store_work.read(state, work),
    )


@router.post("/assets/ad-accounts/{ad_account_id}/campaigns")
async def create_campaign(
    request: Request,
    state: State,
    ad_account_id: str,
    caller: AdsManage,
    name: Annotated[str, Form()] = "",
    objective: Annotated[str, Form()] = "",
    pricing: Annotated[str, Form()] = "",
    budget: Annotated[str, Form()] = "0",
    status: Annotated[str, Form()] = "draft",
) -> Response:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="advertise"
    )
    back = f"/assets/ad-accounts/{ad_account_id}"
    try:
        budget_minor = minor_units(budget)
    except ValueError:
        return redirect(request, back, error="budget: a number such as 250.00")
    try:
        data = CampaignIn(
            name=name,
            objective=objective,
            pricing=pricing,
            budget_minor=budget_minor,
            status=status,
        )
    except ValueError:
        return redirect(request, back, error="budget: must not be negative")

    return await form_action(
        request,
        state,
        back,
        f"Campaign {name.strip()} created",
        lambda conn: asset_service.create_campaign(
            conn,
            business_id=owner,
            ad_account_id=ad_account_id,
            data=data,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


LOCAL_MINUTE = "%Y-%m-%dT%H:%M"


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    """An instant as the `datetime-local` value of the ad account's time zone."""
    return value.astimezone(zone).strftime(LOCAL_MINUTE) if value else ""


def _instant(
    text: str, zone: ZoneInfo, field: str, problems: list[FieldProblem]
) -> datetime | None:
    """A `datetime-local` value read in the ad account's time zone; empty: none."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(FieldProblem(field, "a date and time such as 2026-05-01T09:00"))
        return None
    local = parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed
    return local.astimezone(UTC)


def _campaign_values(campaign: CampaignView, zone: ZoneInfo) -> dict[str, str]:
    return {
        "name": campaign.name,
        "budget": f"{campaign.budget_minor / 100:.2f}",
        "starts_at": _local(campaign.starts_at, zone),
        "ends_at": _local(campaign.ends_at, zone),
        "status": campaign.status,
    }


async def _campaign_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    owner: str,
    ad_account_id: str,
    campaign_id: str,
    values: dict[str, str] | None = None,
    problems: list[FieldProblem] | None = None,
) -> HTMLResponse:
    def work(conn: Connection) -> dict[str, Any]:
        return {
            "account": asset_service.get_asset(conn, business_id=owner, asset_id=ad_account_id),
            "campaign": asset_service.get_campaign(
                conn, business_id=owner, ad_account_id=ad_account_id, campaign_id=campaign_id
            ),
            "may_edit": caller.can("ads.manage")
            and _may(conn, caller, kind="ad_account", asset_id=ad_account_id, task="advertise"),
        }

    found = await store_work.read(state, work)
    zone = ZoneInfo(found["account"].details["timezone"])
    return await arender(
        request,
        "accounts/campaign.html",
        caller=caller,
        statuses=asset_service.CAMPAIGN_STATUSES,
        values=values or _campaign_values(found["campaign"], zone),
        problems=_problems_by_field(problems or []),
        status=400 if problems else 200,
        **found,
    )


@router.get("/assets/ad-accounts/{ad_account_id}/campaigns/{campaign_id}")
async def campaign_page(
    request: Request, state: State, ad_account_id: str, campaign_id: str, caller: AdsRead
) -> HTMLResponse:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="analyse"
    )
    return await _campaign_page(
        request, state, caller, owner=owner, ad_account_id=ad_account_id, campaign_id=campaign_id
    )


@router.post("/assets/ad-accounts/{ad_account_id}/campaigns/{campaign_id}")
async def update_campaign(
    request: Request,
    state: State,
    ad_account_id: str,
    campaign_id: str,
    caller: AdsManage,
    name: Annotated[str, Form()] = "",
    budget: Annotated[str, Form()] = "",
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
) -> Response:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="advertise"
    )
    values = {
        "name": name,
        "budget": budget,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "status": status,
    }

    def account_zone(conn: Connection) -> ZoneInfo:
        account = asset_service.get_asset(conn, business_id=owner, asset_id=ad_account_id)
        return ZoneInfo(str(account.details["timezone"]))

    zone = await store_work.read(state, account_zone)
    problems: list[FieldProblem] = []
    budget_minor: int | None = None
    try:
        budget_minor = minor_units(budget)
    except ValueError:
        problems.append(FieldProblem("budget_minor", "a number such as 250.00"))
    fields: dict[str, Any] = {
        "name": name,
        "budget_minor": budget_minor,
        "starts_at": _instant(starts_at, zone, "starts_at", problems),
        "ends_at": _instant(ends_at, zone, "ends_at", problems),
        "status": status,
    }
    if not problems:
        try:
            patch = CampaignPatch(**fields)
        except ValidationError as exc:
            problems.extend(
                FieldProblem(str(e["loc"][0]), "must not be negative") for e in exc.errors()
            )

    def work(conn: Connection) -> CampaignView:
        return asset_service.update_campaign(
            conn,
            business_id=owner,
            ad_account_id=ad_account_id,
            campaign_id=campaign_id,
            data=patch,
            actor=caller.actor,
            ip=caller.ip,
        )

    if not problems:
        try:
            saved = await store_work.write(state, work)
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        return await _campaign_page(
            request,
            state,
            caller,
            owner=owner,
            ad_account_id=ad_account_id,
            campaign_id=campaign_id,
            values=values,
            problems=problems,
        )
    return redirect(
        request,
        f"/assets/ad-accounts/{ad_account_id}/campaigns/{campaign_id}",
        notice=f"Campaign {saved.name} saved",
    )


@router.post("/assets/ad-accounts/{ad_account_id}/close")
async def close_ad_account(
    request: Request, state: State, ad_account_id: str, caller: AdsManage
) -> Response:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="manage"
    )
    back = f"/assets/ad-accounts/{ad_account_id}"

    return await form_action(
        request,
        state,
        back,
        "Ad account closed",
        lambda conn: asset_service.close_ad_account(
            conn, business_id=owner, ad_account_id=ad_account_id, actor=caller.actor, ip=caller.ip
        ),
    )


@router.post("/assets/social-accounts")
async def connect_social_account(
    request: Request,
    state: State,
    caller: AssetsManage,
    name: Annotated[str, Form()] = "",
    network: Annotated[str, Form()] = "",
    page_reference: Annotated[str, Form()] = "",
) -> Response:
    if not permissions.may_create(caller.role, "social_account"):
        return redirect(request, "/assets", error=permissions.creator_refusal("social_account"))
    data = SocialAccountIn(name=name, network=network, page_reference=page_reference)

    return await caller_action(
        request,
        state,
        caller,
        "/assets",
        f"Social account {name.strip()} connected",
        asset_service.connect_social_account,
        data=data,
    )
