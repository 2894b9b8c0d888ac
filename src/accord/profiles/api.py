"""Admin API for profiles: look one up by an identifier."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from accord.core.errors import FieldProblem, InvalidInput
from accord.profiles import service
from accord.profiles.models import ProfileView
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api", tags=["profiles"])


@router.get("/profiles", response_model=ProfileView, summary="Find a profile by an identifier")
async def get_profile(
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.read"))],
    user_id: str | None = Query(default=None),
    anonymous_id: str | None = Query(default=None),
    email: str | None = Query(default=None),
) -> ProfileView:
    """The profile with its identifiers, traits and most recent events (newest first)."""
    given = {
        k: v
        for k, v in {"user_id": user_id, "anonymous_id": anonymous_id, "email": email}.items()
        if v
    }
    if len(given) != 1:
        raise InvalidInput(
            [FieldProblem("query", "give exactly one of user_id, anonymous_id, email")]
        )
    ((kind, value),) = given.items()

    def work() -> ProfileView:
        with state.store.read() as conn:
            return service.find_profile(
                conn, business_id=caller.business_id, kind=kind, value=value
            )

    return await run_in_threadpool(work)
