"""Identity pages of the admin UI: the rules and their editor, probabilistic matching (dry
run, undo), the review queue with each proposal's two sides, accept and reject, and undoing
a merge (unmerge an edge), each through the API's services."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from accord.core.errors import Conflict, InvalidInput, NotFound
from accord.identity import matching, service
from accord.identity.models import Edge, ReviewDiff, ReviewItem
from accord.identity.rules import IdentityRules
from accord.process import job_admin
from accord.profiles import service as profiles
from accord.profiles.models import ProfileView
from accord.web import jobs
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)
nav = [
    NavEntry("Identity reviews", "/identity/reviews", "profiles.read", "Customers", 14),
    NavEntry("Identity rules", "/identity/rules", "profiles.read", "Customers", 15),
]

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


# The rules editor: lists as text, maps and the matching section as JSON ----------------

# Form fields holding a list: one item a line (or separated by commas).
LIST_FIELDS = ("custom_kinds", "priority", "hard_kinds", "blocked_values", "blocked_patterns")
# Form fields holding JSON.
JSON_FIELDS = ("limits", "trait_policies", "matching")
MAX_FIELD = 20_000
# The job that runs matching for real (`process/jobs.py`).
MATCH_JOB = "identity.match"


def rules_fields(rules: IdentityRules) -> dict[str, str]:
    """The rules as the editor's text fields."""
    data = rules.model_dump(mode="json")
    fields = {name: "\n".join(data[name]) for name in LIST_FIELDS}
    fields.update(
        {
            name: "" if data[name] is None else json.dumps(data[name], indent=2)
            for name in JSON_FIELDS
        }
    )
    fields["max_component_identifiers"] = str(data["max_component_identifiers"])
    fields["default_phone_region"] = data["default_phone_region"] or ""
    return fields


def _items(text: str, *, commas: bool) -> list[str]:
    lines = text.splitlines()
    parts = [p for line in lines for p in (line.split(",") if commas else [line])]
    return [p.strip() for p in parts if p.strip()]


def rules_from_fields(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The rules a filled-in editor asks for, or the fields it cannot read and why."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name in LIST_FIELDS:
        # A blocked value may hold a comma; a regular expression often does.
        data[name] = _items(fields[name], commas=name not in ("blocked_values", "blocked_patterns"))
    for name in JSON_FIELDS:
        text = fields[name].strip()
        if not text:
            data[name] = None if name == "matching" else {}
            continue
        try:
            data[name] = json.loads(text)
        except ValueError as exc:
            errors[name] = f"is not JSON: {exc}"
    try:
        data["max_component_identifiers"] = int(fields["max_component_identifiers"])
    except ValueError:
        errors["max_component_identifiers"] = "must be a whole number"
    data["default_phone_region"] = fields["default_phone_region"].strip().upper() or None
    # The lines of the default order come back as typed: an empty box means the default.
    if not data["priority"]:
        del data["priority"]
    return data, errors


def _problem_errors(exc: InvalidInput) -> dict[str, str]:
    """Each problem next to the form field it is about (the rules as a whole otherwise)."""
    known = {*LIST_FIELDS, *JSON_FIELDS, "max_component_identifiers", "default_phone_region"}
    errors: dict[str, str] = {}
    for problem in exc.problems:
        head, _, rest = problem.field.partition(".")
        name = head if head in known else "rules"
        reason = f"{rest}: {problem.reason}" if rest and name != "rules" else problem.reason
        errors[name] = f"{errors[name]}; {reason}" if name in errors else reason
    return errors


def _match_chart(report: matching.MatchReport) -> Chart:
    outcomes = ("linked", "review", "refused", "already_linked", "skipped")
    return Chart(
        title="Pairs of the dry run by outcome",
        x=list(outcomes),
        series=[Series("Pairs", [sum(p.outcome == o for p in report.pairs) for o in outcomes])],
        kind="bar",
        x_title="Outcome",
        y_title="Pairs",
        id="chart-match",
    )


def _limits_chart(rules: IdentityRules) -> Chart:
    kinds = [k for k in rules.kinds if k in rules.limits]
    return Chart(
        title="Most values of each identifier type in one profile",
        x=kinds,
        series=[Series("Limit", [rules.limits[k].max for k in kinds])],
        kind="hbar",
        x_title="Values",
        y_title="Identifier type",
        id="chart-limits",
    )


def _rules_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    fields: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    report: matching.MatchReport | None = None,
    status: int = 200,
) -> Response:
    with state.store.read() as conn:
        rules = service.get_rules(conn, business_id=caller.business_id)
        runs = job_admin.history(conn, business_id=caller.business_id, name=MATCH_JOB, limit=1)
    return render(
        request,
        "identity/rules.html",
        last_run=runs[0] if runs else None,
        caller=caller,
        status=status,
        rules=rules,
        fields=fields or rules_fields(rules),
        errors=errors or {},
        report=report,
        chart=_match_chart(report) if report else _limits_chart(rules),
        can_manage=caller.can("profiles.manage"),
    )


