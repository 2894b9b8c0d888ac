"""The people pages: members, their roles and asset tasks, invitations and partner shares."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from accord.accounts import people, permissions, service, team
from accord.accounts.models import InvitationIn, PartnerShareIn
from accord.accounts.pages.common import (
    AccountsManage,
    AccountsRead,
    caller_action,
    check_anonymous_csrf,
    error_text,
    session_caller,
    set_session_cookie,
)
from accord.core.errors import CsrfRejected, InvalidInput
from accord.web import account_mail, store_work
from accord.web.auth import SESSION_COOKIE, client_ip
from accord.web.state import State
from accord.web.ui import arender, redirect

router = APIRouter(include_in_schema=False)


@router.get("/people")
async def people_page(request: Request, state: State, caller: AccountsRead) -> HTMLResponse:
    def work(conn: Connection) -> dict[str, Any]:
        return {
            "members": team.members(conn, business_id=caller.business_id),
            "invitations": team.list_invitations(conn, business_id=caller.business_id),
            "assets": service.visible_assets(conn, access=caller.access),
        }

    return await arender(
        request,
        "accounts/people.html",
        caller=caller,
        roles=permissions.ROLE_LABELS,
        tasks=permissions.TASK_LABELS,
        can_manage=caller.can("accounts.manage"),
        **await store_work.read(state, work),
    )


def _grants_from_form(form: Any) -> dict[str, list[str]]:
    """Form fields named `grant:<asset id>` carry the tasks chosen for that asset."""
    grants: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if key.startswith("grant:") and isinstance(value, str) and value:
            grants.setdefault(key[6:], []).append(value)
    return grants


@router.post("/people/invite")
async def invite(request: Request, state: State, caller: AccountsManage) -> Response:
    form = await request.form()
    data = InvitationIn(
        email=str(form.get("email", "")),
        role=str(form.get("role", "")),
        grants=_grants_from_form(form),
    )
    days = state.settings.invitation_days
    try:
        _, link = await account_mail.send_invitation(
            request,
            state,
            lambda conn: team.invite(
                conn,
                business_id=caller.business_id,
                data=data,
                invited_by=caller.person_id,
                days=days,
                by=caller.access,
                actor=caller.actor,
                ip=caller.ip,
            ),
        )
    except InvalidInput as exc:
        return redirect(request, "/people", error=error_text(exc))
    if link is None:
        return redirect(request, "/people", notice=f"Invitation sent to {data.email}")
    return redirect(
        request, "/people", notice=f"No mail server configured; send this link yourself: {link}"
    )


@router.post("/invitations/{invitation_id}/resend")
async def resend_invitation(
    request: Request, state: State, invitation_id: str, caller: AccountsManage
) -> Response:
    days = state.settings.invitation_days
    try:
        _, link = await account_mail.send_invitation(
            request,
            state,
            lambda conn: team.renew_invitation(
                conn,
                business_id=caller.business_id,
                invitation_id=invitation_id,
                days=days,
                by=caller.access,
                actor=caller.actor,
                ip=caller.ip,
            ),
        )
    except InvalidInput as exc:
        return redirect(request, "/people", error=error_text(exc))
    if link is None:
        return redirect(request, "/people", notice="Invitation sent again")
    return redirect(request, "/people", notice=f"No mail server configured; new link: {link}")


@router.post("/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request, state: State, invitation_id: str, caller: AccountsManage
) -> Response:
    return await caller_action(
        request,
        state,
        caller,
        "/people",
        "Invitation withdrawn",
        team.revoke_invitation,
        invitation_id=invitation_id,
    )


@router.post("/people/{person_id}/role")
async def change_role(
    request: Request,
    state: State,
    person_id: str,
    caller: AccountsManage,
    role: Annotated[str, Form()],
) -> Response:
    return await caller_action(
        request,
        state,
        caller,
        "/people",
        "Role changed",
        team.set_role,
        person_id=person_id,
        by=caller.access,
        role=role,
    )


@router.post("/people/{person_id}/grants")
async def change_grants(
    request: Request, state: State, person_id: str, caller: AccountsManage
) -> Response:
    grants = _grants_from_form(await request.form())

    return await caller_action(
        request,
        state,
        caller,
        "/people",
        "Asset access saved",
        team.set_grants,
        person_id=person_id,
        by=caller.access,
        grants=grants,
    )


@router.post("/people/{person_id}/remove")
async def remove_person(
    request: Request, state: State, person_id: str, caller: AccountsManage
) -> Response:
    return await caller_action(
        request,
        state,
        caller,
        "/people",
        "Person removed; their sessions and tokens are revoked",
        team.remove_person,
        person_id=person_id,
        by=caller.access,
    )


async def _optional_session(request: Request, state: State) -> people.Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    session = await store_work.read(state, lambda conn: people.session_for(conn, token=token))
    return session if session is not None and session.stage == "full" else None


@router.get("/invitations/accept")
async def invitation_page(request: Request, state: State, token: str = "") -> HTMLResponse:
    session = await _optional_session(request, state)

    def work(conn: Connection) -> tuple[team.PendingInvitation, bool]:
        pending = team.invitation_for_token(conn, token=token)
        return pending, people.person_by_email(conn, email=pending.email) is not None

    try:
        pending, has_account = await store_work.read(state, work)
    except InvalidInput as exc:
        return await arender(
            request, "accounts/invitation.html", status=400, error=error_text(exc), pending=None
        )
    caller = await session_caller(state, session, request) if session else None
    return await arender(
        request,
        "accounts/invitation.html",
        caller=caller,
        pending=pending,
        token=token,
        signed_in_as=session.person.email if session else None,
        has_account=has_account,
    )


@router.post("/invitations/accept")
async def accept_invitation(
    request: Request,
    state: State,
    token: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    session = await _optional_session(request, state)
    settings = state.settings
    ip = client_ip(request)
    if session is not None:
        if not csrf_token or not hmac.compare_digest(csrf_token, session.csrf_token):
            raise CsrfRejected()

        def join(conn: Connection) -> str:
            business_id = team.accept_invitation(
                conn, token=token, person_id=session.person.id, ip=ip
            )
            people.select_business(conn, session_id=session.id, business_id=business_id)
            return business_id

        try:
            await store_work.write(state, join)
        except InvalidInput as exc:
            return redirect(request, f"/invitations/accept?token={token}", error=error_text(exc))
        return redirect(request, "/app", notice="Welcome: you joined the business")
    check_anonymous_csrf(request, csrf_token)

    def sign_up_and_join(conn: Connection) -> str:
        pending = team.invitation_for_token(conn, token=token)
        person = people.sign_up(conn, email=pending.email, name=name, password=password)
        team.accept_invitation(conn, token=token, person_id=person.id, ip=ip)
        return people.start_session(
            conn, person_id=person.id, stage="full", ip=ip, hours=settings.session_hours
        )

    try:
        session_token = await store_work.write(state, sign_up_and_join)
    except InvalidInput as exc:
        return redirect(request, f"/invitations/accept?token={token}", error=error_text(exc))
    response = redirect(
        request, "/app", notice="Welcome: your account is ready and you joined the business"
    )
    set_session_cookie(request, response, session_token, settings.session_hours)
    return response


@router.get("/partners")
async def partners_page(request: Request, state: State, caller: AccountsRead) -> HTMLResponse:
    def work(conn: Connection) -> dict[str, Any]:
        given, received = team.shares(conn, business_id=caller.business_id)
        own = service.visible_assets(conn, access=caller.access)
        return {
            "given": given,
            "received": received,
            "assets": [a for a in own if a["business_id"] == caller.business_id],
        }

    return await arender(
        request,
        "accounts/partners.html",
        caller=caller,
        tasks=permissions.TASK_LABELS,
        can_manage=caller.can("accounts.manage"),
        **await store_work.read(state, work),
    )


@router.post("/partners")
async def share_with_partner(request: Request, state: State, caller: AccountsManage) -> Response:
    form = await request.form()
    data = PartnerShareIn(
        partner_business_id=str(form.get("partner_business_id", "")).strip(),
        asset_id=str(form.get("asset_id", "")),
        tasks=[str(t) for t in form.getlist("tasks")],
    )

    return await caller_action(
        request,
        state,
        caller,
        "/partners",
        "Asset shared with the partner",
        team.share_with_partner,
        data=data,
        by=caller.access,
    )


@router.post("/partners/{share_id}/revoke")
async def revoke_share(
    request: Request, state: State, share_id: str, caller: AccountsManage
) -> Response:
    return await caller_action(
        request, state, caller, "/partners", "Share revoked", team.revoke_share, share_id=share_id
    )
