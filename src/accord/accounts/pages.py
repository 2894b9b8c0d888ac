"""The accounts pages of the admin UI: sign-in, businesses, people, assets, partners, security."""

from __future__ import annotations

import csv
import hmac
import io
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from accord.accounts import assets as asset_service
from accord.accounts import people, permissions, service, team
from accord.accounts.models import (
    AdAccountIn,
    BusinessIn,
    CampaignIn,
    InvitationIn,
    PartnerShareIn,
    PropertyIn,
    SocialAccountIn,
)
from accord.core.errors import AccordError, CsrfRejected, Forbidden, InvalidInput, InvalidToken
from accord.core.settings import Settings
from accord.core.signing import Signer
from accord.messaging import smtp
from accord.messaging.smtp import SmtpConfig
from accord.web import store_work
from accord.web.auth import (
    ANON_CSRF_COOKIE,
    SESSION_COOKIE,
    Caller,
    SignedIn,
    check_csrf,
    client_ip,
    requires,
)
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)

nav = [
    NavEntry("Overview", "/app", "assets.read", "Business", 10),
    NavEntry("Assets", "/assets", "assets.read", "Business", 20),
    NavEntry("People", "/people", "accounts.read", "Settings", 60),
    NavEntry("Partners", "/partners", "accounts.read", "Settings", 65),
    NavEntry("Business settings", "/business/settings", "accounts.read", "Settings", 70),
    NavEntry("Security centre", "/security", "accounts.manage", "Settings", 75),
    NavEntry("API tokens", "/tokens", "accounts.manage", "Settings", 80),
    NavEntry("Audit log", "/audit", "audit.read", "Settings", 85),
]


def _error_text(exc: AccordError) -> str:
    if isinstance(exc, InvalidInput):
        return "; ".join(
            p.reason if p.field in ("form", "") else f"{p.field}: {p.reason}" for p in exc.problems
        )
    return str(exc)


async def _form_action(
    request: Request,
    state: AppState,
    back: str,
    notice: str,
    change: Callable[[Connection], object],
) -> RedirectResponse:
    """Run a form's change in one store transaction; on bad input go back with the reason.

    A refused change rolls back, so nothing of it is kept.
    """
    try:
        await store_work.write(state, change)
    except (InvalidInput, Forbidden) as exc:
        return redirect(request, back, error=_error_text(exc))
    return redirect(request, back, notice=notice)


def _limits(settings: Settings) -> people.LoginLimits:
    return people.LoginLimits(
        window_seconds=settings.login_window_seconds,
        max_failures_per_account=settings.login_max_failures_per_account,
        max_failures_per_ip=settings.login_max_failures_per_ip,
        lockout_seconds=settings.login_lockout_seconds,
    )


async def send_account_email(settings: Settings, *, to: str, subject: str, text: str) -> bool:
    """Send an account email; False when no mail server is configured (nothing is sent).

    Unlike campaigns, account emails never fall back to a local MTA: without
    `ACCORD_SMTP_HOST` the UI shows the link to pass on instead.
    """
    if settings.smtp_host is None:
        return False
    await smtp.send_text(
        SmtpConfig.from_settings(settings),
        sender=settings.mail_from,
        to=to,
        subject=subject,
        text=text,
    )
    return True