@router.get("/identity/rules")
def rules_page(request: Request, state: State, caller: Reader) -> Response:
    """How identifiers link into profiles, the editor, and probabilistic matching."""
    return _rules_page(request, state, caller)


@router.post("/identity/rules")
def rules_post(
    request: Request,
    state: State,
    caller: Manager,
    custom_kinds: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    priority: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    hard_kinds: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    blocked_values: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    blocked_patterns: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    limits: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    trait_policies: Annotated[str, Form(max_length=MAX_FIELD)] = "",
    matching_section: Annotated[str, Form(alias="matching", max_length=MAX_FIELD)] = "",
    max_component_identifiers: Annotated[str, Form(max_length=20)] = "",
    default_phone_region: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Replace the rules (as `PUT /api/identity/rules`); nothing changes when a field is wrong."""
    fields = {
        "custom_kinds": custom_kinds,
        "priority": priority,
        "hard_kinds": hard_kinds,
        "blocked_values": blocked_values,
        "blocked_patterns": blocked_patterns,
        "limits": limits,
        "trait_policies": trait_policies,
        "matching": matching_section,
        "max_component_identifiers": max_component_identifiers,
        "default_phone_region": default_phone_region,
    }
    data, errors = rules_from_fields(fields)
    if not errors:
        try:
            with state.store.write() as conn:
                service.set_rules(conn, business_id=caller.business_id, rules=data)
        except InvalidInput as exc:
            errors = _problem_errors(exc)
    if errors:
        return _rules_page(request, state, caller, fields=fields, errors=errors, status=400)
    return redirect(
        request,
        "/identity/rules",
        notice="Identity rules saved: they apply to events processed from now on",
    )


@router.post("/identity/match/dry-run")
def match_dry_run(request: Request, state: State, caller: Manager) -> Response:
    """Score the profiles and show what a run would do, changing nothing."""
    try:
        report = matching.run_match(
            state.store,
            business_id=caller.business_id,
            engine_url=state.settings.engine_url,
            dry_run=True,
        )
    except InvalidInput as exc:
        return _rules_page(request, state, caller, errors=_problem_errors(exc), status=400)
    return _rules_page(request, state, caller, report=report)


@router.post("/identity/match/run")
async def match_run(request: Request, state: State, caller: Manager) -> Response:
    """Make the `identity.match` job due now: the worker links, proposes and refuses."""
    await jobs.run_soon(state, business_id=caller.business_id, name=MATCH_JOB)
    return redirect(
        request,
        "/identity/rules",
        notice="Matching will run within seconds; its report shows here when it is done",
    )


@router.post("/identity/match/undo")
def match_undo(request: Request, state: State, caller: Manager) -> Response:
    """Remove the probabilistic links of the last run that made any (as the API's `undo`)."""
    with state.store.write() as conn:
        undone = matching.undo_last_match(conn, business_id=caller.business_id)
    if undone.run_id is None:
        return redirect(request, "/identity/rules", error="No matching run left to undo")
    return redirect(
        request,
        "/identity/rules",
        notice=f"Run {undone.run_id} undone: {undone.edges_removed} link(s) removed, "
        f"{undone.reviews_rejected} proposal(s) withdrawn",
    )
