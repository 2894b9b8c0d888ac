"""What every accounts page uses: form actions, sign-in cookies and the callers of pages."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection

from accord.accounts import people, service
from accord.core.errors import AccordError, CsrfRejected, Forbidden, InvalidInput
from accord.core.settings import Settings
from accord.web import store_work
from accord.web.auth import ANON_CSRF_COOKIE, SESSION_COOKIE, Caller, client_ip, requires
from accord.web.state import AppState, State
from accord.web.ui import redirect

# The callers of pages, by the permission each page needs.
AccountsRead = Annotated[Caller, Depends(requires("accounts.read"))]
AccountsManage = Annotated[Caller, Depends(requires("accounts.manage"))]
AssetsRead = Annotated[Caller, Depends(requires("assets.read"))]
AssetsManage = Annotated[Caller, Depends(requires("assets.manage"))]
AdsRead = Annotated[Caller, Depends(requires("ads.read"))]
AdsManage = Annotated[Caller, Depends(requires("ads.manage"))]
AuditRead = Annotated[Caller, Depends(requires("audit.read"))]


def error_text(exc: AccordError) -> str:
    if isinstance(exc, InvalidInput):
        return "; ".join(
            p.reason if p.field in ("form", "") else f"{p.field}: {p.reason}" for p in exc.problems
        )
    return str(exc)


async def form_action(
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
        return redirect(request, back, error=error_text(exc))
    return redirect(request, back, notice=notice)


async def caller_action(
    request: Request,
    state: AppState,
    caller: Caller,
    back: str,
    notice: str,
    change: Callable[..., object],
    /,
    **arguments: Any,
) -> RedirectResponse:
    """`form_action` for a service change the caller makes in their own business.

    The change gets the caller's `business_id`, `actor` and `ip` besides `arguments`, the
    keywords every accounts service change takes.
    """
    return await form_action(
        request,
        state,
        back,
        notice,
        lambda conn: change(
            conn, business_id=caller.business_id, actor=caller.actor, ip=caller.ip, **arguments
        ),
    )


def login_limits(settings: Settings) -> people.LoginLimits:
    return people.LoginLimits(
        window_seconds=settings.login_window_seconds,
        max_failures_per_account=settings.login_max_failures_per_account,
        max_failures_per_ip=settings.login_max_failures_per_ip,
        lockout_seconds=settings.login_lockout_seconds,
    )


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only, never another site."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/app"


def set_session_cookie(request: Request, response: Response, token: str, hours: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def check_anonymous_csrf(request: Request, given: str) -> None:
    expected = request.cookies.get(ANON_CSRF_COOKIE)
    if not expected or not given or not hmac.compare_digest(given, expected):
        raise CsrfRejected()


async def session_caller(state: State, session: people.Session, request: Request) -> Caller:
    """A caller for pages that need a signed-in person but not a business permission."""
    business_id = session.business_id

    def work(conn: Connection) -> tuple[str | None, frozenset[str]]:
        if not business_id:
            return None, frozenset()
        role = service.role_of(conn, business_id=business_id, person_id=session.person.id)
        if role is None:
            return None, frozenset()
        access = service.Access(business_id=business_id, role=role, person_id=session.person.id)
        return role, service.granted_permissions(conn, access=access)

    role, granted = await store_work.read(state, work)
    return Caller(
        business_id=business_id or "",
        permission="",
        role=role or "none",
        person_id=session.person.id,
        session_id=session.id,
        label=session.person.email,
        ip=client_ip(request),
        csrf_token=session.csrf_token,
        store=state.store,
        permissions=granted,
    )