def base_url(request: Request, settings: Settings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/app"


def _set_session_cookie(request: Request, response: Response, token: str, hours: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _check_anonymous_csrf(request: Request, given: str) -> None:
    expected = request.cookies.get(ANON_CSRF_COOKIE)
    if not expected or not given or not hmac.compare_digest(given, expected):
        raise CsrfRejected()


def _session_caller(state: State, session: people.Session, request: Request) -> Caller:
    """A caller for pages that need a signed-in person but not a business permission."""
    role: str | None = None
    if session.business_id:
        with state.store.read() as conn:
            role = service.role_of(
                conn, business_id=session.business_id, person_id=session.person.id
            )
    return Caller(
        business_id=session.business_id or "",
        permission="",
        role=role or "none",
        person_id=session.person.id,
        session_id=session.id,
        label=session.person.email,
        ip=client_ip(request),
        csrf_token=session.csrf_token,
        store=state.store,
    )


# -- sign-up, sign-in, sign-out --------------------------------------------------------


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    target = "/app" if request.cookies.get(SESSION_COOKIE) else "/sign-in"
    return RedirectResponse(target, status_code=303)


@router.get("/sign-up")
async def sign_up_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "accounts/sign_up.html", next=_safe_next(next))


@router.post("/sign-up")
async def sign_up(
    request: Request,
    state: State,
    email: Annotated[str, Form()],
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/businesses",
) -> Response:
    _check_anonymous_csrf(request, csrf_token)
    settings = state.settings

    def work(conn: Connection) -> str:
        person = people.sign_up(conn, email=email, name=name, password=password)
        return people.start_session(
            conn,
            person_id=person.id,
            stage="full",
            ip=client_ip(request),
            hours=settings.session_hours,
        )

    try:
        token = await store_work.write(state, work)
    except InvalidInput as exc:
        return render(
            request,
            "accounts/sign_up.html",
            status=400,
            error=_error_text(exc),
            email=email,
            name=name,
            next=next,
        )
    response = RedirectResponse(
        _safe_next(next) if next != "/app" else "/businesses", status_code=303
    )
    _set_session_cookie(request, response, token, settings.session_hours)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "accounts/sign_in.html", next=_safe_next(next))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    state: State,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/app",
) -> Response:
    _check_anonymous_csrf(request, csrf_token)
    settings = state.settings
    ip = client_ip(request)
    try:
        person = await run_in_threadpool(
            people.sign_in,
            state.store,
            email=email,
            password=password,
            ip=ip,
            limits=_limits(settings),
        )
    except AccordError as exc:
        status = 429 if "try again" in str(exc) else 401
        return render(
            request, "accounts/sign_in.html", status=status, error=str(exc), email=email, next=next
        )

    def work(conn: Connection) -> tuple[str, bool]:
        stage = "password" if person.two_factor else "full"
        token = people.start_session(
            conn, person_id=person.id, stage=stage, ip=ip, hours=settings.session_hours
        )
        must_enrol = not person.two_factor and any(
            people.two_factor_required(conn, person_id=person.id, business_id=b.id)
            for b, _ in service.businesses_of(conn, person_id=person.id)
        )
        return token, must_enrol

    token, must_enrol = await store_work.write(state, work)
    if person.two_factor:
        target = f"/sign-in/two-factor?next={_safe_next(next)}"
    elif must_enrol:
        target = "/account/two-factor"
    else:
        target = _safe_next(next)
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, token, settings.session_hours)
    return response


async def _half_session(request: Request, state: State) -> people.Session:
    token = request.cookies.get(SESSION_COOKIE)
    session = await store_work.read(state, lambda conn: people.session_for(conn, token=token))
    if session is None or session.stage != "password":
        raise InvalidToken()
    await check_csrf(request, session.csrf_token)
    return session


HalfSignedIn = Annotated[people.Session, Depends(_half_session)]


@router.get("/sign-in/two-factor")
async def second_factor_page(
    request: Request, session: HalfSignedIn, next: str | None = None
) -> HTMLResponse:
    return render(
        request,
        "accounts/second_factor.html",
        csrf_token_override=session.csrf_token,
        next=_safe_next(next),
    )


@router.post("/sign-in/two-factor")
async def second_factor(
    request: Request,
    state: State,
    session: HalfSignedIn,
    code: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/app",
) -> Response:
    try:
        await run_in_threadpool(
            people.pass_second_factor,
            state.store,
            person=session.person,
            code=code,
            ip=client_ip(request),
            limits=_limits(state.settings),
        )
    except AccordError as exc:
        return render(
            request,
            "accounts/second_factor.html",
            status=429 if "try again" in str(exc) else 401,
            error=_error_text(exc),
            csrf_token_override=session.csrf_token,
            next=next,
        )
    await store_work.write(state, lambda conn: people.complete_session(conn, session_id=session.id))
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request, state: State, session: SignedIn) -> Response:
    await store_work.write(state, lambda conn: people.end_session(conn, session_id=session.id))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- two-factor enrolment ----------------------------------------------------------------


