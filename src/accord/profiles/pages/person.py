"""One person's 360° page: traits, computed traits, RFM, predictions, consent, audiences,
journeys, email, the identity graph with its merge history, and a filterable timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from accord.audiences.membership import audiences_of
from accord.consent import config as consent_config
from accord.consent import service as consent
from accord.core.errors import InvalidInput
from accord.identity import service as identity
from accord.identity.models import Edge, MergeRecord
from accord.journeys import service as journeys
from accord.journeys.models import RunView
from accord.messaging import service as messaging
from accord.profiles import browse, rfm
from accord.profiles import service as profiles
from accord.profiles.models import ProfileView
from accord.profiles.pages.directory import page_number, problems_by_field
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, render

router = APIRouter(include_in_schema=False)
nav: list[NavEntry] = []

Reader = Annotated[Caller, Depends(requires("profiles.read"))]

TIMELINE_PAGE = 50
# Computed traits shown as charts or sections of their own, not in the computed table.
SHOWN_ELSEWHERE = frozenset({"event_counts", *rfm.TRAITS})


@dataclass(frozen=True)
class Prediction:
    """A model's score of the person, with its percentile and cohort (`predict.service`)."""

    trait: str
    score: Any
    percentile: float | None
    cohort: str | None


@dataclass(frozen=True)
class Message:
    """One email to the person, with what came back."""

    subject: str
    kind: str
    status: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None
    opens: int
    clicks: int
    machine: int
    bounced: bool
    complained: bool


@dataclass(frozen=True)
class Journey:
    name: str
    key: str
    run: RunView


@dataclass(frozen=True)
class MergeRow:
    """A merge or split in the person's history, with the live edges it made."""

    record: MergeRecord
    edges: list[Edge]


def predictions_of(traits: dict[str, Any]) -> list[Prediction]:
    """Every scored trait: one written with its `_percentile` and `_cohort` companions."""
    return [
        Prediction(
            trait=name,
            score=traits[name],
            percentile=traits.get(f"{name}_percentile"),
            cohort=traits.get(f"{name}_cohort"),
        )
        for name in sorted(traits)
        if f"{name}_percentile" in traits and f"{name}_cohort" in traits
    ]


def _companions(predictions: list[Prediction]) -> set[str]:
    return {
        name
        for p in predictions
        for name in (p.trait, f"{p.trait}_percentile", f"{p.trait}_cohort")
    }


def _consent_rows(conn: Connection, business_id: str, view: ProfileView) -> list[dict[str, Any]]:
    granted = consent.granted_purposes(
        conn,
        business_id=business_id,
        anonymous_ids=[i.value for i in view.identifiers if i.kind == "anonymous_id"],
        user_ids=[i.value for i in view.identifiers if i.kind == "user_id"],
    )
    rows = []
    for purpose in consent_config.list_purposes(conn, business_id=business_id):
        texts: dict[str, dict[str, str]] = purpose["texts"]
        text = texts.get("en") or next(iter(texts.values()), {})
        rows.append(
            {
                "key": purpose["key"],
                "name": text.get("name", purpose["key"]),
                "required": purpose["required"],
                "granted": granted.get(purpose["key"]),
            }
        )
    listed = {r["key"] for r in rows}
    rows += [
        {"key": key, "name": key, "required": False, "granted": choice}
        for key, choice in sorted(granted.items())
        if key not in listed
    ]
    return rows


def _messages(conn: Connection, business_id: str, view: ProfileView) -> list[Message]:
    history = messaging.subject_history(
        conn,
        business_id=business_id,
        emails=[i.value for i in view.identifiers if i.kind == "email"],
        anonymous_ids=[i.value for i in view.identifiers if i.kind == "anonymous_id"],
        user_ids=[i.value for i in view.identifiers if i.kind == "user_id"],
    )
    by_message: dict[str, list[dict[str, Any]]] = {}
    for event in history["events"]:
        by_message.setdefault(event["message_id"], []).append(event)
    out = []
    for m in reversed(history["messages"]):
        events = by_message.get(m["id"], [])
        human = [e for e in events if not e["machine"]]
        out.append(
            Message(
                subject=m["subject"],
                kind=m["kind"],
                status=m["status"],
                reason=m["reason"],
                created_at=m["created_at"],
                sent_at=m["sent_at"],
                opens=sum(1 for e in human if e["kind"] == "open"),
                clicks=sum(1 for e in human if e["kind"] == "click"),
                machine=len(events) - len(human),
                bounced=m["status"] == "bounced" or any(e["kind"] == "bounce" for e in events),
                complained=any(e["kind"] == "complaint" for e in events),
            )
        )
    return out


def _journeys(conn: Connection, business_id: str, profile_id: str) -> list[Journey]:
    names = {j.id: j for j in journeys.list_journeys(conn, business_id=business_id)}
    out = []
    for run in reversed(journeys.person_path(conn, business_id=business_id, profile_id=profile_id)):
        journey = names.get(run.journey_id)
        out.append(
            Journey(
                name=journey.name if journey else run.journey_id,
                key=journey.key if journey else "",
                run=run,
            )
        )
    return out


def _merges(records: list[MergeRecord], edges: list[Edge]) -> list[MergeRow]:
    live = [e for e in edges if e.removed_at is None]
    return [
        MergeRow(
            record=r,
            edges=[e for e in live if e.message_id and e.message_id == r.evidence.get("message_id")]
            if r.action == "merge"
            else [],
        )
        for r in reversed(records)
    ]


