"""Who is calling an admin route, for which business, and with which permission."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Header

from accord.accounts.service import business_for_token
from accord.web.state import State


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of an admin route; every service call takes its business."""

    business_id: str
    permission: str


def requires(permission: str) -> Callable[..., Caller]:
    """A route dependency: authenticate the caller and name the permission the route needs.

    Permissions are `<area>.<action>` (`profiles.read`, `consent.manage`, ...). Every
    admin route declares one, so the accounts context checks them in one place.
    """

    def dependency(
        state: State,
        authorization: str | None = Header(default=None, description="Bearer <admin token>"),
    ) -> Caller:
        return Caller(
            business_id=business_for_token(state.store, authorization), permission=permission
        )

    return dependency
