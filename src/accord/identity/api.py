"""Admin API of the identity graph: rules, merge history, edges, review queue, unmerge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel

from accord.identity import matching, service
from accord.identity.models import Edge, MergeRecord, ReviewDiff, ReviewItem, SplitReport
from accord.identity.rules import IdentityRules
from accord.profiles import service as profiles
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api", tags=["identity"])


class Decision(BaseModel):
    note: str | None = None


class UnmergeRequest(BaseModel):
    reason: str | None = None


class MatchRequest(BaseModel):
    dry_run: bool = False
    undo: bool = False


@router.get("/identity/rules", response_model=IdentityRules, summary="The identity rules")
def get_rules(
    state: State, caller: Annotated[Caller, Depends(requires("profiles.read"))]
) -> IdentityRules:
    with state.store.read() as conn:
        return service.get_rules(conn, business_id=caller.business_id)


@router.put("/identity/rules", response_model=IdentityRules, summary="Change the identity rules")
def put_rules(
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
    rules: Annotated[dict[str, Any], Body()],
) -> IdentityRules:
    """Replace the rules; fields left out take their defaults. Applies to events
    processed from now on; existing profiles are not re-linked."""

    with state.store.write() as conn:
        return service.set_rules(conn, business_id=caller.business_id, rules=rules)


@router.get(
    "/profiles/{profile_id}/merges",
    response_model=list[MergeRecord],
    summary="Merges and splits that shaped a profile",
)
def get_merges(
    profile_id: str, state: State, caller: Annotated[Caller, Depends(requires("profiles.read"))]
) -> list[MergeRecord]:
    with state.store.read() as conn:
        return service.merge_history(conn, business_id=caller.business_id, profile_id=profile_id)


@router.get(
    "/profiles/{profile_id}/edges",
    response_model=list[Edge],
    summary="The identity graph of a profile, with the evidence of each edge",
)
def get_edges(
    profile_id: str, state: State, caller: Annotated[Caller, Depends(requires("profiles.read"))]
) -> list[Edge]:
    with state.store.read() as conn:
        profiles.profile_view(conn, business_id=caller.business_id, profile_id=profile_id)
        return service.edges_of(conn, business_id=caller.business_id, profile_id=profile_id)


@router.post(
    "/identity/edges/{edge_id}/unmerge",
    response_model=SplitReport,
    summary="Remove an edge and split its profile",
)
def post_unmerge(
    edge_id: int,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
    body: UnmergeRequest | None = None,
) -> SplitReport:
    with state.store.write() as conn:
        return service.unmerge(
            conn,
            business_id=caller.business_id,
            edge_id=edge_id,
            reason=body.reason if body else None,
        )


@router.get("/identity/reviews", response_model=list[ReviewItem], summary="The review queue")
def get_reviews(
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.read"))],
    status: Literal["pending", "accepted", "rejected", "all"] = Query(default="pending"),
) -> list[ReviewItem]:
    with state.store.read() as conn:
        return service.list_reviews(
            conn, business_id=caller.business_id, status=None if status == "all" else status
        )


@router.get(
    "/identity/reviews/{review_id}/diff",
    response_model=ReviewDiff,
    summary="What accepting a proposed merge would change (dry run)",
)
def get_review_diff(
    review_id: str, state: State, caller: Annotated[Caller, Depends(requires("profiles.read"))]
) -> ReviewDiff:
    with state.store.read() as conn:
        return service.review_diff(conn, business_id=caller.business_id, review_id=review_id)


@router.post(
    "/identity/reviews/{review_id}/accept",
    response_model=ReviewDiff,
    summary="Make the proposed merge",
)
def post_accept(
    review_id: str,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
    body: Decision | None = None,
) -> ReviewDiff:
    with state.store.write() as conn:
        return service.accept_review(
            conn,
            business_id=caller.business_id,
            review_id=review_id,
            note=body.note if body else None,
            lock_rows=state.store.dialect == "postgresql",
        )


@router.post(
    "/identity/reviews/{review_id}/reject",
    response_model=ReviewItem,
    summary="Refuse the proposed merge",
)
def post_reject(
    review_id: str,
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
    body: Decision | None = None,
) -> ReviewItem:
    with state.store.write() as conn:
        return service.reject_review(
            conn,
            business_id=caller.business_id,
            review_id=review_id,
            note=body.note if body else None,
        )


@router.post(
    "/identity/match",
    response_model=matching.MatchReport | matching.UndoReport,
    summary="Probabilistic matching of profiles that share no identifier",
)
def post_match(
    state: State,
    caller: Annotated[Caller, Depends(requires("profiles.manage"))],
    body: MatchRequest | None = None,
) -> matching.MatchReport | matching.UndoReport:
    """Score the profiles with the rules' `matching` section: pairs from the link
    threshold up are merged (guardrails apply), pairs in the review band are proposed.
    `dry_run` changes nothing; `undo` removes the probabilistic edges of the last run."""
    request = body or MatchRequest()

    if request.undo:
        with state.store.write() as conn:
            return matching.undo_last_match(conn, business_id=caller.business_id)
    return matching.run_match(
        state.store,
        business_id=caller.business_id,
        engine_url=state.settings.engine_url,
        dry_run=request.dry_run,
    )
