"""The business pages: choosing and creating businesses, and business settings (the
overview at `/app` is in `analytics/pages/overview.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from accord.accounts import people, service
from accord.accounts.models import BusinessIn
from accord.accounts.pages.common import (
    AccountsManage,
    AccountsRead,
    caller_action,
    error_text,
    session_caller,
)
from accord.core.errors import InvalidInput
from accord.web import account_mail, store_work
from accord.web.auth import SignedIn
from accord.web.state import State
from accord.web.ui import arender, redirect

router = APIRouter(include_in_schema=False)


def business_form(
    name: Annotated[str, Form()],
    contact_email: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "advertiser",
    address: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
) -> BusinessIn:
    """The business form's fields; a blank one is left for validation to refuse with a reason."""
    return BusinessIn(
        name=name or " ",
        contact_email=contact_email or "   ",
        kind=kind,
        address=address or None,
        phone=phone or None,
        website=website or None,
    )


BusinessForm = Annotated[BusinessIn, Depends(business_form)]


@router.get("/businesses")
async def businesses_page(request: Request, state: State, session: SignedIn) -> HTMLResponse:
    caller = await session_caller(state, session, request)
    mine = await store_work.read(
        state, lambda conn: service.businesses_of(conn, person_id=session.person.id)
    )
    return await arender(request, "accounts/businesses.html", caller=caller, businesses=mine)


@router.post("/businesses")
async def create_business(
    request: Request, state: State, session: SignedIn, details: BusinessForm
) -> Response:
    caller = await session_caller(state, session, request)

    def work(conn: Connection) -> str:
        business_id = service.new_business(
            conn, details=details, person_id=session.person.id, actor=caller.actor, ip=caller.ip
        )
        people.select_business(conn, session_id=session.id, business_id=business_id)
        return business_id

    try:
        await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/businesses", error=error_text(exc))
    return redirect(request, "/app", notice=f"Business {details.name} created")


@router.post("/businesses/switch")
async def switch_business(
    request: Request, state: State, session: SignedIn, business_id: Annotated[str, Form()]
) -> Response:
    def work(conn: Connection) -> bool:
        if service.role_of(conn, business_id=business_id, person_id=session.person.id) is None:
            return False
        people.select_business(conn, session_id=session.id, business_id=business_id)
        return True

    if not await store_work.write(state, work):
        return redirect(request, "/businesses", error="you are not a member of that business")
    return redirect(request, "/app")


@router.get("/business/settings")
async def business_settings(request: Request, state: State, caller: AccountsRead) -> HTMLResponse:
    business = await store_work.read(
        state, lambda conn: service.get_business(conn, business_id=caller.business_id)
    )
    return await arender(
        request,
        "accounts/business_settings.html",
        caller=caller,
        business=business,
        can_manage=caller.can("accounts.manage"),
        mail_configured=state.settings.smtp_host is not None,
    )


@router.post("/business/settings")
async def save_business_settings(
    request: Request, state: State, caller: AccountsManage, details: BusinessForm
) -> Response:
    return await caller_action(
        request,
        state,
        caller,
        "/business/settings",
        "Business settings saved",
        service.update_business,
        details=details,
    )


@router.post("/business/settings/verify")
async def verify_email(request: Request, state: State, caller: AccountsManage) -> Response:
    business = await store_work.read(
        state, lambda conn: service.get_business(conn, business_id=caller.business_id)
    )
    if not business.contact_email:
        return redirect(request, "/business/settings", error="set a contact email first")
    settings = state.settings
    email = service.verification_email(
        settings.resolved_secret_key(),
        business_id=business.id,
        email=business.contact_email,
        name=business.name,
        base_url=account_mail.base_url(request, settings),
        hours=settings.email_link_hours,
    )
    message = (
        f"Confirmation link sent to {email.to}"
        if await account_mail.send(settings, email)
        else f"No mail server configured; confirmation link: {email.link}"
    )
    return redirect(request, "/business/settings", notice=message)


@router.get("/confirm-email")
async def confirm_email(request: Request, state: State, token: str = "") -> HTMLResponse:
    secret = state.settings.resolved_secret_key()
    confirmed = await store_work.write(
        state,
        lambda conn: service.confirm_email(
            conn, secret=secret, token=token, hours=state.settings.email_link_hours
        ),
    )
    return await arender(
        request,
        "accounts/confirm_email.html",
        confirmed=confirmed,
        status=200 if confirmed else 400,
    )
