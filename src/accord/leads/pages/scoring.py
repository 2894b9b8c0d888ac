"""The lead scoring page: the rules, decay and thresholds in force, their editor, and how
many leads each score band holds now."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from accord.core.clock import utcnow
from accord.core.errors import InvalidInput
from accord.leads import service
from accord.leads.models import ScoringIn
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, redirect, render

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Lead scoring", "/leads/scoring", "leads.read", "Leads", 35)]

# The scoring API's permissions (`leads/api.py`).
Reader = Annotated[Caller, Depends(requires("leads.read"))]
Manager = Annotated[Caller, Depends(requires("leads.manage"))]

NUMBER_FIELDS = ("half_life_days", "consideration_at", "prospect_at")
MAX_RULES_TEXT = 200_000


def scoring_fields(config: ScoringIn) -> dict[str, str]:
    """The configuration as the editor's text fields."""
    data = config.model_dump(mode="json", exclude_none=True)
    fields = {name: f"{data[name]:g}" for name in NUMBER_FIELDS}
    fields["rules"] = json.dumps(data["rules"], indent=2)
    return fields


def scoring_from_fields(fields: dict[str, str]) -> tuple[ScoringIn | None, dict[str, str]]:
    """The configuration a filled-in editor asks for, or each field's problem."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {}
    try:
        data["rules"] = json.loads(fields["rules"]) if fields["rules"].strip() else []
    except ValueError as exc:
        errors["rules"] = f"is not JSON: {exc}"
    for name in NUMBER_FIELDS:
        try:
            data[name] = float(fields[name])
        except ValueError:
            errors[name] = "must be a number"
    if errors:
        return None, errors
    try:
        return ScoringIn.model_validate(data), {}
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            name = loc[0] if loc and loc[0] in (*NUMBER_FIELDS, "rules") else "rules"
            where = ".".join(loc[1:])
            reason = f"{where}: {error['msg']}" if where else str(error["msg"])
            errors[name] = f"{errors[name]}; {reason}" if name in errors else reason
        return None, errors


def band_chart(counts: dict[str, int], config: ScoringIn) -> Chart:
    return Chart(
        title="Leads per score band now",
        x=list(counts),
        series=[Series("Leads", list(counts.values()))],
        kind="bar",
        x_title="Band",
        y_title="Leads",
        id="chart-bands",
        notes=(
            f"consideration from {config.consideration_at:g} points, decision from "
            f"{config.prospect_at:g}; scores halve every {config.half_life_days:g} days",
        ),
    )


def _page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    fields: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    with state.store.read() as conn:
        config = service.scoring_config(conn, business_id=caller.business_id)
        counts = service.leads_per_phase(
            conn, business_id=caller.business_id, config=config, now=utcnow()
        )
    return render(
        request,
        "leads/scoring.html",
        caller=caller,
        status=400 if errors else 200,
        config=config,
        counts=counts,
        fields=fields or scoring_fields(config),
        errors=errors or {},
        chart=band_chart(counts, config),
        can_manage=caller.can("leads.manage"),
    )


@router.get("/leads/scoring")
def scoring_page(request: Request, state: State, caller: Reader) -> Response:
    return _page(request, state, caller)


@router.post("/leads/scoring")
def scoring_post(
    request: Request,
    state: State,
    caller: Manager,
    rules: Annotated[str, Form(max_length=MAX_RULES_TEXT)] = "",
    half_life_days: Annotated[str, Form(max_length=20)] = "",
    consideration_at: Annotated[str, Form(max_length=20)] = "",
    prospect_at: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Replace the scoring configuration (as `PUT /api/leads/scoring`)."""
    fields = {
        "rules": rules,
        "half_life_days": half_life_days,
        "consideration_at": consideration_at,
        "prospect_at": prospect_at,
    }
    config, errors = scoring_from_fields(fields)
    if config is not None:
        try:
            with state.store.write() as conn:
                service.set_scoring(conn, business_id=caller.business_id, data=config)
        except InvalidInput as exc:
            errors = {p.field: p.reason for p in exc.problems}
    if errors:
        return _page(request, state, caller, fields=fields, errors=errors)
    return redirect(
        request, "/leads/scoring", notice="Scoring saved: it applies to activity from now on"
    )
