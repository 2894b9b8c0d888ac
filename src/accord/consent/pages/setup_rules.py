"""Consent set-up pages: geo rules (which regime applies where) and the collection policy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from accord.consent import config
from accord.consent.geo import DEFAULT_RULES
from accord.consent.models import REGIMES, STANDARD_PURPOSES, GeoRuleIn, PolicyIn
from accord.consent.pages.setup_common import (
    Manage,
    Posted,
    Problems,
    Read,
    add,
    field,
    fields,
    from_invalid,
    from_validation,
    page,
)
from accord.core.errors import InvalidInput, NotFound
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import redirect

router = APIRouter(include_in_schema=False)

# --- Geo rules ------------------------------------------------------------------------


def regimes_chart(effective: dict[str, str], yours: dict[str, str]) -> Chart:
    return Chart(
        title="Countries and regions per regime",
        x=list(REGIMES),
        series=[
            Series(
                "Defaults",
                [
                    sum(1 for r, g in effective.items() if g == regime and r not in yours)
                    for regime in REGIMES
                ],
            ),
            Series(
                "Your rules", [sum(1 for g in yours.values() if g == regime) for regime in REGIMES]
            ),
        ],
        kind="stacked",
        x_title="Regime",
        id="regimes-chart",
    )


def _geo_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        yours = config.geo_rules(conn, business_id=caller.business_id)
        effective = config.effective_geo_rules(conn, business_id=caller.business_id)
    rows = [
        {
            "region": region,
            "regime": regime,
            "yours": region in yours,
            "default": DEFAULT_RULES.get(region),
        }
        for region, regime in sorted(effective.items(), key=lambda item: (item[0] != "*", item[0]))
    ]
    return page(
        request,
        "geo_rules.html",
        caller=caller,
        problems=problems,
        rows=rows,
        yours=yours,
        regimes=REGIMES,
        chart=regimes_chart(effective, yours),
        values=values or {"region": "", "regime": "gdpr"},
    )


@router.get("/consent/geo-rules")
def geo_rules_page(request: Request, state: State, caller: Read) -> Response:
    return _geo_page(request, state, caller)


@router.post("/consent/geo-rules")
def set_geo_rule(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    values = {"region": field(form, "region").strip().upper(), "regime": field(form, "regime")}
    try:
        rule = GeoRuleIn.model_validate(values)
    except ValidationError as exc:
        problems = from_validation(exc)
        if "region" in problems:
            problems["region"] = ["*, a country (CH) or a country and region (US-WA)"]
        return _geo_page(request, state, caller, values=values, problems=problems)
    with state.store.write() as conn:
        config.set_geo_rule(
            conn, business_id=caller.business_id, region=rule.region, regime=rule.regime
        )
        store_work.record(
            conn, caller, "consent_geo_rule.set", region=rule.region, regime=rule.regime
        )
    return redirect(
        request, "/consent/geo-rules", notice=f"{rule.region} now follows {rule.regime}"
    )


@router.post("/consent/geo-rules/delete")
def delete_geo_rule(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    region = field(form, "region").strip()
    with state.store.write() as conn:
        removed = config.delete_geo_rule(conn, business_id=caller.business_id, region=region)
        if removed:
            store_work.record(conn, caller, "consent_geo_rule.delete", region=region)
    if not removed:
        raise NotFound(f"geo rule {region!r}")
    return redirect(
        request,
        "/consent/geo-rules",
        notice=f"Your rule for {region} is removed; the default applies",
    )


# --- Collection policy ----------------------------------------------------------------

BLANK_ROWS = 3


def policy_values(policy: PolicyIn) -> dict[str, Any]:
    rows = [{"event": e, "purpose": p} for e, p in policy.event_purposes.items()]
    return {
        "rows": rows + [{"event": "", "purpose": ""}] * BLANK_ROWS,
        "default_purpose": policy.default_purpose,
        "anonymous_counting": policy.anonymous_counting,
        "honour_gpc": policy.honour_gpc,
    }


def posted_policy(
    form: FormData, known: set[str]
) -> tuple[dict[str, Any], PolicyIn | None, Problems]:
    """The policy form as typed, the policy it describes (`known`: the purpose keys)."""
    rows = [
        {"event": event.strip(), "purpose": purpose.strip()}
        for event, purpose in zip(fields(form, "event"), fields(form, "purpose"), strict=False)
    ]
    values = {
        "rows": rows,
        "default_purpose": field(form, "default_purpose"),
        "anonymous_counting": field(form, "anonymous_counting") == "on",
        "honour_gpc": field(form, "honour_gpc") == "on",
    }
    problems: Problems = {}
    mapping: dict[str, str] = {}
    for i, row in enumerate(rows):
        if not row["event"] and not row["purpose"]:
            continue
        if not row["event"]:
            add(problems, f"event-{i}", "name the event (or $page, $identify …)")
        elif row["event"] in mapping:
            add(problems, f"event-{i}", "this event has a row already")
        elif not row["purpose"]:
            add(problems, f"purpose-{i}", "choose a purpose")
        else:
            mapping[row["event"]] = row["purpose"]
        if row["purpose"] and row["purpose"] not in known:
            add(problems, f"purpose-{i}", "not a purpose of this business")
    if values["default_purpose"] and values["default_purpose"] not in known:
        add(problems, "default_purpose", "not a purpose of this business")
    if problems:
        return values, None, problems
    try:
        spec = PolicyIn(
            event_purposes=mapping,
            default_purpose=values["default_purpose"] or "statistics",
            anonymous_counting=values["anonymous_counting"],
            honour_gpc=values["honour_gpc"],
        )
    except ValidationError as exc:
        return values, None, from_validation(exc)
    return values, spec, {}


def policy_chart(policy: PolicyIn, purposes: list[str]) -> Chart:
    return Chart(
        title="Events named per purpose",
        x=purposes,
        series=[
            Series(
                "Events",
                [sum(1 for p in policy.event_purposes.values() if p == key) for key in purposes],
            )
        ],
        kind="bar",
        x_title="Purpose",
        id="policy-chart",
    )


def _policy_page(
    request: Request,
    state: State,
    caller: Caller,
    *,
    values: dict[str, Any] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        policy = config.get_policy(conn, business_id=caller.business_id)
        purposes = [p["key"] for p in config.list_purposes(conn, business_id=caller.business_id)]
    return page(
        request,
        "policy.html",
        caller=caller,
        problems=problems,
        policy=policy,
        purposes=purposes or ["necessary", "preferences", "statistics", "marketing"],
        chart=policy_chart(policy, purposes),
        values=values or policy_values(policy),
    )


@router.get("/consent/policy")
def policy_page(request: Request, state: State, caller: Read) -> Response:
    return _policy_page(request, state, caller)


@router.post("/consent/policy")
def set_policy(request: Request, state: State, caller: Manage, form: Posted) -> Response:
    with state.store.read() as conn:
        known = config.purpose_keys(conn, business_id=caller.business_id)
    values, spec, problems = posted_policy(form, known | set(STANDARD_PURPOSES))
    if spec is not None and not problems:
        try:
            with state.store.write() as conn:
                config.set_policy(conn, business_id=caller.business_id, spec=spec)
                store_work.record(
                    conn, caller, "consent_policy.set", spec=spec.model_dump(mode="json")
                )
        except InvalidInput as exc:
            problems = from_invalid(exc)
    if spec is None or problems:
        return _policy_page(request, state, caller, values=values, problems=problems)
    return redirect(
        request, "/consent/policy", notice="Collection policy saved; it applies within 30 s"
    )
