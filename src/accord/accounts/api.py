"""Admin API of accounts: the business, people, invitations, assets, tokens, partners, audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection

from accord.accounts import assets as asset_service
from accord.accounts import permissions, pixel_web, service, team, tokens
from accord.accounts.models import (
    AdAccountIn,
    AssetView,
    AuditEntry,
    BusinessIn,
    BusinessView,
    CampaignIn,
    CampaignPatch,
    CampaignView,
    InvitationIn,
    InvitationView,
    MemberView,
    NewToken,
    PartnerShareIn,
    PartnerShareView,
    PixelIn,
    PixelPatch,
    PixelView,
    PropertyIn,
    SocialAccountIn,
    TokenIn,
    TokenView,
)
from accord.web import account_mail, store_work
from accord.web.auth import Caller, require_asset, requires
from accord.web.state import State

router = APIRouter(prefix="/api/accounts", tags=["accounts"])


Read = Annotated[Caller, Depends(requires("accounts.read"))]
Manage = Annotated[Caller, Depends(requires("accounts.manage"))]


# -- business --------------------------------------------------------------------------


@router.get("/business", response_model=BusinessView, summary="The caller's business")
async def get_business(state: State, caller: Read) -> BusinessView:
    return await store_work.read(
        state, lambda c: service.get_business(c, business_id=caller.business_id)
    )


@router.put("/business", response_model=BusinessView, summary="Change the business's details")
async def update_business(state: State, caller: Manage, body: BusinessIn) -> BusinessView:
    return await store_work.write(
        state,
        lambda c: service.update_business(
            c, business_id=caller.business_id, details=body, actor=caller.actor, ip=caller.ip
        ),
    )


# -- people and invitations ------------------------------------------------------------


@router.get("/people", response_model=list[MemberView], summary="People of the business")
async def list_people(state: State, caller: Read) -> list[MemberView]:
    return await store_work.read(state, lambda c: team.members(c, business_id=caller.business_id))


class RoleIn(BaseModel):
    role: str


class GrantsIn(BaseModel):
    grants: dict[str, list[str]]


@router.put("/people/{person_id}/role", response_model=MemberView, summary="Set a role")
async def set_role(state: State, caller: Manage, person_id: str, body: RoleIn) -> MemberView:
    return await store_work.write(
        state,
        lambda c: team.set_role(
            c,
            business_id=caller.business_id,
            person_id=person_id,
            role=body.role,
            by=caller.access,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.put("/people/{person_id}/grants", response_model=MemberView, summary="Set tasks on assets")
async def set_grants(state: State, caller: Manage, person_id: str, body: GrantsIn) -> MemberView:
    return await store_work.write(
        state,
        lambda c: team.set_grants(
            c,
            business_id=caller.business_id,
            person_id=person_id,
            grants=body.grants,
            by=caller.access,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.delete("/people/{person_id}", status_code=204, summary="Remove a person")
async def remove_person(state: State, caller: Manage, person_id: str) -> Response:
    await store_work.write(
        state,
        lambda c: team.remove_person(
            c,
            business_id=caller.business_id,
            person_id=person_id,
            by=caller.access,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )
    return Response(status_code=204)


@router.get("/invitations", response_model=list[InvitationView], summary="Invitations")
async def list_invitations(state: State, caller: Read) -> list[InvitationView]:
    return await store_work.read(
        state, lambda c: team.list_invitations(c, business_id=caller.business_id)
    )


@router.post(
    "/invitations", response_model=InvitationView, status_code=201, summary="Invite a person"
)
async def invite(
    request: Request, state: State, caller: Manage, body: InvitationIn
) -> InvitationView:
    days = state.settings.invitation_days
    created, _ = await account_mail.send_invitation(
        request,
        state,
        lambda c: team.invite(
            c,
            business_id=caller.business_id,
            data=body,
            invited_by=caller.person_id,
            days=days,
            by=caller.access,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )
    return await store_work.read(
        state,
        lambda c: team.get_invitation(
            c, business_id=caller.business_id, invitation_id=created.invitation.id
        ),
    )


@router.delete("/invitations/{invitation_id}", response_model=InvitationView, summary="Withdraw")
async def revoke_invitation(state: State, caller: Manage, invitation_id: str) -> InvitationView:
    return await store_work.write(
        state,
        lambda c: team.revoke_invitation(
            c,
            business_id=caller.business_id,
            invitation_id=invitation_id,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


# -- assets ----------------------------------------------------------------------------


@router.get("/assets", response_model=list[AssetView], summary="Assets the caller can see")
async def list_assets(
    state: State,
    caller: Annotated[Caller, Depends(requires("assets.read"))],
    kind: str | None = Query(default=None),
) -> list[AssetView]:
    return await store_work.read(
        state,
        lambda c: asset_service.asset_views(
            c, rows=service.visible_assets(c, access=caller.access, kind=kind)
        ),
    )


@router.get("/assets/{asset_id}", response_model=AssetView, summary="One asset")
async def get_asset(
    state: State, caller: Annotated[Caller, Depends(requires("assets.read"))], asset_id: str
) -> AssetView:
    owner = await require_asset(state, caller, kind=None, asset_id=asset_id, task="analyse")
    return await store_work.read(
        state, lambda c: asset_service.get_asset(c, business_id=owner, asset_id=asset_id)
    )


AdminAssets = Annotated[Caller, Depends(requires("assets.manage"))]


@router.post("/pixels", response_model=PixelView, status_code=201, summary="Create a pixel")
async def create_pixel(state: State, caller: AdminAssets, body: PixelIn) -> PixelView:
    permissions.check_may_create(caller.role, "pixel")
    return await store_work.write(
        state,
        lambda c: asset_service.create_pixel(
            c,
            business_id=caller.business_id,
            name=body.name,
            kind=body.kind,
            max_pixels=state.settings.max_pixels_per_business,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.get("/pixels/{pixel_id}", response_model=PixelView, summary="A pixel and its write key")
async def get_pixel(
    state: State, caller: Annotated[Caller, Depends(requires("assets.read"))], pixel_id: str
) -> PixelView:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="analyse")
    return await store_work.read(
        state, lambda c: asset_service.get_pixel(c, business_id=owner, pixel_id=pixel_id)
    )


@router.patch(
    "/pixels/{pixel_id}",
    response_model=PixelView,
    summary="Rename a pixel, disable or enable it, or set the origins browsers may send from",
    description="A disabled pixel's write key stops accepting events; enabling one counts "
    "against ACCORD_MAX_PIXELS_PER_BUSINESS again. `allowed_origins` restricts browsers "
    '(`["*"]` or `[]`: any origin). Fields left out keep their value.',
)
async def update_pixel(
    state: State, caller: AdminAssets, pixel_id: str, body: PixelPatch
) -> PixelView:
    owner = await require_asset(state, caller, kind="pixel", asset_id=pixel_id, task="manage")

    def work(c: Connection) -> PixelView:
        pixel = asset_service.get_pixel(c, business_id=owner, pixel_id=pixel_id)
        if body.name is not None or "name" in body.model_fields_set:
            pixel = asset_service.rename_pixel(
                c,
                business_id=owner,
                pixel_id=pixel_id,
                name=body.name or "",
                actor=caller.actor,
                ip=caller.ip,
            )
        if body.enabled is not None:
            pixel = asset_service.set_pixel_enabled(
                c,
                business_id=owner,
                pixel_id=pixel_id,
                enabled=body.enabled,
                max_pixels=state.settings.max_pixels_per_business,
                actor=caller.actor,
                ip=caller.ip,
            )
        if body.allowed_origins is not None:
            pixel = pixel_web.set_allowed_origins(
                c,
                business_id=owner,
                pixel_id=pixel_id,
                entries=body.allowed_origins,
                actor=caller.actor,
                ip=caller.ip,
            )
        return pixel

    pixel = await store_work.write(state, work)
    state.write_keys.forget(pixel.write_key)
    return pixel


@router.post("/properties", response_model=AssetView, status_code=201, summary="Add a property")
async def create_property(state: State, caller: AdminAssets, body: PropertyIn) -> AssetView:
    permissions.check_may_create(caller.role, "property")
    return await store_work.write(
        state,
        lambda c: asset_service.create_property(
            c, business_id=caller.business_id, data=body, actor=caller.actor, ip=caller.ip
        ),
    )


@router.post(
    "/social-accounts", response_model=AssetView, status_code=201, summary="Connect a page"
)
async def connect_social_account(
    state: State, caller: AdminAssets, body: SocialAccountIn
) -> AssetView:
    permissions.check_may_create(caller.role, "social_account")
    return await store_work.write(
        state,
        lambda c: asset_service.connect_social_account(
            c, business_id=caller.business_id, data=body, actor=caller.actor, ip=caller.ip
        ),
    )


Ads = Annotated[Caller, Depends(requires("ads.manage"))]


@router.post("/ad-accounts", response_model=AssetView, status_code=201, summary="Add an ad account")
async def create_ad_account(state: State, caller: Ads, body: AdAccountIn) -> AssetView:
    permissions.check_may_create(caller.role, "ad_account")
    return await store_work.write(
        state,
        lambda c: asset_service.create_ad_account(
            c, business_id=caller.business_id, data=body, actor=caller.actor, ip=caller.ip
        ),
    )


@router.post(
    "/ad-accounts/{ad_account_id}/close", response_model=AssetView, summary="Close an ad account"
)
async def close_ad_account(state: State, caller: Ads, ad_account_id: str) -> AssetView:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="manage"
    )
    return await store_work.write(
        state,
        lambda c: asset_service.close_ad_account(
            c, business_id=owner, ad_account_id=ad_account_id, actor=caller.actor, ip=caller.ip
        ),
    )


@router.get(
    "/ad-accounts/{ad_account_id}/campaigns",
    response_model=list[CampaignView],
    summary="Campaigns of an ad account",
)
async def list_campaigns(
    state: State,
    caller: Annotated[Caller, Depends(requires("ads.read"))],
    ad_account_id: str,
) -> list[CampaignView]:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="analyse"
    )
    return await store_work.read(
        state,
        lambda c: asset_service.list_campaigns(c, business_id=owner, ad_account_id=ad_account_id),
    )


@router.post(
    "/ad-accounts/{ad_account_id}/campaigns",
    response_model=CampaignView,
    status_code=201,
    summary="Create a campaign",
)
async def create_campaign(
    state: State, caller: Ads, ad_account_id: str, body: CampaignIn
) -> CampaignView:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="advertise"
    )
    return await store_work.write(
        state,
        lambda c: asset_service.create_campaign(
            c,
            business_id=owner,
            ad_account_id=ad_account_id,
            data=body,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.patch(
    "/ad-accounts/{ad_account_id}/campaigns/{campaign_id}",
    response_model=CampaignView,
    summary="Change a campaign",
    description="Name, budget, start, end and status; fields left out keep their value. "
    "The checks of creating one apply: the budget within the ad account's spend limit, "
    "the end after the start, an open ad account. An ended campaign stays ended and one "
    "that has run does not become a draft again (400 invalid_input naming the field).",
)
async def update_campaign(
    state: State, caller: Ads, ad_account_id: str, campaign_id: str, body: CampaignPatch
) -> CampaignView:
    owner = await require_asset(
        state, caller, kind="ad_account", asset_id=ad_account_id, task="advertise"
    )
    return await store_work.write(
        state,
        lambda c: asset_service.update_campaign(
            c,
            business_id=owner,
            ad_account_id=ad_account_id,
            campaign_id=campaign_id,
            data=body,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


# -- tokens ----------------------------------------------------------------------------


@router.get("/tokens", response_model=list[TokenView], summary="API tokens of the business")
async def list_tokens(state: State, caller: Manage) -> list[TokenView]:
    return await store_work.read(
        state, lambda c: tokens.list_tokens(c, business_id=caller.business_id)
    )


@router.post("/tokens", response_model=NewToken, status_code=201, summary="Make an API token")
async def create_token(state: State, caller: Manage, body: TokenIn) -> NewToken:
    """The token's plain text is in this answer only; Accord keeps its hash."""
    return await store_work.write(
        state,
        lambda c: tokens.create_token(
            c,
            access=caller.access,
            name=body.name,
            scope=body.permissions,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(state: State, caller: Manage, token_id: str) -> Response:
    await store_work.write(
        state,
        lambda c: tokens.revoke_token(
            c, business_id=caller.business_id, token_id=token_id, actor=caller.actor, ip=caller.ip
        ),
    )
    return Response(status_code=204)


# -- partners --------------------------------------------------------------------------


class SharesView(BaseModel):
    given: list[PartnerShareView]
    received: list[PartnerShareView]


@router.get("/partners", response_model=SharesView, summary="Assets shared with and by partners")
async def list_shares(state: State, caller: Read) -> SharesView:
    given, received = await store_work.read(
        state, lambda c: team.shares(c, business_id=caller.business_id)
    )
    return SharesView(given=given, received=received)


@router.post(
    "/partners", response_model=PartnerShareView, status_code=201, summary="Share an asset"
)
async def share(state: State, caller: Manage, body: PartnerShareIn) -> PartnerShareView:
    return await store_work.write(
        state,
        lambda c: team.share_with_partner(
            c,
            business_id=caller.business_id,
            data=body,
            by=caller.access,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.delete("/partners/{share_id}", status_code=204, summary="Revoke a share")
async def revoke_share(state: State, caller: Manage, share_id: str) -> Response:
    await store_work.write(
        state,
        lambda c: team.revoke_share(
            c, business_id=caller.business_id, share_id=share_id, actor=caller.actor, ip=caller.ip
        ),
    )
    return Response(status_code=204)


# -- security and audit ------------------------------------------------------------------


class SecurityView(BaseModel):
    two_factor_policy: str
    without_two_factor: list[MemberView]
    admins: int
    max_admins: int
    too_many_admins: bool


class PolicyIn(BaseModel):
    policy: str


@router.get("/security", response_model=SecurityView, summary="The security centre")
async def security(state: State, caller: Manage) -> SecurityView:
    report = await store_work.read(
        state,
        lambda c: team.security_report(
            c, business_id=caller.business_id, max_admins=state.settings.max_admins_per_business
        ),
    )
    return SecurityView(
        two_factor_policy=report.policy,
        without_two_factor=report.without_two_factor,
        admins=report.admins,
        max_admins=report.max_admins,
        too_many_admins=report.too_many_admins,
    )


@router.put("/security/two-factor-policy", status_code=204, summary="Set the two-factor policy")
async def set_policy(state: State, caller: Manage, body: PolicyIn) -> Response:
    await store_work.write(
        state,
        lambda c: team.set_two_factor_policy(
            c, business_id=caller.business_id, policy=body.policy, actor=caller.actor, ip=caller.ip
        ),
    )
    return Response(status_code=204)


AuditReader = Annotated[Caller, Depends(requires("audit.read"))]


@router.get("/audit", response_model=list[AuditEntry], summary="The audit log, newest first")
async def audit(
    state: State,
    caller: AuditReader,
    action: str | None = Query(default=None, description="prefix, e.g. pixel."),
    actor_id: str | None = None,
    asset_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(default=200, ge=1, le=10_000),
) -> list[AuditEntry]:
    return await store_work.read(
        state,
        lambda c: service.audit_entries(
            c,
            business_id=caller.business_id,
            action=action,
            actor_id=actor_id,
            asset_id=asset_id,
            since=since,
            until=until,
            limit=limit,
        ),
    )


@router.get("/audit.csv", summary="The audit log as CSV", response_class=Response)
async def audit_export(
    state: State,
    caller: AuditReader,
    action: str | None = None,
    asset_id: str | None = None,
) -> Response:
    entries = await store_work.read(
        state,
        lambda c: service.audit_entries(
            c, business_id=caller.business_id, action=action, asset_id=asset_id, limit=1_000_000
        ),
    )
    return Response(service.audit_csv(entries), media_type="text/csv")
