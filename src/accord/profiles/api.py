"""Admin API for profiles: look one up by any identifier, read it, its timeline."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from accord.audiences.membership import audiences_of
from accord.consent import service as consent_service
from accord.core.errors import FieldProblem, InvalidInput
from accord.identity import service as identity
from accord.journeys import service as journeys
from accord.profiles import browse, service
from accord.profiles.models import AudienceMembership, ProfileDetail, ProfileView
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api", tags=["profiles"])
MAX_TIMELINE = 500


@router.get("/profiles", response_model=ProfileView, summary="Find a profile by an identifier")
def get_profile(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.read"))],
    user_id: str | None = Query(default=None),
    anonymous_id: str | None = Query(default=None),
    email: str | None = Query(default=None),
    phone: str | None = Query(default=None),
    device_id: str | None = Query(default=None),
) -> ProfileView:
    """The profile holding an identifier, with its traits and most recent events.

    Give exactly one identifier: any built-in type above, or a custom type of the
    business by its name (`?crm_id=…`). Values are normalised as at collection
    (emails lower-cased, phone numbers to E.164).
    """
    given = {k: v for k, v in request.query_params.items() if v}
    if len(given) != 1:
        raise InvalidInput([FieldProblem("query", "give exactly one identifier, e.g. ?email=…")])
    ((kind, value),) = given.items()

    with state.store.read() as conn:
        key = identity.lookup_key(conn, business_id=caller.business_id, kind=kind, value=value)
        return service.find_profile(conn, business_id=caller.business_id, kind=key[0], value=key[1])


@router.get("/profiles/{profile_id}", response_model=ProfileDetail, summary="One profile")
def get_profile_by_id(
    profile_id: str,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.read"))],
) -> ProfileDetail:
    """Traits (with the time each was set), computed traits, identifiers, consent state,
    the channels the person can be messaged on, their audiences and the most recent
    events."""

    with state.store.read() as conn:
        view = service.profile_view(conn, business_id=caller.business_id, profile_id=profile_id)
        consent = consent_service.granted_purposes(
            conn,
            business_id=caller.business_id,
            anonymous_ids=[i.value for i in view.identifiers if i.kind == "anonymous_id"],
            user_ids=[i.value for i in view.identifiers if i.kind == "user_id"],
        )
        return ProfileDetail(
            **view.model_dump(),
            consent=consent,
            reachable_channels=[]
            if state.journey_environment is None
            else journeys.reachable_channels(
                conn,
                business_id=caller.business_id,
                profile_id=profile_id,
                env=state.journey_environment,
            ),
            audiences=[
                AudienceMembership(**asdict(m))
                for m in audiences_of(conn, business_id=caller.business_id, profile_id=profile_id)
            ],
        )


@router.get("/profiles/{profile_id}/timeline", summary="A profile's events, newest first")
def get_timeline(
    profile_id: str,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.read"))],
    before: Annotated[datetime | None, Query(description="Only events before this instant")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TIMELINE)] = 100,
) -> list[dict[str, Any]]:
    with state.store.read() as conn:
        service.profile_view(conn, business_id=caller.business_id, profile_id=profile_id)
        return browse.timeline(
            conn,
            business_id=caller.business_id,
            profile_id=profile_id,
            before=before,
            limit=limit,
        )
