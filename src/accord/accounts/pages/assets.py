"""The asset pages: pixels, properties, ad accounts with their campaigns, social accounts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from accord.accounts import assets as asset_service
from accord.accounts import permissions, service
from accord.accounts.models import AdAccountIn, CampaignIn, PropertyIn, SocialAccountIn
from accord.accounts.pages.common import (
    AdsManage,
    AdsRead,
    AssetsManage,
    AssetsRead,
    caller_action,
    form_action,
)
from accord.web import store_work
from accord.web.account_mail import base_url
from accord.web.auth import require_asset
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


@router.get("/assets/pixels/{pixel_id}")
async def pixel_page(
    request: Request, state: State, pixel_id: str, caller: AssetsRead
) -> HTMLResponse:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="analyse")
    pixel = await store_work.read(
        state, lambda conn: asset_service.get_pixel(conn, business_id=owner, pixel_id=pixel_id)
    )
    snippet = asset_service.install_snippet(
        base_url=base_url(request, state.settings), write_key=pixel.write_key
    )
    return await arender(
        request, "accounts/pixel.html", caller=caller, pixel=pixel, snippet=snippet
    )


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
        limit = round(float(spend_limit) * 100) if spend_limit.strip() else None
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
        budget_minor = round(float(budget) * 100)
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
