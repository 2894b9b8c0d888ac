"""The profile directory: find a person by any identifier or a trait value, or browse the
most recently seen, with charts of known against anonymous profiles and new ones a day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from accord.core.errors import FieldProblem, InvalidInput
from accord.identity import service as identity
from accord.profiles import browse
from accord.profiles import service as profile_service
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, render

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Profiles", "/profiles", "profiles.read", "Customers", 12)]

Reader = Annotated[Caller, Depends(requires("profiles.read"))]

PAGE_SIZE = 50
MAX_PAGE = 1000


def page_number(text: str) -> int:
    """A page number as typed in the address (1 to MAX_PAGE); InvalidInput otherwise."""
    try:
        number = int(text.strip() or "1")
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PAGE:
        raise InvalidInput([FieldProblem("page", f"a whole number from 1 to {MAX_PAGE}")])
    return number


def problems_by_field(exc: InvalidInput) -> dict[str, str]:
    found: dict[str, str] = {}
    for problem in exc.problems:
        found.setdefault(problem.field, problem.reason)
    return found


def _known_chart(known: int, anonymous: int) -> Chart:
    return Chart(
        title="Known and anonymous profiles",
        x=["Known", "Anonymous"],
        series=[Series("Profiles", [known, anonymous])],
        kind="pie",
        x_title="Profiles",
        id="chart-known",
        notes=(
            "Known: a user id, email, phone or custom id; anonymous: only browser or device ids.",
        ),
    )


def _new_chart(days: list[tuple[str, int]]) -> Chart:
    return Chart(
        title="New profiles per day",
        x=[d for d, _ in days],
        series=[Series("New profiles", [n for _, n in days])],
        kind="bar",
        x_title="Day (UTC, first seen)",
        y_title="Profiles",
        id="chart-new",
    )


@router.get("/profiles")
def profiles_page(
    request: Request,
    state: State,
    caller: Reader,
    q: str = "",
    kind: str = "",
    trait: str = "",
    value: str = "",
    page: str = "1",
) -> Response:
    """Search by identifier (`q`, any type or `kind`), by trait (`trait` = `value`), or
    list the most recently seen profiles; bad input re-renders the form with a 400."""
    errors: dict[str, str] = {}
    listing = browse.Listing(profiles=[], has_next=False)
    matched: dict[str, list[tuple[str, str]]] = {}
    mode = "identifier" if q.strip() else "trait" if (trait.strip() or value.strip()) else "recent"
    number = 1
    with state.store.read() as conn:
        kinds = identity.get_rules(conn, business_id=caller.business_id).kinds
        try:
            number = page_number(page)
            offset = (number - 1) * PAGE_SIZE
            if mode == "identifier":
                matched = identity.profiles_holding(
                    conn, business_id=caller.business_id, value=q, kind=kind.strip() or None
                )
                found = browse.summaries(
                    conn, business_id=caller.business_id, profile_ids=list(matched)
                )
                found.sort(key=lambda p: p.last_seen, reverse=True)
                listing = browse.Listing(profiles=found, has_next=False)
            elif mode == "trait":
                if not value.strip():
                    raise InvalidInput([FieldProblem("value", "the value to look for")])
                listing = browse.with_trait(
                    conn,
                    business_id=caller.business_id,
                    trait=trait,
                    value=value,
                    limit=PAGE_SIZE,
                    offset=offset,
                )
            else:
                listing = browse.recent(
                    conn, business_id=caller.business_id, limit=PAGE_SIZE, offset=offset
                )
        except InvalidInput as exc:
            errors = problems_by_field(exc)
        counts = profile_service.known_and_anonymous(conn, business_id=caller.business_id)
        known, anonymous = counts.known, counts.anonymous
        per_day = browse.new_per_day(conn, business_id=caller.business_id)
    return render(
        request,
        "profiles/list.html",
        caller=caller,
        status=400 if errors else 200,
        errors=errors,
        values={"q": q, "kind": kind, "trait": trait, "value": value},
        kinds=kinds,
        mode=mode,
        listing=listing,
        matched=matched,
        page=number,
        known=known,
        anonymous=anonymous,
        known_chart=_known_chart(known, anonymous),
        new_chart=_new_chart(per_day),
    )
