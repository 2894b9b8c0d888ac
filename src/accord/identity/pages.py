"""Identity pages of the admin UI: the review queue with each proposal's two sides, accept
and reject, and undoing a merge (unmerge an edge), each through the API's services."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from accord.core.errors import Conflict, NotFound
from accord.identity import service
from accord.identity.models import Edge, ReviewDiff, ReviewItem
from accord.profiles import service as profiles
from accord.profiles.models import ProfileView
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Identity reviews", "/identity/reviews", "profiles.read", "Customers", 14)]

# The identity API's permissions (`identity/api.py`).
Reader = Annotated[Caller, Depends(requires("profiles.read"))]
Manager = Annotated[Caller, Depends(requires("profiles.manage"))]

STATUSES = ("pending", "accepted", "rejected", "all")
MAX_NOTE = 500


@dataclass(frozen=True)
class SideBySide:
    """A pending review: the profiles it would join, column by column, and the dry run."""

    review: ReviewItem
    diff: ReviewDiff
    candidates: list[ProfileView]
    identifiers: list[tuple[str, list[bool], bool]]  # "kind: value", held by each, proposed
    traits: list[tuple[str, list[Any], Any, bool]]  # name, value in each, after, differs


def side_by_side(conn: Connection, business_id: str, review: ReviewItem) -> SideBySide:
    diff = service.review_diff(conn, business_id=business_id, review_id=review.id)
    keys = [(i.kind, i.value) for i in review.identifiers]
    owners = profiles.owners(conn, business_id=business_id, keys=keys)
    ids = list(dict.fromkeys(owners[k] for k in keys if k in owners))
    candidates = [profiles.profile_view(conn, business_id=business_id, profile_id=p) for p in ids]
    proposed = {f"{k}: {v}" for k, v in keys}
    held = [{f"{i.kind}: {i.value}" for i in c.identifiers} for c in candidates]
    labels = sorted(set().union(proposed, *held))
    changed = {c.trait: c.after for c in diff.traits_changed}
    names = sorted({t for c in candidates for t in c.traits})
    traits = []
    for name in names:
        values = [c.traits.get(name) for c in candidates]
        after = changed[name] if name in changed else next(v for v in values if v is not None)
        traits.append((name, values, after, name in changed))
    return SideBySide(
        review=review,
        diff=diff,
        candidates=candidates,
        identifiers=[(label, [label in h for h in held], label in proposed) for label in labels],
        traits=traits,
    )


def _status_chart(counts: Counter[str]) -> Chart:
    order = STATUSES[:3]
    return Chart(
        title="Reviews by status",
        x=list(order),
        series=[Series("Reviews", [counts.get(s, 0) for s in order])],
        kind="bar",
        x_title="Status",
        y_title="Reviews",
        id="chart-reviews",
    )


@router.get("/identity/reviews")
def reviews_page(
    request: Request, state: State, caller: Reader, status: str = "pending"
) -> Response:
    """Merges waiting for a person's decision (or decided ones, by `status`)."""
    shown = status if status in STATUSES else "pending"
    with state.store.read() as conn:
        every = service.list_reviews(conn, business_id=caller.business_id, status=None)
        counts: Counter[str] = Counter(r.status for r in every)
        listed = [r for r in every if shown == "all" or r.status == shown]
        pending = [
            side_by_side(conn, caller.business_id, r) for r in listed if r.status == "pending"
        ]
    return render(
        request,
        "identity/reviews.html",
        caller=caller,
        status=200 if status == shown else 400,
        error=None if status == shown else f"status: one of {', '.join(STATUSES)}",
        shown=shown,
        statuses=STATUSES,
        counts=counts,
        pending=pending,
        decided=[r for r in reversed(listed) if r.status != "pending"],
        chart=_status_chart(counts),
        can_manage=caller.can("profiles.manage"),
    )


def _note(text: str) -> str | None:
    return text.strip()[:MAX_NOTE] or None


@router.post("/identity/reviews/{review_id}/accept")
def accept_post(
    request: Request,
    state: State,
    caller: Manager,
    review_id: str,
    note: Annotated[str, Form()] = "",
) -> Response:
    try:
        with state.store.write() as conn:
            diff = service.accept_review(
                conn,
                business_id=caller.business_id,
                review_id=review_id,
                note=_note(note),
                lock_rows=state.store.dialect == "postgresql",
            )
    except Conflict as exc:
        return redirect(request, "/identity/reviews", error=f"Not merged: {exc}")
    return redirect(
        request,
        "/identity/reviews",
        notice=f"Review accepted: the profiles are now {diff.surviving_profile}",
    )


@router.post("/identity/reviews/{review_id}/reject")
def reject_post(
    request: Request,
    state: State,
    caller: Manager,
    review_id: str,
    note: Annotated[str, Form()] = "",
) -> Response:
    try:
        with state.store.write() as conn:
            service.reject_review(
                conn, business_id=caller.business_id, review_id=review_id, note=_note(note)
            )
    except Conflict as exc:
        return redirect(request, "/identity/reviews", error=str(exc))
    return redirect(request, "/identity/reviews", notice="Review rejected: nothing was merged")


def _edge_of(conn: Connection, business_id: str, profile_id: str, edge_id: str) -> Edge:
    """A live or removed edge among the profile's identifiers; NotFound otherwise."""
    profiles.profile_view(conn, business_id=business_id, profile_id=profile_id)
    edge = next(
        (
            e
            for e in service.edges_of(conn, business_id=business_id, profile_id=profile_id)
            if str(e.id) == edge_id
        ),
        None,
    )
    if edge is None:
        raise NotFound(f"edge {edge_id} of profile {profile_id}")
    return edge


def _unmerge_form(
    request: Request,
    state: State,
    caller: Caller,
    profile_id: str,
    edge_id: str,
    *,
    reason: str = "",
    error: str | None = None,
) -> Response:
    with state.store.read() as conn:
        edge = _edge_of(conn, caller.business_id, profile_id, edge_id)
    return render(
        request,
        "identity/unmerge.html",
        caller=caller,
        status=400 if error else 200,
        profile_id=profile_id,
        edge=edge,
        reason=reason,
        errors={"confirm": error} if error else {},
    )


@router.get("/profiles/{profile_id}/edges/{edge_id}/unmerge")
def unmerge_page(
    request: Request, state: State, caller: Manager, profile_id: str, edge_id: str
) -> Response:
    return _unmerge_form(request, state, caller, profile_id, edge_id)


@router.post("/profiles/{profile_id}/edges/{edge_id}/unmerge")
def unmerge_post(
    request: Request,
    state: State,
    caller: Manager,
    profile_id: str,
    edge_id: str,
    confirm: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Remove the edge for good and split the profile where nothing else holds it."""
    if confirm != "yes":
        return _unmerge_form(
            request,
            state,
            caller,
            profile_id,
            edge_id,
            reason=reason[:MAX_NOTE],
            error="tick the box to confirm the split",
        )
    try:
        with state.store.write() as conn:
            edge = _edge_of(conn, caller.business_id, profile_id, edge_id)
            report = service.unmerge(
                conn, business_id=caller.business_id, edge_id=edge.id, reason=_note(reason)
            )
    except Conflict as exc:
        return redirect(request, f"/profiles/{profile_id}", error=str(exc))
    parts = ", ".join(report.profiles)
    return redirect(
        request, f"/profiles/{profile_id}", notice=f"Edge {edge.id} removed; profiles now: {parts}"
    )