def _charts(
    view: ProfileView, per_day: list[tuple[str, int]], predictions: list[Prediction]
) -> list[Chart]:
    counts = sorted(view.computed.get("event_counts", {}).items(), key=lambda kv: -kv[1])
    charts = [
        Chart(
            title="Events per day",
            x=[d for d, _ in per_day],
            series=[Series("Events", [n for _, n in per_day])],
            kind="bar",
            x_title="Day (UTC)",
            y_title="Events",
            id="chart-events",
            notes=("The events the timeline's filter keeps.",),
        ),
        Chart(
            title="Events by name",
            x=[name for name, _ in counts],
            series=[Series("Events", [n for _, n in counts])],
            kind="hbar",
            x_title="Event",
            y_title="Events",
            height=max(160, 28 * len(counts) + 60),
            id="chart-event-names",
        ),
    ]
    scores = [view.computed.get(k) for k in rfm.TRAITS[:3]]
    if any(s is not None for s in scores):
        charts.append(
            Chart(
                title="RFM scores (1 to 5)",
                x=["Recency", "Frequency", "Monetary"],
                series=[Series("Score", scores)],
                kind="bar",
                x_title="Dimension",
                y_title="Score",
                id="chart-rfm",
            )
        )
    ranked = [p for p in predictions if isinstance(p.percentile, int | float)]
    if ranked:
        charts.append(
            Chart(
                title="Prediction percentiles",
                x=[p.trait for p in ranked],
                series=[Series("Percentile", [float(p.percentile or 0) / 100 for p in ranked])],
                kind="hbar",
                fmt="percent",
                x_title="Prediction",
                y_title="Percentile among the business's people",
                height=max(160, 36 * len(ranked) + 60),
                id="chart-predictions",
            )
        )
    return charts


def person_context(
    conn: Connection,
    state: AppState,
    caller: Caller,
    profile_id: str,
    where: browse.EventFilter | None,
    page: int,
) -> dict[str, Any]:
    """Everything the 360° page shows; NotFound for a profile not of the caller's business.
    Without a filter (`where` None: what was typed could not be read) no event is listed."""
    business_id = caller.business_id
    view = profiles.profile_view(conn, business_id=business_id, profile_id=profile_id)
    predictions = predictions_of(view.traits)
    hidden = _companions(predictions) | set(rfm.TRAITS)
    events: list[dict[str, Any]] = []
    per_day: list[tuple[str, int]] = []
    has_next = False
    if where is not None:
        fetched = browse.timeline(
            conn,
            business_id=business_id,
            profile_id=profile_id,
            where=where,
            limit=TIMELINE_PAGE + 1,
            offset=(page - 1) * TIMELINE_PAGE,
        )
        events, has_next = fetched[:TIMELINE_PAGE], len(fetched) > TIMELINE_PAGE
        per_day = browse.events_per_day(
            conn, business_id=business_id, profile_id=profile_id, where=where
        )
    edges = identity.edges_of(conn, business_id=business_id, profile_id=profile_id)
    merges = identity.merge_history(conn, business_id=business_id, profile_id=profile_id)
    return {
        "view": view,
        "known": any(i.kind not in profiles.ANONYMOUS_KINDS for i in view.identifiers),
        "traits": {k: v for k, v in sorted(view.traits.items()) if k not in hidden},
        "computed": {k: v for k, v in view.computed.items() if k not in SHOWN_ELSEWHERE},
        "rfm": {k: view.computed[k] for k in rfm.TRAITS if k in view.computed},
        "predictions": predictions,
        "consent": _consent_rows(conn, business_id, view),
        "audiences": audiences_of(conn, business_id=business_id, profile_id=profile_id),
        "reachable": []
        if state.journey_environment is None
        else journeys.reachable_channels(
            conn, business_id=business_id, profile_id=profile_id, env=state.journey_environment
        ),
        "journeys": _journeys(conn, business_id, profile_id)
        if caller.can("journeys.read")
        else None,
        "messages": _messages(conn, business_id, view) if caller.can("email.read") else None,
        "edges": edges,
        "merges": _merges(merges, edges),
        "events": events,
        "has_next": has_next,
        "charts": _charts(view, per_day, predictions),
        "can_manage": caller.can("profiles.manage"),
    }


@router.get("/profiles/{profile_id}")
def person_page(
    request: Request,
    state: State,
    caller: Reader,
    profile_id: str,
    type: str = "",
    name: str = "",
    since: str = "",
    until: str = "",
    page: str = "1",
) -> Response:
    """The 360° page; the timeline filter (`type`, `name`, `since`, `until` as
    YYYY-MM-DD, `page`) that cannot be read re-renders with a 400 naming the field."""
    errors: dict[str, str] = {}
    where: browse.EventFilter | None = None
    number = 1
    try:
        number = page_number(page)
        where = browse.event_filter(type=type, name=name, since=since, until=until)
    except InvalidInput as exc:
        errors = problems_by_field(exc)
    with state.store.read() as conn:
        context = person_context(conn, state, caller, profile_id, where, number)
    return render(
        request,
        "profiles/person.html",
        caller=caller,
        status=400 if errors else 200,
        errors=errors,
        filters={"type": type, "name": name, "since": since, "until": until},
        event_types=browse.EVENT_TYPES,
        page=number,
        **context,
    )