@router.get("/account/two-factor")
async def two_factor_page(request: Request, state: State, session: SignedIn) -> HTMLResponse:
    caller = _session_caller(state, session, request)
    if session.person.two_factor:
        remaining = await store_work.read(
            state, lambda conn: people.remaining_recovery_codes(conn, person_id=session.person.id)
        )
        return render(
            request, "accounts/two_factor.html", caller=caller, enabled=True, remaining=remaining
        )
    secret = await store_work.write(
        state, lambda conn: people.begin_enrolment(conn, person_id=session.person.id)
    )
    uri = people.provisioning_uri(secret=secret, email=session.person.email)
    return render(
        request,
        "accounts/two_factor.html",
        caller=caller,
        enabled=False,
        secret=secret,
        qr=people.qr_svg(uri),
    )


@router.post("/account/two-factor")
async def two_factor_confirm(
    request: Request, state: State, session: SignedIn, code: Annotated[str, Form()]
) -> Response:
    caller = _session_caller(state, session, request)
    try:
        codes = await store_work.write(
            state,
            lambda conn: people.confirm_enrolment(conn, person_id=session.person.id, code=code),
        )
    except InvalidInput as exc:
        return redirect(request, "/account/two-factor", error=_error_text(exc))
    if session.business_id:
        await store_work.write(
            state,
            lambda conn: service.audit(
                conn,
                business_id=str(session.business_id),
                actor=caller.actor,
                action="person.two_factor_on",
                asset=("person", session.person.id),
                ip=caller.ip,
            ),
        )
    return render(request, "accounts/recovery_codes.html", caller=caller, codes=codes)


# -- businesses ------------------------------------------------------------------------


@router.get("/businesses")
async def businesses_page(request: Request, state: State, session: SignedIn) -> HTMLResponse:
    caller = _session_caller(state, session, request)
    mine = await store_work.read(
        state, lambda conn: service.businesses_of(conn, person_id=session.person.id)
    )
    return render(request, "accounts/businesses.html", caller=caller, businesses=mine)


@router.post("/businesses")
async def create_business(
    request: Request,
    state: State,
    session: SignedIn,
    name: Annotated[str, Form()],
    contact_email: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "advertiser",
    address: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
) -> Response:
    caller = _session_caller(state, session, request)
    details = BusinessIn(
        name=name or " ",
        contact_email=contact_email or "   ",
        kind=kind,
        address=address or None,
        phone=phone or None,
        website=website or None,
    )

    def work(conn: Connection) -> str:
        business_id = service.new_business(
            conn, details=details, person_id=session.person.id, actor=caller.actor, ip=caller.ip
        )
        people.select_business(conn, session_id=session.id, business_id=business_id)
        return business_id

    try:
        await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/businesses", error=_error_text(exc))
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


@router.get("/app")
async def overview(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("assets.read"))]
) -> HTMLResponse:
    def work(conn: Connection) -> dict[str, Any]:
        return {
            "business": service.get_business(conn, business_id=caller.business_id),
            "assets": asset_service.asset_views(
                conn, rows=service.visible_assets(conn, access=caller.access)
            ),
            "role": caller.role,
        }

    return render(
        request, "accounts/overview.html", caller=caller, **await store_work.read(state, work)
    )


@router.get("/business/settings")
async def business_settings(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.read"))]
) -> HTMLResponse:
    business = await store_work.read(
        state, lambda conn: service.get_business(conn, business_id=caller.business_id)
    )
    return render(
        request,
        "accounts/business_settings.html",
        caller=caller,
        business=business,
        can_manage=caller.can("accounts.manage"),
        mail_configured=state.settings.smtp_host is not None,
    )


