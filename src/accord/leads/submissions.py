"""Form submissions: the public flow end to end, the lead and its consents, lead look-ups."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, func, select, update
from starlette.concurrency import run_in_threadpool

from accord.collect.consent_gate import ConsentGate
from accord.collect.validation import Limits
from accord.core.clock import utcnow
from accord.core.errors import NotFound
from accord.core.ids import new_id
from accord.core.signing import Signer
from accord.leads.confirmation import Confirmed, confirm, send_confirmation
from accord.leads.forms import Form
from accord.leads.identify import join_identity, lead_traits
from accord.leads.lifecycle import decayed
from accord.leads.models import (
    coupons,
    lead_consents,
    leads,
)
from accord.leads.service import score_submission, scoring_config
from accord.leads.spam import HONEYPOT_FIELD, RateLimiter, check_honeypot
from accord.leads.validation import CleanSubmission, validate_submission
from accord.messaging.mailer import Mailer
from accord.messaging.ports import Wiring
from accord.store.db import Store
from accord.store.metadata import utc_day


@dataclass
class Submitted:
    lead_id: str
    anonymous_id: str
    needs_confirmation: bool
    already_confirmed: bool = False


def submit(
    conn: Connection,
    *,
    form: Form,
    submission: CleanSubmission,
    anonymous_id: str | None,
    ip: str | None,
    user_agent: str | None,
    now: datetime | None = None,
) -> Submitted:
    """Store the lead and its ticked purposes, pending until `confirm` records them: the
    caller confirms at once unless `needs_confirmation` (double opt-in).

    Submitting again with the same email updates the lead's answers; consent given again
    is recorded again, with the new form version.
    """
    now = now or utcnow()
    business_id = form.business_id
    existing = conn.execute(
        select(leads).where(leads.c.business_id == business_id, leads.c.email == submission.email)
    ).first()
    values = {
        "name": submission.name,
        "phone": submission.phone,
        "company": submission.company,
        "answers": orjson.dumps(submission.answers).decode(),
        "utm": orjson.dumps(submission.utm).decode(),
        "form_id": form.id,
        "form_version": form.version,
    }
    if existing is None:
        lead_id = new_id("lead")
        anonymous = (anonymous_id or "")[:200] or f"lead-{uuid.uuid4().hex}"
        conn.execute(
            leads.insert().values(
                id=lead_id,
                business_id=business_id,
                email=submission.email,
                anonymous_id=anonymous,
                source="form",
                status="confirmed" if not form.spec.double_opt_in else "pending",
                created_at=now,
                confirmed_at=None if form.spec.double_opt_in else now,
                confirm_ip=None if form.spec.double_opt_in else ip,
                **values,
            )
        )
        confirmed = not form.spec.double_opt_in
    else:
        lead_id, anonymous = existing.id, existing.anonymous_id
        conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
        confirmed = existing.status == "confirmed"
    for purpose in submission.purposes:
        conn.execute(
            lead_consents.insert().values(
                id=new_id("lc"),
                business_id=business_id,
                lead_id=lead_id,
                purpose=purpose,
                form_id=form.id,
                form_version=form.version,
                ip=ip,
                user_agent=(user_agent or "")[:500] or None,
                given_at=now,
                # Recorded (here and in the ledger) by `confirm`: after the double opt-in,
                # or at once when the form has none or the lead confirmed before.
                status="pending",
                confirmed_at=None,
            )
        )
    score_submission(conn, business_id=business_id, lead_id=lead_id, submission=submission)
    return Submitted(
        lead_id=lead_id,
        anonymous_id=anonymous,
        needs_confirmation=form.spec.double_opt_in and not confirmed,
        already_confirmed=confirmed and existing is not None,
    )


def lead_id_by_email(conn: Connection, *, business_id: str, email: str) -> str:
    found = conn.execute(
        select(leads.c.id).where(
            leads.c.business_id == business_id, leads.c.email == email.strip().lower()
        )
    ).scalar()
    if found is None:
        raise NotFound(f"lead {email}")
    return str(found)


def lead_view(conn: Connection, *, business_id: str, lead_id: str) -> dict[str, Any]:
    lead = conn.execute(
        select(leads).where(leads.c.id == lead_id, leads.c.business_id == business_id)
    ).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    consents = conn.execute(
        select(lead_consents)
        .where(lead_consents.c.lead_id == lead_id)
        .order_by(lead_consents.c.given_at)
    ).all()
    coupon_rows = conn.execute(select(coupons).where(coupons.c.lead_id == lead_id)).all()
    view = dict(lead._mapping)
    view["answers"] = orjson.loads(lead.answers)
    view["utm"] = orjson.loads(lead.utm)
    view["consents"] = [dict(c._mapping) for c in consents]
    view["coupons"] = [
        {"code": c.code, "pool_id": c.pool_id, "redeemed_at": c.redeemed_at} for c in coupon_rows
    ]
    return view


# The public submission, end to end ------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    """What a visitor posted to a landing page, as the handler read it."""

    values: Mapping[str, list[str]]  # every field as posted; checkboxes give several values
    lang: str
    ip: str
    user_agent: str | None
    page_url: str

    def first(self, key: str) -> str:
        return (self.values.get(key) or [""])[0]


@dataclass(frozen=True)
class FormSubmitted:
    lead_id: str
    needs_confirmation: bool
    # Set when the lead was confirmed at once (no double opt-in, or confirmed before).
    confirmed: Confirmed | None


async def submit_form(
    store: Store,
    *,
    form: Form,
    posted: Posted,
    limiter: RateLimiter,
    gate: ConsentGate,
    limits: Limits,
    mailer: Mailer,
    wiring: Wiring,
) -> FormSubmitted:
    """A landing-page submission: rate limit and spam check, validation (`InvalidInput`
    with every problem, in the visitor's language), the lead and its pending consents, the
    lead into the identity graph, then the confirmation email (double opt-in) or the
    confirmation at once."""
    limiter.hit(posted.ip)
    check_honeypot(posted.first(HONEYPOT_FIELD))
    clean = validate_submission(form.spec, posted.values, lang=posted.lang)
    done, confirmed = await run_in_threadpool(
        partial(
            _record,
            store,
            form=form,
            clean=clean,
            posted=posted,
            gate=gate,
            limits=limits,
            wiring=wiring,
            signer=mailer.signer,
        )
    )
    if done.needs_confirmation:
        await send_confirmation(
            store,
            form=form,
            lead_id=done.lead_id,
            email=clean.email,
            lang=posted.lang,
            mailer=mailer,
        )
    return FormSubmitted(done.lead_id, done.needs_confirmation, confirmed)


def _record(
    store: Store,
    *,
    form: Form,
    clean: CleanSubmission,
    posted: Posted,
    gate: ConsentGate,
    limits: Limits,
    wiring: Wiring,
    signer: Signer,
) -> tuple[Submitted, Confirmed | None]:
    with store.write() as conn:
        done = submit(
            conn,
            form=form,
            submission=clean,
            anonymous_id=posted.first("anonymous_id") or None,
            ip=posted.ip,
            user_agent=posted.user_agent,
        )
    join_identity(
        store,
        source=form.source,
        leads_traits=[
            (
                f"lead-{done.lead_id}-{uuid.uuid4().hex[:12]}",
                done.anonymous_id,
                lead_traits(clean),
                {"campaign": clean.utm, "ip": posted.ip, "page": {"url": posted.page_url}},
            )
        ],
        gate=gate,
        limits=limits,
    )
    if done.needs_confirmation:
        return done, None
    with store.write() as conn:
        return done, confirm(
            conn,
            lead_id=done.lead_id,
            ip=posted.ip,
            wiring=wiring,
            signer=signer,
            lang=posted.lang,
        )


def list_leads(
    conn: Connection,
    *,
    business_id: str,
    form_id: str | None = None,
    stage: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first, with the score as it stands now (decayed since it was last scored)."""
    config = scoring_config(conn, business_id=business_id)
    query = select(leads).where(leads.c.business_id == business_id)
    if form_id:
        query = query.where(leads.c.form_id == form_id)
    if stage:
        query = query.where(leads.c.stage == stage)
    rows = conn.execute(
        query.order_by(leads.c.created_at.desc(), leads.c.id).offset(offset).limit(limit)
    ).all()
    now = utcnow()
    found = []
    for row in rows:
        view = dict(row._mapping)
        view["score_now"] = decayed(
            row.score, scored_at=row.scored_at, now=now, half_life_days=config.half_life_days
        )
        view["utm"] = orjson.loads(row.utm)
        found.append(view)
    return found


def leads_per_day(
    conn: Connection,
    *,
    business_id: str,
    since: datetime,
    by: Literal["form", "source"] = "source",
    form_id: str | None = None,
) -> dict[str, dict[str, int]]:
    """New leads per UTC day since `since`, by form id (leads of no form left out) or by
    source: `{group: {day: count}}`."""
    day = utc_day(leads.c.created_at)
    group = leads.c.form_id if by == "form" else leads.c.source
    query = (
        select(group, day, func.count())
        .where(leads.c.business_id == business_id, leads.c.created_at >= since)
        .group_by(group, day)
    )
    if by == "form":
        query = query.where(leads.c.form_id.is_not(None))
    if form_id:
        query = query.where(leads.c.form_id == form_id)
    found: dict[str, dict[str, int]] = {}
    for key, on, count in conn.execute(query):
        found.setdefault(str(key), {})[str(on)] = int(count)
    return found
