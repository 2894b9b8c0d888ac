"""Who is calling an admin route or page, for which business, and with which permission.

`requires("<area>.<action>")` is the one check every admin route and page uses. It
accepts a bearer API token (scoped to one business) or a UI session cookie (acting for
the business selected in the session), checks CSRF on unsafe methods from the UI, then
asks `accounts.service.granted_permissions` whether the caller's role and tasks grant the
permission. Unknown permissions are denied.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from accord.accounts import people
from accord.accounts.models import Actor
from accord.accounts.service import Access, check_asset, granted_permissions, role_of
from accord.accounts.tokens import access_for_token
from accord.core.errors import CsrfRejected, Forbidden, InvalidToken
from accord.store.db import Store
from accord.web import store_work
from accord.web.state import AppState, State

SESSION_COOKIE = "accord_session"
# Forms shown before signing in (sign-in, sign-up) carry this cookie's value back.
ANON_CSRF_COOKIE = "accord_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
NO_BUSINESS = "choose or create a business first"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TwoFactorEnrolmentRequired(Forbidden):
    """The business's policy asks this person for two-factor, which they have not set up."""


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of an admin route; every service call takes its business."""

    business_id: str
    permission: str
    role: str = "admin"
    person_id: str | None = None
    token_id: str | None = None
    session_id: str | None = None
    label: str = "system"
    ip: str | None = None
    csrf_token: str | None = None
    store: Store | None = field(default=None, compare=False, repr=False)
    scope: frozenset[str] | None = None
    # Every permission the caller holds in the business, read once per request.
    permissions: frozenset[str] = frozenset()

    @property
    def access(self) -> Access:
        return Access(
            business_id=self.business_id,
            role=self.role,
            person_id=self.person_id,
            token_id=self.token_id,
            scope=self.scope,
        )

    @property
    def actor(self) -> Actor:
        """Who the audit log names for changes this caller makes."""
        if self.token_id is not None:
            return Actor(kind="token", id=self.token_id, label=self.label)
        if self.person_id is not None:
            return Actor(kind="person", id=self.person_id, label=self.label)
        return Actor(kind="system", label=self.label)

    def can(self, permission: str) -> bool:
        """Whether the caller holds `permission` (read with the caller, so no query here)."""
        return permission in self.permissions


async def require_asset(
    state: AppState, caller: Caller, *, kind: str | None, asset_id: str, task: str
) -> str:
    """The owner business of one asset the caller may do `task` on; else NotFound.

    Routes that act on one asset call this before the service, so an employee
    reaches only assigned assets and a partner only shared ones.
    """
    return await store_work.read(
        state,
        lambda conn: check_asset(
            conn, access=caller.access, asset_id=asset_id, kind=kind, task=task
        ),
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _submitted_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request, expected: str | None) -> None:
    """Synchroniser token: an unsafe request from the UI must echo the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    given = await _submitted_csrf(request)
    if not expected or not given or not hmac.compare_digest(given, expected):
        raise CsrfRejected()


def anonymous_csrf(request: Request) -> str:
    """The token for forms shown before signing in (double-submit cookie)."""
    return request.cookies.get(ANON_CSRF_COOKIE) or secrets.token_urlsafe(32)


async def session_at(request: Request, state: AppState, stage: str) -> people.Session:
    """The cookie's UI session if it is at `stage` (`password`: the second factor is still
    to come; `full`: signed in), CSRF checked on unsafe methods."""
    token = request.cookies.get(SESSION_COOKIE)
    session = await store_work.read(state, lambda conn: people.session_for(conn, token=token))
    if session is None or session.stage != stage:
        raise InvalidToken()
    await check_csrf(request, session.csrf_token)
    return session


async def signed_in_session(request: Request, state: State) -> people.Session:
    """A UI session past every sign-in step (CSRF checked on unsafe methods)."""
    return await session_at(request, state, "full")


SignedIn = Annotated[people.Session, Depends(signed_in_session)]


def requires(permission: str) -> Callable[..., Awaitable[Caller]]:
    """A route dependency: authenticate the caller and check the permission the route needs.

    Permissions are `<area>.<action>` (`profiles.read`, `consent.manage`, ...), listed with
    the roles and tasks granting them in `accounts/permissions.py`.
    """

    async def dependency(
        request: Request,
        state: State,
        authorization: str | None = Header(default=None, description="Bearer <API token>"),
    ) -> Caller:
        store = state.store
        if authorization:
            token = await run_in_threadpool(access_for_token, store, authorization)
            access, label, session = token.access, token.label, None
        else:
            session = await signed_in_session(request, state)
            if session.business_id is None:
                raise Forbidden(NO_BUSINESS)
            business_id = session.business_id

            def membership(conn: Connection) -> tuple[str | None, bool]:
                role = role_of(conn, business_id=business_id, person_id=session.person.id)
                needs = people.two_factor_required(
                    conn, person_id=session.person.id, business_id=business_id
                )
                return role, needs

            role, needs_two_factor = await store_work.read(state, membership)
            if role is None:
                raise Forbidden("you are no longer a member of this business")
            if needs_two_factor and not session.person.two_factor:
                raise TwoFactorEnrolmentRequired(
                    "this business requires two-factor authentication: set it up first"
                )
            access = Access(business_id=business_id, role=role, person_id=session.person.id)
            label = session.person.email

        granted = await store_work.read(
            state, lambda conn: granted_permissions(conn, access=access)
        )
        if permission not in granted:
            raise Forbidden(f"your role and tasks in this business do not allow {permission}")
        return Caller(
            business_id=access.business_id,
            permission=permission,
            role=access.role,
            person_id=access.person_id,
            token_id=access.token_id,
            session_id=session.id if session else None,
            label=label,
            ip=client_ip(request),
            csrf_token=session.csrf_token if session else None,
            store=store,
            scope=access.scope,
            permissions=granted,
        )

    return dependency