@router.post("/business/settings")
async def save_business_settings(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
    name: Annotated[str, Form()],
    contact_email: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "advertiser",
    address: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
) -> Response:
    details = BusinessIn(
        name=name or " ",
        contact_email=contact_email or "   ",
        kind=kind,
        address=address or None,
        phone=phone or None,
        website=website or None,
    )

    return await _form_action(
        request,
        state,
        "/business/settings",
        "Business settings saved",
        lambda conn: service.update_business(
            conn,
            business_id=caller.business_id,
            details=details,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


async def send_verification(
    request: Request, settings: Settings, *, business_id: str, email: str, name: str
) -> str:
    """Email the confirmation link; returns where it went or, without mail, the link."""
    token = Signer(settings.resolved_secret_key()).dumps_timed(
        "verify-email", f"{business_id}|{email}"
    )
    link = f"{base_url(request, settings)}/confirm-email?token={token}"
    sent = await send_account_email(
        settings,
        to=email,
        subject=f"Confirm the email address of {name} on Accord",
        text=(
            f"Someone asked to use this address as the contact email of {name} on Accord.\n\n"
            f"Confirm it by opening this link within {settings.email_link_hours} hours:\n{link}\n"
        ),
    )
    return (
        f"Confirmation link sent to {email}"
        if sent
        else f"No mail server configured; confirmation link: {link}"
    )


@router.post("/business/settings/verify")
async def verify_email(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.manage"))]
) -> Response:
    business = await store_work.read(
        state, lambda conn: service.get_business(conn, business_id=caller.business_id)
    )
    if not business.contact_email:
        return redirect(request, "/business/settings", error="set a contact email first")
    message = await send_verification(
        request,
        state.settings,
        business_id=business.id,
        email=business.contact_email,
        name=business.name,
    )
    return redirect(request, "/business/settings", notice=message)


@router.get("/confirm-email")
async def confirm_email(request: Request, state: State, token: str = "") -> HTMLResponse:
    payload = Signer(state.settings.resolved_secret_key()).loads_timed_or_none(
        "verify-email", token, max_age_seconds=state.settings.email_link_hours * 3600
    )
    confirmed = False
    if isinstance(payload, str) and "|" in payload:
        business_id, email = payload.split("|", 1)
        confirmed = await store_work.write(
            state,
            lambda conn: service.mark_email_verified(conn, business_id=business_id, email=email),
        )
    return render(
        request,
        "accounts/confirm_email.html",
        confirmed=confirmed,
        status=200 if confirmed else 400,
    )


# -- people and invitations ------------------------------------------------------------


@router.get("/people")
async def people_page(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.read"))]
) -> HTMLResponse:
    def work(conn: Connection) -> dict[str, Any]:
        return {
            "members": team.members(conn, business_id=caller.business_id),
            "invitations": team.list_invitations(conn, business_id=caller.business_id),
            "assets": service.visible_assets(conn, access=caller.access),
        }

    return render(
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


async def send_invitation(
    request: Request, settings: Settings, *, invitation: team.NewInvitation, business_name: str
) -> str:
    link = f"{base_url(request, settings)}/invitations/accept?token={invitation.token}"
    view = invitation.invitation
    sent = await send_account_email(
        settings,
        to=invitation.invitation.email,
        subject=f"You are invited to {business_name} on Accord",
        text=(
            f"You are invited to join {business_name} on Accord as {view.role}.\n\n"
            f"Accept by opening this link before {view.expires_at:%Y-%m-%d %H:%M} UTC:\n"
            f"{link}\n"
        ),
    )
    return "sent" if sent else link


@router.post("/people/invite")
async def invite(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    form = await request.form()
    data = InvitationIn(
        email=str(form.get("email", "")),
        role=str(form.get("role", "")),
        grants=_grants_from_form(form),
    )
    settings = state.settings

    def work(conn: Connection) -> tuple[team.NewInvitation, str]:
        created = team.invite(
            conn,
            business_id=caller.business_id,
            data=data,
            invited_by=caller.person_id,
            days=settings.invitation_days,
            actor=caller.actor,
            ip=caller.ip,
        )
        return created, service.get_business(conn, business_id=caller.business_id).name

    try:
        created, business_name = await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/people", error=_error_text(exc))
    outcome = await send_invitation(
        request, settings, invitation=created, business_name=business_name
    )
    if outcome == "sent":
        await store_work.write(
            state, lambda conn: team.mark_sent(conn, invitation_id=created.invitation.id)
        )
        return redirect(request, "/people", notice=f"Invitation sent to {data.email}")
    return redirect(
        request, "/people", notice=f"No mail server configured; send this link yourself: {outcome}"
    )


@router.post("/invitations/{invitation_id}/resend")
async def resend_invitation(
    request: Request,
    state: State,
    invitation_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    settings = state.settings

    def work(conn: Connection) -> tuple[team.NewInvitation, str]:
        renewed = team.renew_invitation(
            conn,
            business_id=caller.business_id,
            invitation_id=invitation_id,
            days=settings.invitation_days,
            actor=caller.actor,
            ip=caller.ip,
        )
        return renewed, service.get_business(conn, business_id=caller.business_id).name

    try:
        renewed, business_name = await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/people", error=_error_text(exc))
    outcome = await send_invitation(
        request, settings, invitation=renewed, business_name=business_name
    )
    if outcome == "sent":
        await store_work.write(
            state, lambda conn: team.mark_sent(conn, invitation_id=invitation_id)
        )
        return redirect(request, "/people", notice="Invitation sent again")
    return redirect(request, "/people", notice=f"No mail server configured; new link: {outcome}")


@router.post("/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request,
    state: State,
    invitation_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    return await _form_action(
        request,
        state,
        "/people",
        "Invitation withdrawn",
        lambda conn: team.revoke_invitation(
            conn,
            business_id=caller.business_id,
            invitation_id=invitation_id,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.post("/people/{person_id}/role")
async def change_role(
    request: Request,
    state: State,
    person_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
    role: Annotated[str, Form()],
) -> Response:
    return await _form_action(
        request,
        state,
        "/people",
        "Role changed",
        lambda conn: team.set_role(
            conn,
            business_id=caller.business_id,
            person_id=person_id,
            role=role,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.post("/people/{person_id}/grants")
async def change_grants(
    request: Request,
    state: State,
    person_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    grants = _grants_from_form(await request.form())

    return await _form_action(
        request,
        state,
        "/people",
        "Asset access saved",
        lambda conn: team.set_grants(
            conn,
            business_id=caller.business_id,
            person_id=person_id,
            grants=grants,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.post("/people/{person_id}/remove")
async def remove_person(
    request: Request,
    state: State,
    person_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    return await _form_action(
        request,
        state,
        "/people",
        "Person removed; their sessions and tokens are revoked",
        lambda conn: team.remove_person(
            conn,
            business_id=caller.business_id,
            person_id=person_id,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


async def _optional_session(request: Request, state: State) -> people.Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    session = await store_work.read(state, lambda conn: people.session_for(conn, token=token))
    return session if session is not None and session.stage == "full" else None


@router.get("/invitations/accept")
async def invitation_page(request: Request, state: State, token: str = "") -> HTMLResponse:
    session = await _optional_session(request, state)
    try:
        pending = await store_work.read(
            state, lambda conn: team.invitation_for_token(conn, token=token)
        )
    except InvalidInput as exc:
        return render(
            request, "accounts/invitation.html", status=400, error=_error_text(exc), pending=None
        )
    existing = await store_work.read(
        state, lambda conn: people.person_by_email(conn, email=pending.email)
    )
    caller = _session_caller(state, session, request) if session else None
    return render(
        request,
        "accounts/invitation.html",
        caller=caller,
        pending=pending,
        token=token,
        signed_in_as=session.person.email if session else None,
        has_account=existing is not None,
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
            return redirect(request, f"/invitations/accept?token={token}", error=_error_text(exc))
        return redirect(request, "/app", notice="Welcome: you joined the business")
    _check_anonymous_csrf(request, csrf_token)

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
        return redirect(request, f"/invitations/accept?token={token}", error=_error_text(exc))
    response = redirect(
        request, "/app", notice="Welcome: your account is ready and you joined the business"
    )
    _set_session_cookie(request, response, session_token, settings.session_hours)
    return response


# -- assets ----------------------------------------------------------------------------


@router.get("/assets")
async def assets_page(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("assets.read"))]
) -> HTMLResponse:
    def work(conn: Connection) -> list[Any]:
        return asset_service.asset_views(
            conn, rows=service.visible_assets(conn, access=caller.access)
        )

    found = await store_work.read(state, work)
    by_kind: dict[str, list[Any]] = {}
    for asset in found:
        by_kind.setdefault(asset.kind, []).append(asset)
    return render(
        request,
        "accounts/assets.html",
        caller=caller,
        by_kind=by_kind,
        can_create=caller.can("assets.manage") and caller.role in ("admin",),
        can_ads=caller.can("ads.manage") and caller.role in ("admin", "finance"),
        objectives=asset_service.OBJECTIVES,
        networks=asset_service.NETWORKS,
        max_pixels=state.settings.max_pixels_per_business,
    )


@router.post("/assets/pixels")
async def create_pixel(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("assets.manage"))],
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "web",
) -> Response:
    if caller.role != "admin":
        return redirect(request, "/assets", error="only admins create assets")

    return await _form_action(
        request,
        state,
        "/assets",
        f"Pixel {name.strip()} created",
        lambda conn: asset_service.create_pixel(
            conn,
            business_id=caller.business_id,
            name=name,
            kind=kind,
            max_pixels=state.settings.max_pixels_per_business,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.get("/assets/pixels/{pixel_id}")
async def pixel_page(
    request: Request,
    state: State,
    pixel_id: str,
    caller: Annotated[Caller, Depends(requires("assets.read"))],
) -> HTMLResponse:
    owner = await run_in_threadpool(caller.require_asset, "pixel", pixel_id, "analyse")
    pixel = await store_work.read(
        state, lambda conn: asset_service.get_pixel(conn, business_id=owner, pixel_id=pixel_id)
    )
    snippet = asset_service.install_snippet(
        base_url=base_url(request, state.settings), write_key=pixel.write_key
    )
    return render(request, "accounts/pixel.html", caller=caller, pixel=pixel, snippet=snippet)


@router.post("/assets/properties")
async def create_property(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("assets.manage"))],
    name: Annotated[str, Form()] = "",
    platform: Annotated[str, Form()] = "site",
    address: Annotated[str, Form()] = "",
) -> Response:
    if caller.role != "admin":
        return redirect(request, "/assets", error="only admins create assets")
    data = PropertyIn(name=name, platform=platform, address=address)

    return await _form_action(
        request,
        state,
        "/assets",
        f"Property {name.strip()} added",
        lambda conn: asset_service.create_property(
            conn, business_id=caller.business_id, data=data, actor=caller.actor, ip=caller.ip
        ),
    )


@router.post("/assets/ad-accounts")
async def create_ad_account(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("ads.manage"))],
    name: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    spend_limit: Annotated[str, Form()] = "",
) -> Response:
    if caller.role not in ("admin", "finance"):
        return redirect(request, "/assets", error="only admins and finance create ad accounts")
    try:
        limit = round(float(spend_limit) * 100) if spend_limit.strip() else None
    except ValueError:
        return redirect(request, "/assets", error="spend limit: a number such as 1500.00")
    data = AdAccountIn(name=name, currency=currency, timezone=timezone, spend_limit_minor=limit)

    return await _form_action(
        request,
        state,
        "/assets",
        f"Ad account {name.strip()} added",
        lambda conn: asset_service.create_ad_account(
            conn, business_id=caller.business_id, data=data, actor=caller.actor, ip=caller.ip
        ),
    )


@router.get("/assets/ad-accounts/{ad_account_id}")
async def ad_account_page(
    request: Request,
    state: State,
    ad_account_id: str,
    caller: Annotated[Caller, Depends(requires("ads.read"))],
) -> HTMLResponse:
    owner = await run_in_threadpool(caller.require_asset, "ad_account", ad_account_id, "analyse")

    def work(conn: Connection) -> dict[str, Any]:
        return {
            "account": asset_service.get_asset(conn, business_id=owner, asset_id=ad_account_id),
            "campaigns": asset_service.list_campaigns(
                conn, business_id=owner, ad_account_id=ad_account_id
            ),
        }

    return render(
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
    caller: Annotated[Caller, Depends(requires("ads.manage"))],
    name: Annotated[str, Form()] = "",
    objective: Annotated[str, Form()] = "",
    pricing: Annotated[str, Form()] = "",
    budget: Annotated[str, Form()] = "0",
    status: Annotated[str, Form()] = "draft",
) -> Response:
    owner = await run_in_threadpool(caller.require_asset, "ad_account", ad_account_id, "advertise")
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

    return await _form_action(
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
    request: Request,
    state: State,
    ad_account_id: str,
    caller: Annotated[Caller, Depends(requires("ads.manage"))],
) -> Response:
    owner = await run_in_threadpool(caller.require_asset, "ad_account", ad_account_id, "manage")
    back = f"/assets/ad-accounts/{ad_account_id}"

    return await _form_action(
        request,
        state,
        back,
        "Ad account closed",
        lambda conn: asset_service.close_ad_account(
            conn,
            business_id=owner,
            ad_account_id=ad_account_id,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.post("/assets/social-accounts")
async def connect_social_account(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("assets.manage"))],
    name: Annotated[str, Form()] = "",
    network: Annotated[str, Form()] = "",
    page_reference: Annotated[str, Form()] = "",
) -> Response:
    if caller.role != "admin":
        return redirect(request, "/assets", error="only admins connect social accounts")
    data = SocialAccountIn(name=name, network=network, page_reference=page_reference)

    return await _form_action(
        request,
        state,
        "/assets",
        f"Social account {name.strip()} connected",
        lambda conn: asset_service.connect_social_account(
            conn, business_id=caller.business_id, data=data, actor=caller.actor, ip=caller.ip
        ),
    )


# -- partners --------------------------------------------------------------------------


@router.get("/partners")
async def partners_page(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.read"))]
) -> HTMLResponse:
    def work(conn: Connection) -> dict[str, Any]:
        given, received = team.shares(conn, business_id=caller.business_id)
        own = service.visible_assets(conn, access=caller.access)
        return {
            "given": given,
            "received": received,
            "assets": [a for a in own if a["business_id"] == caller.business_id],
        }

    return render(
        request,
        "accounts/partners.html",
        caller=caller,
        tasks=permissions.TASK_LABELS,
        can_manage=caller.can("accounts.manage"),
        **await store_work.read(state, work),
    )


@router.post("/partners")
async def share_with_partner(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.manage"))]
) -> Response:
    form = await request.form()
    data = PartnerShareIn(
        partner_business_id=str(form.get("partner_business_id", "")).strip(),
        asset_id=str(form.get("asset_id", "")),
        tasks=[str(t) for t in form.getlist("tasks")],
    )

    return await _form_action(
        request,
        state,
        "/partners",
        "Asset shared with the partner",
        lambda conn: team.share_with_partner(
            conn, business_id=caller.business_id, data=data, actor=caller.actor, ip=caller.ip
        ),
    )


@router.post("/partners/{share_id}/revoke")
async def revoke_share(
    request: Request,
    state: State,
    share_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    return await _form_action(
        request,
        state,
        "/partners",
        "Share revoked",
        lambda conn: team.revoke_share(
            conn,
            business_id=caller.business_id,
            share_id=share_id,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


# -- security centre, tokens, audit log -------------------------------------------------


@router.get("/security")
async def security_page(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.manage"))]
) -> HTMLResponse:
    report = await store_work.read(
        state,
        lambda conn: team.security_report(
            conn, business_id=caller.business_id, max_admins=state.settings.max_admins_per_business
        ),
    )
    return render(request, "accounts/security.html", caller=caller, report=report)


@router.post("/security/policy")
async def set_policy(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
    policy: Annotated[str, Form()],
) -> Response:
    return await _form_action(
        request,
        state,
        "/security",
        "Two-factor policy saved",
        lambda conn: team.set_two_factor_policy(
            conn,
            business_id=caller.business_id,
            policy=policy,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


def two_factor_ok(conn: Connection, caller: Caller) -> bool:
    """Whether the policy lets this caller make tokens now (people need two-factor on)."""
    if caller.person_id is None:
        return True
    if not people.two_factor_required(
        conn, person_id=caller.person_id, business_id=caller.business_id
    ):
        return True
    return people.get_person(conn, person_id=caller.person_id).two_factor


@router.get("/tokens")
async def tokens_page(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.manage"))]
) -> HTMLResponse:
    tokens = await store_work.read(
        state, lambda conn: service.list_tokens(conn, business_id=caller.business_id)
    )
    return render(
        request,
        "accounts/tokens.html",
        caller=caller,
        tokens=tokens,
        all_permissions=permissions.PERMISSIONS,
    )


@router.post("/tokens")
async def create_token(
    request: Request, state: State, caller: Annotated[Caller, Depends(requires("accounts.manage"))]
) -> Response:
    form = await request.form()
    name = str(form.get("name", ""))
    scope = [str(p) for p in form.getlist("permissions")]

    def work(conn: Connection) -> Any:
        return service.create_token(
            conn,
            access=caller.access,
            name=name,
            scope=scope,
            actor=caller.actor,
            ip=caller.ip,
            two_factor_ok=two_factor_ok(conn, caller),
        )

    try:
        created = await store_work.write(state, work)
    except (InvalidInput, Forbidden) as exc:
        return redirect(request, "/tokens", error=_error_text(exc))
    tokens = await store_work.read(
        state, lambda conn: service.list_tokens(conn, business_id=caller.business_id)
    )
    return render(
        request,
        "accounts/tokens.html",
        caller=caller,
        tokens=tokens,
        all_permissions=permissions.PERMISSIONS,
        created=created,
    )


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request,
    state: State,
    token_id: str,
    caller: Annotated[Caller, Depends(requires("accounts.manage"))],
) -> Response:
    return await _form_action(
        request,
        state,
        "/tokens",
        "Token revoked",
        lambda conn: service.revoke_token(
            conn,
            business_id=caller.business_id,
            token_id=token_id,
            actor=caller.actor,
            ip=caller.ip,
        ),
    )


@router.get("/audit")
async def audit_page(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("audit.read"))],
    action: str | None = Query(default=None),
    asset_id: str | None = Query(default=None),
) -> HTMLResponse:
    entries = await store_work.read(
        state,
        lambda conn: service.audit_entries(
            conn, business_id=caller.business_id, action=action or None, asset_id=asset_id or None
        ),
    )
    return render(
        request,
        "accounts/audit.html",
        caller=caller,
        entries=entries,
        action=action or "",
        asset_id=asset_id or "",
    )


def audit_csv(entries: list[Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "id",
            "at",
            "actor_kind",
            "actor_id",
            "actor",
            "action",
            "asset_kind",
            "asset_id",
            "before",
            "after",
            "ip",
        ]
    )
    for e in entries:
        writer.writerow(
            [
                e.id,
                e.at.isoformat(),
                e.actor_kind,
                e.actor_id or "",
                e.actor_label,
                e.action,
                e.asset_kind or "",
                e.asset_id or "",
                "" if e.before is None else service.as_json(e.before),
                "" if e.after is None else service.as_json(e.after),
                e.ip or "",
            ]
        )
    return out.getvalue()


@router.get("/audit.csv")
async def audit_export(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("audit.read"))],
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
        audit_csv(entries),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="audit-log.csv"'},
    )
