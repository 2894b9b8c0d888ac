"""Admin API of subject rights: a person's export and erasure (under /api/profiles)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from accord.rights import service
from accord.rights.models import ErasureReport, SubjectExport
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api", tags=["profiles"])


@router.get(
    "/profiles/{profile_id}/export",
    response_model=SubjectExport,
    summary="Everything held about a person (subject access request)",
)
def export_profile(
    profile_id: str,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
) -> SubjectExport:
    with state.store.read() as conn:
        return service.export_subject(
            conn,
            business_id=caller.business_id,
            profile_id=profile_id,
        )


@router.delete(
    "/profiles/{profile_id}",
    response_model=ErasureReport,
    summary="Erase a person: profile, identifiers, events in the inbox and the lake",
)
def erase_profile(
    profile_id: str,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
) -> ErasureReport:
    """Also erases the person's leads, email history (anonymised; suppressions kept as
    hashes), journey runs and audience memberships, tells audience webhook destinations,
    and writes the audit log. Keeps only hashed identifiers (tombstones), so no late or
    replayed event of the person is taken in again, and the consent ledger's records as
    proof of consent. Returns what was erased, per table."""

    return service.erase_subject(
        state.store,
        business_id=caller.business_id,
        profile_id=profile_id,
        lake_url=state.settings.resolved_lake_url(),
        actor=caller.actor,
        ip=caller.ip,
    )
