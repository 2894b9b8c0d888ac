"""Admin API: may this person be contacted on a channel now, and if not, why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection

from accord.audiences.service import suppression_lists
from accord.core.errors import FieldProblem, InvalidInput
from accord.reach import service
from accord.reach.decide import purpose_of
from accord.reach.models import ReachView
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api", tags=["reach"])

Reader = Annotated[Caller, Depends(requires("profiles.read"))]


@router.get("/reach", summary="Whether a person may be contacted on a channel now, and why not")
async def reach(
    state: State,
    caller: Reader,
    channel: Annotated[str, Query(description="email, sms, whatsapp, push, webhook, ads")],
    profile_id: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    purpose: Annotated[str | None, Query(description="Instead of the channel's own")] = None,
) -> ReachView:
    """The one reach decision: suppressions of any of the person's identifiers (their
    profile's too) and suppression audiences first, then consent in the ledger for the
    purpose, then an address on the channel. Name the person by one identifier or more."""
    person = service.Addressee(
        key="person",
        profile_ids=(profile_id,) if profile_id else (),
        user_ids=(user_id,) if user_id else (),
        anonymous_ids=(anonymous_id,) if anonymous_id else (),
        emails=(email,) if email else (),
        phones=(phone,) if phone else (),
    )
    if not person.identifiers():
        raise InvalidInput([FieldProblem("profile_id", "name the person by an identifier")])

    def work(conn: Connection) -> ReachView:
        decided = service.decisions(
            conn,
            business_id=caller.business_id,
            people=[person],
            channel=channel,
            purpose=purpose,
            lists=suppression_lists,
        )["person"]
        found = service.profile_of(conn, business_id=caller.business_id, person=person)
        return ReachView(
            channel=channel,
            purpose=purpose or purpose_of(channel),
            allowed=decided.allowed,
            reason=decided.reason,
            detail=decided.detail,
            profile_id=found,
        )

    return await store_work.read(state, work)
