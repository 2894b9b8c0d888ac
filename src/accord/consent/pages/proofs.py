"""Consent pages: proof look-up. Any identifier a person is known by (email, phone, user
id, anonymous id, an email given on a lead form) leads to the ledger subjects that hold
their decisions, and to each subject's proof of consent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from accord.consent import proof, service
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.identity import service as identity
from accord.leads import subjects as leads
from accord.profiles import service as profiles
from accord.web.auth import Caller, requires
from accord.web.charts import Chart, Series
from accord.web.state import State
from accord.web.ui import NavEntry, render

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Proof of consent", "/consent/proofs", "consent.read", "Consent", 23)]

Reader = Annotated[Caller, Depends(requires("consent.read"))]

MAX_QUERY = 320
# Ledger subjects are anonymousIds and userIds: the identifiers a profile holds of these kinds.
SUBJECT_KINDS = ("user_id", "anonymous_id")


@dataclass
class Found:
    """A ledger subject the typed identifier leads to, and how."""

    subject: str
    via: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] | None = None

    @property
    def last_decision(self) -> str | None:
        return self.records[-1]["recorded_at"] if self.records else None


def _profile_subjects(conn: Connection, business_id: str, typed: str) -> dict[str, str]:
    """Subjects of the profiles holding `typed` as any kind of identifier, with how."""
    keys: list[tuple[str, str]] = []
    for kind in identity.get_rules(conn, business_id=business_id).kinds:
        try:
            keys.append(identity.lookup_key(conn, business_id=business_id, kind=kind, value=typed))
        except InvalidInput:
            continue  # not a usable value of this kind (an email typed as a phone)
    found: dict[str, str] = {}
    owners = profiles.profile_ids_for(conn, business_id=business_id, identifiers=keys)
    if not owners:
        return found
    held = profiles.identifier_rows(conn, business_id=business_id, profile_ids=sorted(owners))
    matched = {(kind, value) for kind, value in keys}
    for profile_id, kind, value in held:
        if kind in SUBJECT_KINDS:
            how = next((f"{k} {v}" for _, k, v in held if (k, v) in matched), typed)
            found.setdefault(value, f"{kind} of profile {profile_id} (holds {how})")
    return found


def _lead_subjects(conn: Connection, business_id: str, typed: str) -> dict[str, str]:
    """Subjects of lead forms given `typed` as their email: a confirmed form's consent is
    recorded under the visitor's anonymousId, not under the address."""
    if "@" not in typed:
        return {}
    email = identity.normalise_email(typed)
    history = leads.subject_history(conn, business_id=business_id, emails=[email], anonymous_ids=[])
    return {
        str(lead["anonymous_id"]): f"anonymousId of lead {lead['id']} (form email {email})"
        for lead in history["leads"]
        if lead.get("anonymous_id")
    }


def look_up(conn: Connection, *, business_id: str, typed: str) -> list[Found]:
    """Every ledger subject the identifier leads to that has at least one decision."""
    candidates: dict[str, list[str]] = {typed: ["typed as anonymousId or userId"]}
    for source in (_profile_subjects, _lead_subjects):
        for subject, how in source(conn, business_id, typed).items():
            candidates.setdefault(subject, []).append(how)
    found = []
    for subject, via in candidates.items():
        records = service.history(conn, business_id=business_id, subject=subject)
        if records:
            state = service.subject_state(conn, business_id=business_id, subject=subject)
            found.append(
                Found(
                    subject=subject,
                    via=via,
                    records=records,
                    state=state.to_json() if state else None,
                )
            )
    return found


def choices_chart(found: list[Found]) -> Chart:
    """Each decision of the subjects found (columns, oldest first) and its choice per purpose:
    1 granted, 0 refused, empty when the decision was not about the purpose."""
    records = sorted(
        {r["position"]: r for f in found for r in f.records}.values(),
        key=lambda r: r["position"],
    )
    purposes = sorted({p for r in records for p in r["purposes"] if p != "necessary"})
    labels = [f"#{r['position']} {_short(r['recorded_at'])} {r['source']}" for r in records]
    return Chart(
        title="Choices in each decision (1 granted, 0 refused)",
        x=labels,
        series=[Series(p, [_choice(r["purposes"].get(p)) for r in records]) for p in purposes],
        kind="heatmap",
        x_title="decision",
        y_title="purpose",
        id="choices",
    )


def _choice(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def _short(instant: str) -> str:
    try:
        return datetime.fromisoformat(instant.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return instant


@router.get("/consent/proofs")
def proofs_page(request: Request, state: State, caller: Reader, q: str | None = None) -> Response:
    """The search box, and the subjects with decisions that the identifier leads to."""
    typed = (q or "").strip()
    problems: dict[str, str] = {}
    if q is not None and not typed:
        problems["q"] = "type an email, phone, user id or anonymous id"
    elif len(typed) > MAX_QUERY:
        problems["q"] = f"must be at most {MAX_QUERY} characters"
    found: list[Found] = []
    if typed and not problems:
        with state.store.read() as conn:
            found = look_up(conn, business_id=caller.business_id, typed=typed)
    return render(
        request,
        "consent/insight/proofs.html",
        caller=caller,
        status=400 if problems else 200,
        problems=problems,
        q=q or "",
        searched=bool(typed) and not problems,
        found=found,
        chart=choices_chart(found) if found else None,
    )


@router.get("/consent/proof")
def proof_page(request: Request, state: State, caller: Reader, subject: str = "") -> Response:
    """A subject's proof of consent as the self-contained HTML page regulators get."""
    if not subject.strip():
        raise InvalidInput([FieldProblem("subject", "name the anonymousId or userId")])
    with state.store.read() as conn:
        built = proof.build(conn, business_id=caller.business_id, subject=subject)
    if not built["records"]:
        raise NotFound(f"consent records of {subject!r}")
    return HTMLResponse(proof.render_html(built))
