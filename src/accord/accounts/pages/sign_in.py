"""Sign-up, sign-in (with the second factor), sign-out and two-factor enrolment pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from accord.accounts import people, service
from accord.accounts.pages.common import (
    check_anonymous_csrf,
    error_text,
    login_limits,
    safe_next,
    session_caller,
    set_session_cookie,
)
from accord.core.errors import InvalidInput, TooManyAttempts
from accord.web import store_work
from accord.web.auth import SESSION_COOKIE, SignedIn, client_ip, session_at
from accord.web.state import State
from accord.web.ui import arender, redirect

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    target = "/app" if request.cookies.get(SESSION_COOKIE) else "/sign-in"
    return RedirectResponse(target, status_code=303)


@router.get("/sign-up")
async def sign_up_page(request: Request, next: str | None = None) -> HTMLResponse:
    return await arender(request, "accounts/sign_up.html", next=safe_next(next))


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
    check_anonymous_csrf(request, csrf_token)
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
        return await arender(
            request,
            "accounts/sign_up.html",
            status=400,
            error=error_text(exc),
            email=email,
            name=name,
            next=next,
        )
    response = RedirectResponse(
        safe_next(next) if next != "/app" else "/businesses", status_code=303
    )
    set_session_cookie(request, response, token, settings.session_hours)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return await arender(request, "accounts/sign_in.html", next=safe_next(next))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    state: State,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/app",
) -> Response:
    check_anonymous_csrf(request, csrf_token)
    settings = state.settings
    ip = client_ip(request)

    def work(conn: Connection) -> tuple[people.Person, str, bool] | None:
        person = people.sign_in(
            conn, email=email, password=password, ip=ip, limits=login_limits(settings)
        )
        if person is None:
            return None
        stage = "password" if person.two_factor else "full"
        token = people.start_session(
            conn, person_id=person.id, stage=stage, ip=ip, hours=settings.session_hours
        )
        must_enrol = not person.two_factor and any(
            people.two_factor_required(conn, person_id=person.id, business_id=b.id)
            for b, _ in service.businesses_of(conn, person_id=person.id)
        )
        return person, token, must_enrol

    try:
        signed_in = await store_work.write(state, work)
    except TooManyAttempts as exc:
        refused = await arender(
            request, "accounts/sign_in.html", status=429, error=str(exc), email=email, next=next
        )
        refused.headers["Retry-After"] = str(exc.retry_after_seconds)
        return refused
    if signed_in is None:
        return await arender(
            request,
            "accounts/sign_in.html",
            status=401,
            error=people.WRONG_CREDENTIALS,
            email=email,
            next=next,
        )
    person, token, must_enrol = signed_in
    if person.two_factor:
        target = f"/sign-in/two-factor?next={safe_next(next)}"
    elif must_enrol:
        target = "/account/two-factor"
    else:
        target = safe_next(next)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token, settings.session_hours)
    return response


async def _half_session(request: Request, state: State) -> people.Session:
    return await session_at(request, state, "password")


HalfSignedIn = Annotated[people.Session, Depends(_half_session)]


@router.get("/sign-in/two-factor")
async def second_factor_page(
    request: Request, session: HalfSignedIn, next: str | None = None
) -> HTMLResponse:
    return await arender(
        request,
        "accounts/second_factor.html",
        csrf_token_override=session.csrf_token,
        next=safe_next(next),
    )


@router.post("/sign-in/two-factor")
async def second_factor(
    request: Request,
    state: State,
    session: HalfSignedIn,
    code: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/app",
) -> Response:
    ip = client_ip(request)

    def work(conn: Connection) -> str | None:
        accepted = people.pass_second_factor(
            conn, person=session.person, code=code, ip=ip, limits=login_limits(state.settings)
        )
        if accepted is not None:
            people.complete_session(conn, session_id=session.id)
        return accepted

    retry_after: int | None = None
    try:
        accepted = await store_work.write(state, work)
        error = None if accepted is not None else people.WRONG_CODE
        status = 401
    except TooManyAttempts as exc:
        error, status, retry_after = str(exc), 429, exc.retry_after_seconds
    except InvalidInput as exc:
        error, status = error_text(exc), 401
    if error is not None:
        refused = await arender(
            request,
            "accounts/second_factor.html",
            status=status,
            error=error,
            csrf_token_override=session.csrf_token,
            next=next,
        )
        if retry_after is not None:
            refused.headers["Retry-After"] = str(retry_after)
        return refused
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request, state: State, session: SignedIn) -> Response:
    await store_work.write(state, lambda conn: people.end_session(conn, session_id=session.id))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- two-factor enrolment ----------------------------------------------------------------


@router.get("/account/two-factor")
async def two_factor_page(request: Request, state: State, session: SignedIn) -> HTMLResponse:
    caller = await session_caller(state, session, request)
    if session.person.two_factor:
        remaining = await store_work.read(
            state, lambda conn: people.remaining_recovery_codes(conn, person_id=session.person.id)
        )
        return await arender(
            request, "accounts/two_factor.html", caller=caller, enabled=True, remaining=remaining
        )
    secret = await store_work.write(
        state, lambda conn: people.begin_enrolment(conn, person_id=session.person.id)
    )
    uri = people.provisioning_uri(secret=secret, email=session.person.email)
    return await arender(
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
    caller = await session_caller(state, session, request)

    def work(conn: Connection) -> list[str]:
        codes = people.confirm_enrolment(conn, person_id=session.person.id, code=code)
        if session.business_id:
            service.audit(
                conn,
                business_id=session.business_id,
                actor=caller.actor,
                action="person.two_factor_on",
                asset=("person", session.person.id),
                ip=caller.ip,
            )
        return codes

    try:
        codes = await store_work.write(state, work)
    except InvalidInput as exc:
        return redirect(request, "/account/two-factor", error=error_text(exc))
    return await arender(request, "accounts/recovery_codes.html", caller=caller, codes=codes)
