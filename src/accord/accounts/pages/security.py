"""The security pages: the security centre's two-factor policy, API tokens and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from accord.accounts import permissions, service, team, tokens
from accord.accounts.models import NewToken
from accord.accounts.pages.common import AccountsManage, AuditRead, caller_action, error_text
from accord.core.errors import Forbidden, InvalidInput
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.state import State
from accord.web.ui import arender, redirect

router = APIRouter(include_in_schema=False)


@router.get("/security")
async def security_page(request: Request, state: State, caller: AccountsManage) -> HTMLResponse:
    report = await store_work.read(
        state,
        lambda conn: team.security_report(
            conn, business_id=caller.business_id, max_admins=state.settings.max_admins_per_business
        ),
    )
    return await arender(request, "accounts/security.html", caller=caller, report=report)


@router.post("/security/policy")
async def set_policy(
    request: Request, state: State, caller: AccountsManage, policy: Annotated[str, Form()]
) -> Response:
    return await caller_action(
        request,
        state,
        caller,
        "/security",
        "Two-factor policy saved",
        team.set_two_factor_policy,
        policy=policy,
    )


async def _tokens_page(
    request: Request, state: State, caller: Caller, created: NewToken | None = None
) -> HTMLResponse:
    found = await store_work.read(
        state, lambda conn: tokens.list_tokens(conn, business_id=caller.business_id)
    )
    return await arender(
        request,
        "accounts/tokens.html",
        caller=caller,
        tokens=found,
        all_permissions=permissions.PERMISSIONS,
        created=created,
    )


@router.get("/tokens")
async def tokens_page(request: Request, state: State, caller: AccountsManage) -> HTMLResponse:
    return await _tokens_page(request, state, caller)


@router.post("/tokens")
async def create_token(request: Request, state: State, caller: AccountsManage) -> Response:
    form = await request.form()
    name = str(form.get("name", ""))
    scope = [str(p) for p in form.getlist("permissions")]
    try:
        created = await store_work.write(
            state,
            lambda conn: tokens.create_token(
                conn, access=caller.access, name=name, scope=scope, actor=caller.actor, ip=caller.ip
            ),
        )
    except (InvalidInput, Forbidden) as exc:
        return redirect(request, "/tokens", error=error_text(exc))
    # The token's plain text is shown on this answer only.
    return await _tokens_page(request, state, caller, created)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, state: State, token_id: str, caller: AccountsManage
) -> Response:
    return await caller_action(
        request, state, caller, "/tokens", "Token revoked", tokens.revoke_token, token_id=token_id
    )


@router.get("/audit")
async def audit_page(
    request: Request,
    state: State,
    caller: AuditRead,
    action: str | None = Query(default=None),
    asset_id: str | None = Query(default=None),
) -> HTMLResponse:
    entries = await store_work.read(
        state,
        lambda conn: service.audit_entries(
            conn, business_id=caller.business_id, action=action or None, asset_id=asset_id or None
        ),
    )
    return await arender(
        request,
        "accounts/audit.html",
        caller=caller,
        entries=entries,
        action=action or "",
        asset_id=asset_id or "",
    )


@router.get("/audit.csv")
async def audit_export(
    request: Request,
    state: State,
    caller: AuditRead,
    action: str | None = Query(default=None),
    asset_id: str | None = Query(default=None),
) -> Response:
    entries = await store_work.read(
        state,
        lambda conn: service.audit_entries(
            conn,
            business_id=caller.business_id,
            action=action or None,
            asset_id=asset_id or None,
            limit=100_000,
        ),
    )
    return Response(
        service.audit_csv(entries),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )
