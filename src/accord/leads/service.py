"""Leads: forms and their versions, submissions, double opt-in, coupons, downloads, imports."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, delete, or_, select, update

from accord.accounts.models import SourceRef
from accord.accounts.service import create_source
from accord.collect.consent_gate import ConsentGate
from accord.collect.service import append, normalise_request
from accord.collect.validation import Limits
from accord.core.clock import iso, utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.identity.rules import phone_e164
from accord.leads.i18n import localised, text
from accord.leads.lead_ads import LeadRow
from accord.leads.lifecycle import STAGES, decayed, match, next_stage, phase_for
from accord.leads.models import (
    FormIn,
    PoolIn,
    ScoringIn,
    ScoringRule,
    SpendIn,
    coupon_pools,
    coupons,
    lead_consents,
    lead_forms,
    lead_imports,
    lead_scoring,
    lead_spend,
    lead_stage_changes,
    leads,
)
from accord.leads.spam import RateLimiter, check_honeypot
from accord.leads.validation import CleanSubmission, normalise_email_address
from accord.messaging import service as messaging
from accord.messaging.models import MemberIn
from accord.messaging.service import Rate, rate
from accord.store.db import Store

__all__ = ["RateLimiter", "check_honeypot"]


class CampaignSpend(Protocol):
    """What an ad campaign cost (from its CPM, CPC or CPL pricing), when known."""

    def __call__(self, conn: Connection, *, business_id: str, campaign: str) -> float | None: ...


@dataclass(frozen=True)
class Form:
    id: str
    business_id: str
    version: int
    source: SourceRef
    spec: FormIn


# Forms ---------------------------------------------------------------------------------


def create_form(conn: Connection, *, business_id: str, data: FormIn) -> Form:
    _check_references(conn, business_id=business_id, data=data)
    if conn.execute(select(lead_forms.c.id).where(lead_forms.c.slug == data.slug)).first():
        raise Conflict(f"a form with the address {data.slug!r} exists")
    form_id = new_id("frm")
    source = create_source(conn, business_id=business_id, name=f"form {data.slug}", kind="form")
    now = utcnow()
    conn.execute(
        lead_forms.insert().values(
            id=form_id,
            business_id=business_id,
            slug=data.slug,
            source_id=source.source_id,
            version=1,
            definition=data.model_dump_json(),
            created_at=now,
            updated_at=now,
        )
    )
    return Form(form_id, business_id, 1, source, data)


def update_form(conn: Connection, *, business_id: str, form_id: str, data: FormIn) -> Form:
    """A changed form is a new version: consents given before keep the version they saw."""
    form = get_form(conn, business_id=business_id, form_id=form_id)
    _check_references(conn, business_id=business_id, data=data)
    if data.slug != form.spec.slug:
        raise InvalidInput([FieldProblem("slug", "a form's address cannot change")])
    conn.execute(
        update(lead_forms)
        .where(lead_forms.c.id == form_id)
        .values(version=form.version + 1, definition=data.model_dump_json(), updated_at=utcnow())
    )
    return Form(form.id, business_id, form.version + 1, form.source, data)


def _check_references(conn: Connection, *, business_id: str, data: FormIn) -> None:
    if data.coupon_pool_id is not None:
        found = conn.execute(
            select(coupon_pools.c.id).where(
                coupon_pools.c.id == data.coupon_pool_id,
                coupon_pools.c.business_id == business_id,
            )
        ).first()
        if found is None:
            raise NotFound(f"coupon pool {data.coupon_pool_id}")
    if data.list_id is not None:
        messaging.list_recipients(conn, business_id=business_id, list_id=data.list_id)


def _form(row: Any) -> Form:
    return Form(
        id=row.id,
        business_id=row.business_id,
        version=row.version,
        source=SourceRef(business_id=row.business_id, source_id=row.source_id),
        spec=FormIn.model_validate_json(row.definition),
    )


def get_form(conn: Connection, *, business_id: str, form_id: str) -> Form:
    row = conn.execute(
        select(lead_forms).where(
            lead_forms.c.id == form_id, lead_forms.c.business_id == business_id
        )
    ).first()
    if row is None:
        raise NotFound(f"form {form_id}")
    return _form(row)


def form_by_slug(conn: Connection, *, slug: str) -> Form:
    """A public form by its address (the business comes from the form)."""
    row = conn.execute(select(lead_forms).where(lead_forms.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"form {slug}")
    return _form(row)


def embed_snippet(form: Form, *, base_url: str) -> str:
    title = localised(form.spec.title, "en").replace('"', "&quot;")
    return (
        f'<iframe src="{base_url}/l/{form.spec.slug}?embed=1" title="{title}" '
        'style="width:100%;min-height:640px;border:0" loading="lazy"></iframe>'
    )


# Identity ------------------------------------------------------------------------------


def join_identity(
    store: Store,
    *,
    source: SourceRef,
    leads_traits: Sequence[tuple[str, str, dict[str, Any], dict[str, Any]]],
    gate: ConsentGate,
    limits: Limits,
) -> int:
    """Append one identify event per lead (message id, anonymous id, traits, context) to
    collection, so the identity graph and profiles take leads in like any other person."""
    if not leads_traits:
        return 0
    received_at = utcnow()
    events = normalise_request(
        {
            "batch": [
                {
                    "type": "identify",
                    "messageId": message_id,
                    "anonymousId": anonymous_id,
                    "traits": traits,
                    "context": context,
                    "timestamp": iso(received_at),
                }
                for message_id, anonymous_id, traits, context in leads_traits
            ]
        },
        kind="batch",
        received_at=received_at,
        limits=limits,
        max_batch_events=len(leads_traits),
    )
    return append(store, source=source, events=events, gate=gate, received_at=received_at).stored


def _traits(lead: CleanSubmission | dict[str, Any]) -> dict[str, Any]:
    values = lead if isinstance(lead, dict) else vars(lead)
    traits = {k: values.get(k) for k in ("email", "name", "phone", "company") if values.get(k)}
    return traits


# Submissions and double opt-in ---------------------------------------------------------


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


def confirmation_template(lang: str) -> messaging.CompiledTemplate:
    return messaging.compile_template(
        subject=text("confirm_subject", lang),
        html=(
            "<html><body><p>{{ intro }}:</p>"
            '<p><a href="{{ link }}">{{ link }}</a></p><p>{{ ignore }}</p></body></html>'
        ),
        text="{{ intro }}:\n\n{{ link }}\n\n{{ ignore }}\n",
    )


async def send_confirmation(
    store: Store,
    *,
    form: Form,
    lead_id: str,
    email: str,
    lang: str,
    mailer: messaging.Mailer,
) -> str:
    """Email the signed confirmation link; the message id is kept as proof it was sent."""
    token = mailer.signer.dumps_timed("confirm", [lead_id, lang])
    message_id, outcome = await messaging.send_transactional(
        store,
        business_id=form.business_id,
        kind="confirmation",
        to=email,
        from_address=form.spec.from_address,
        template=confirmation_template(lang),
        context={
            "link": f"{mailer.base_url}/l/confirm/{token}",
            "intro": text("confirm_body", lang),
            "ignore": text("confirm_ignore", lang),
        },
        mailer=mailer,
    )
    with store.write() as conn:
        conn.execute(
            update(lead_consents)
            .where(lead_consents.c.lead_id == lead_id, lead_consents.c.status == "pending")
            .values(confirmation_message_id=message_id)
        )
    if not outcome.ok:
        raise Conflict(f"the confirmation email could not be sent: {outcome.error}")
    return message_id


@dataclass
class Confirmed:
    lead_id: str
    business_id: str
    form: Form | None
    coupon: str | None = None
    download_token: str | None = None
    lang: str = "en"
    purposes: list[str] = field(default_factory=list)


def confirm(
    conn: Connection,
    *,
    lead_id: str,
    ip: str | None,
    wiring: messaging.Wiring,
    signer: messaging.Signer,
    now: datetime | None = None,
) -> Confirmed:
    """Follow the confirmation link: the lead becomes mailable for the purposes it ticked,
    the consent (with its proof) goes to the ledger, the lead joins the form's list and
    gets its lead magnet."""
    now = now or utcnow()
    lead = conn.execute(select(leads).where(leads.c.id == lead_id)).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    business_id = lead.business_id
    if lead.status != "confirmed":
        conn.execute(
            update(leads)
            .where(leads.c.id == lead_id)
            .values(status="confirmed", confirmed_at=now, confirm_ip=ip)
        )
    pending = conn.execute(
        select(lead_consents).where(
            lead_consents.c.lead_id == lead_id, lead_consents.c.status == "pending"
        )
    ).all()
    if pending:
        conn.execute(
            update(lead_consents)
            .where(lead_consents.c.lead_id == lead_id, lead_consents.c.status == "pending")
            .values(status="recorded", confirmed_at=now, confirm_ip=ip)
        )
    if wiring.record_consent is not None:
        for consent in pending:
            wiring.record_consent(
                conn,
                business_id=business_id,
                anonymous_id=lead.anonymous_id,
                user_id=None,
                purposes={consent.purpose: True},
                source=f"form:{consent.form_id}",
                evidence={
                    "form_id": consent.form_id,
                    "form_version": consent.form_version,
                    "given_at": iso(consent.given_at),
                    "ip": consent.ip,
                    "user_agent": consent.user_agent,
                    "double_opt_in": {
                        "confirmation_message_id": consent.confirmation_message_id,
                        "confirmed_at": iso(now),
                        "ip": ip,
                    }
                    if consent.confirmation_message_id
                    else None,
                },
            )
    result = Confirmed(lead_id=lead_id, business_id=business_id, form=None)
    result.purposes = sorted({c.purpose for c in pending})
    if lead.form_id is not None:
        form = get_form(conn, business_id=business_id, form_id=lead.form_id)
        result.form = form
        if form.spec.list_id is not None:
            messaging.add_member(
                conn,
                business_id=business_id,
                list_id=form.spec.list_id,
                member=MemberIn(
                    email=lead.email,
                    anonymous_id=lead.anonymous_id,
                    traits=_traits({"name": lead.name, "company": lead.company}),
                ),
            )
        if form.spec.coupon_pool_id is not None:
            result.coupon = assign_coupon(
                conn, business_id=business_id, pool_id=form.spec.coupon_pool_id, lead_id=lead_id
            )
        if form.spec.download_name is not None:
            result.download_token = signer.dumps_timed(
                "download", [lead_id, form.id, form.spec.download_name]
            )
    return result


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


# Lead magnets --------------------------------------------------------------------------


def create_pool(conn: Connection, *, business_id: str, data: PoolIn) -> str:
    codes = [c.strip() for c in data.codes if c.strip()]
    if len(set(codes)) != len(codes):
        raise InvalidInput([FieldProblem("codes", "codes must be unique")])
    pool_id = new_id("cpn")
    conn.execute(
        coupon_pools.insert().values(
            id=pool_id, business_id=business_id, name=data.name, created_at=utcnow()
        )
    )
    for start in range(0, len(codes), 1000):
        conn.execute(
            coupons.insert(),
            [
                {"id": new_id("cp"), "business_id": business_id, "pool_id": pool_id, "code": c}
                for c in codes[start : start + 1000]
            ],
        )
    return pool_id


def assign_coupon(conn: Connection, *, business_id: str, pool_id: str, lead_id: str) -> str:
    """The lead's code from the pool: the one it already has, else the next free one."""
    held = conn.execute(
        select(coupons.c.code).where(coupons.c.pool_id == pool_id, coupons.c.lead_id == lead_id)
    ).scalar()
    if held is not None:
        return str(held)
    for _attempt in range(20):
        free = conn.execute(
            select(coupons.c.id, coupons.c.code)
            .where(coupons.c.pool_id == pool_id, coupons.c.lead_id.is_(None))
            .order_by(coupons.c.code)
            .limit(1)
        ).first()
        if free is None:
            raise Conflict(f"coupon pool {pool_id} has no codes left")
        # Taken only if still free, so two confirmations never share a code.
        taken = conn.execute(
            update(coupons)
            .where(coupons.c.id == free.id, coupons.c.lead_id.is_(None))
            .values(lead_id=lead_id, assigned_at=utcnow())
        ).rowcount
        if taken == 1:
            return str(free.code)
    raise Conflict("could not take a free coupon code; try again")


def redeem_coupon(conn: Connection, *, business_id: str, code: str) -> dict[str, Any]:
    row = conn.execute(
        select(coupons).where(coupons.c.business_id == business_id, coupons.c.code == code)
    ).first()
    if row is None:
        raise NotFound(f"coupon {code}")
    if row.lead_id is None:
        raise Conflict(f"coupon {code} was never given to anyone")
    if row.redeemed_at is not None:
        raise Conflict(f"coupon {code} was already redeemed at {iso(row.redeemed_at)}")
    now = utcnow()
    conn.execute(update(coupons).where(coupons.c.id == row.id).values(redeemed_at=now))
    return {"code": code, "lead_id": row.lead_id, "redeemed_at": now}


def magnet_path(data_dir: Path, *, business_id: str, name: str) -> Path:
    return data_dir / "magnets" / business_id / name


def download_target(
    conn: Connection,
    *,
    token: str,
    signer: messaging.Signer,
    max_age_seconds: int,
    data_dir: Path,
) -> Path:
    lead_id, _form_id, name = signer.loads_timed(
        "download", token, max_age_seconds=max_age_seconds, what="download"
    )
    lead = conn.execute(select(leads.c.business_id).where(leads.c.id == lead_id)).first()
    if lead is None:
        raise NotFound("download")
    path = magnet_path(data_dir, business_id=lead.business_id, name=str(name))
    if not path.is_file():
        raise NotFound(f"download {name}")
    return path


# Imports -------------------------------------------------------------------------------


def _import_source(conn: Connection, *, business_id: str, kind: str) -> SourceRef:
    found = conn.execute(
        select(lead_imports.c.source_id)
        .where(lead_imports.c.business_id == business_id, lead_imports.c.kind == kind)
        .limit(1)
    ).scalar()
    if found is not None:
        return SourceRef(business_id=business_id, source_id=found)
    return create_source(conn, business_id=business_id, name=f"{kind} imports", kind="import")


@dataclass
class LeadImport:
    id: str
    read: int = 0
    added: int = 0
    updated: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def import_leads(
    store: Store,
    *,
    business_id: str,
    rows: Iterable[LeadRow],
    kind: str,
    name: str,
    spend: float | None,
    gate: ConsentGate,
    limits: Limits,
    phone_region: str | None = None,
) -> LeadImport:
    """Add imported leads (not mailable: an export carries no email consent) and send each
    into the identity graph; rows that cannot be used are reported with the reason."""
    report = LeadImport(id=new_id("imp"))
    identities: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    with store.write() as conn:
        source = _import_source(conn, business_id=business_id, kind=kind)
        for row in rows:
            report.read += 1
            problems: list[tuple[str, str]] = []
            email = row.fields.get("email", "")
            try:
                email = normalise_email_address(email, check_deliverability=False)
            except ValueError as exc:
                problems.append(("email", str(exc) if email else "is missing"))
            phone = row.fields.get("phone")
            if phone:
                try:
                    phone = phone_e164(phone, phone_region)
                except ValueError as exc:
                    problems.append(("phone", str(exc)))
            if problems:
                report.rejected.extend(
                    {"line": row.line, "field": f, "reason": r} for f, r in problems
                )
                continue
            existing = conn.execute(
                select(leads.c.id, leads.c.anonymous_id).where(
                    leads.c.business_id == business_id, leads.c.email == email
                )
            ).first()
            answers = {**row.answers, **{k: v for k, v in row.ad.items()}}
            if existing is None:
                anonymous_id = f"lead-{uuid.uuid4().hex}"
                conn.execute(
                    leads.insert().values(
                        id=new_id("lead"),
                        business_id=business_id,
                        email=email,
                        anonymous_id=anonymous_id,
                        name=row.fields.get("name"),
                        phone=phone,
                        company=row.fields.get("company"),
                        answers=orjson.dumps(answers).decode(),
                        utm=orjson.dumps(
                            {"utm_campaign": row.ad["campaign_name"]}
                            if row.ad.get("campaign_name")
                            else {}
                        ).decode(),
                        source=kind,
                        import_id=report.id,
                        status="imported",
                        created_at=utcnow(),
                    )
                )
                report.added += 1
            else:
                anonymous_id = existing.anonymous_id
                report.updated += 1
            traits = {
                "email": email,
                **{
                    k: v
                    for k, v in (
                        ("name", row.fields.get("name")),
                        ("phone", phone),
                        ("company", row.fields.get("company")),
                    )
                    if v
                },
            }
            lead_key = str(row.ad.get("lead_id") or f"{report.id}-{row.line}")
            identities.append(
                (f"{kind}-{lead_key}", anonymous_id, traits, {"source": {"import": report.id}})
            )
        conn.execute(
            lead_imports.insert().values(
                id=report.id,
                business_id=business_id,
                kind=kind,
                name=name,
                source_id=source.source_id,
                spend=spend,
                rows_read=report.read,
                leads_added=report.added,
                rejected=orjson.dumps(report.rejected).decode(),
                created_at=utcnow(),
            )
        )
    for start in range(0, len(identities), 1000):
        join_identity(
            store,
            source=source,
            leads_traits=identities[start : start + 1000],
            gate=gate,
            limits=limits,
        )
    return report


# Scoring and lifecycle -----------------------------------------------------------------


def set_scoring(conn: Connection, *, business_id: str, data: ScoringIn) -> None:
    if data.consideration_at > data.prospect_at:
        raise InvalidInput([FieldProblem("consideration_at", "must not be above prospect_at")])
    values = {
        "rules": orjson.dumps([r.model_dump() for r in data.rules]).decode(),
        "half_life_days": data.half_life_days,
        "consideration_at": data.consideration_at,
        "prospect_at": data.prospect_at,
        "updated_at": utcnow(),
    }
    if conn.execute(
        select(lead_scoring.c.business_id).where(lead_scoring.c.business_id == business_id)
    ).first():
        conn.execute(
            update(lead_scoring).where(lead_scoring.c.business_id == business_id).values(**values)
        )
    else:
        conn.execute(lead_scoring.insert().values(business_id=business_id, **values))


def scoring_config(conn: Connection, *, business_id: str) -> ScoringIn:
    row = conn.execute(
        select(lead_scoring).where(lead_scoring.c.business_id == business_id)
    ).first()
    if row is None:
        return ScoringIn()
    return ScoringIn(
        rules=[ScoringRule.model_validate(r) for r in orjson.loads(row.rules)],
        half_life_days=row.half_life_days,
        consideration_at=row.consideration_at,
        prospect_at=row.prospect_at,
    )


def _apply(
    conn: Connection,
    *,
    lead: Any,
    config: ScoringIn,
    points: float,
    customer: bool,
    reason: str,
    now: datetime,
) -> None:
    score = (
        decayed(lead.score, scored_at=lead.scored_at, now=now, half_life_days=config.half_life_days)
        + points
    )
    stage = next_stage(lead.stage, score=score, customer=customer, config=config)
    phase = "decision" if stage != "lead" else phase_for(score, config)
    conn.execute(
        update(leads)
        .where(leads.c.id == lead.id)
        .values(score=score, scored_at=now, stage=stage, phase=phase)
    )
    if stage != lead.stage:
        conn.execute(
            lead_stage_changes.insert().values(
                business_id=lead.business_id,
                lead_id=lead.id,
                stage=stage,
                reason=reason[:200],
                changed_at=now,
            )
        )


def score_activity(
    conn: Connection,
    *,
    business_id: str,
    lead_id: str,
    kind: str,
    name: str,
    value: str | None = None,
    now: datetime | None = None,
) -> float:
    """Apply the scoring rules matching one activity of a lead; returns the points given."""
    config = scoring_config(conn, business_id=business_id)
    found = match(config.rules, kind=kind, name=name, value=value)
    if not found.rules:
        return 0.0
    lead = conn.execute(
        select(leads).where(leads.c.id == lead_id, leads.c.business_id == business_id)
    ).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    _apply(
        conn,
        lead=lead,
        config=config,
        points=found.points,
        customer=found.customer,
        reason=f"{kind} {name}" + (f" = {value}" if value else ""),
        now=now or utcnow(),
    )
    return found.points


def score_submission(
    conn: Connection, *, business_id: str, lead_id: str, submission: CleanSubmission
) -> float:
    """Points for a form's answers and for how well the lead fits (fields given)."""
    total = 0.0
    for key, answer in submission.answers.items():
        for value in answer if isinstance(answer, list) else [answer]:
            total += score_activity(
                conn,
                business_id=business_id,
                lead_id=lead_id,
                kind="answer",
                name=key,
                value=value,
            )
    for key in ("name", "phone", "company"):
        value = getattr(submission, key)
        if value:
            total += score_activity(
                conn, business_id=business_id, lead_id=lead_id, kind="fit", name=key, value=value
            )
    return total


def score_email_engagement(conn: Connection, *, business_id: str, email: str, kind: str) -> None:
    """Points for a human open or click of marketing email (messaging calls this)."""
    lead_id = conn.execute(
        select(leads.c.id).where(leads.c.business_id == business_id, leads.c.email == email)
    ).scalar()
    if lead_id is not None:
        score_activity(conn, business_id=business_id, lead_id=lead_id, kind="email", name=kind)


def scores_events(conn: Connection, *, business_id: str) -> bool:
    """Whether any scoring rule of the business is about tracked events: without one,
    no event can change a lead, and processing need not look leads up."""
    return any(rule.kind == "event" for rule in scoring_config(conn, business_id=business_id).rules)


def score_event(conn: Connection, *, business_id: str, event: dict[str, Any]) -> float:
    """Points for a tracked event of a lead (by anonymousId, else by the email in
    `context.traits`); a rule with `stage: customer` (a purchase) makes the lead a customer."""
    if event.get("type") != "track" or not isinstance(event.get("event"), str):
        return 0.0
    query = select(leads.c.id).where(leads.c.business_id == business_id)
    anonymous_id = event.get("anonymousId")
    context = event.get("context") if isinstance(event.get("context"), dict) else {}
    traits = (context or {}).get("traits")
    email = traits.get("email") if isinstance(traits, dict) else None
    lead_id = None
    if isinstance(anonymous_id, str) and anonymous_id:
        lead_id = conn.execute(query.where(leads.c.anonymous_id == anonymous_id)).scalar()
    # A lead from a form without the site's anonymous id, or from an import, is known
    # by email only: the shop's events name the visitor's own anonymous id.
    if lead_id is None and isinstance(email, str):
        lead_id = conn.execute(query.where(leads.c.email == email.strip().lower())).scalar()
    if lead_id is None:
        return 0.0
    return score_activity(
        conn, business_id=business_id, lead_id=lead_id, kind="event", name=event["event"]
    )


def set_stage(conn: Connection, *, business_id: str, lead_id: str, stage: str, reason: str) -> None:
    """Set a stage by hand (a sale closed offline); stages never move backwards."""
    lead = conn.execute(
        select(leads).where(leads.c.id == lead_id, leads.c.business_id == business_id)
    ).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    if STAGES.index(stage) < STAGES.index(lead.stage):
        raise Conflict(f"lead {lead_id} is a {lead.stage}; stages do not move back")
    if stage == lead.stage:
        return
    conn.execute(update(leads).where(leads.c.id == lead_id).values(stage=stage, phase="decision"))
    conn.execute(
        lead_stage_changes.insert().values(
            business_id=business_id,
            lead_id=lead_id,
            stage=stage,
            reason=reason[:200],
            changed_at=utcnow(),
        )
    )


def set_spend(conn: Connection, *, business_id: str, data: SpendIn) -> None:
    key = (lead_spend.c.business_id == business_id) & (lead_spend.c.campaign == data.campaign)
    if conn.execute(select(lead_spend.c.campaign).where(key)).first():
        conn.execute(update(lead_spend).where(key).values(amount=data.amount, updated_at=utcnow()))
    else:
        conn.execute(
            lead_spend.insert().values(
                business_id=business_id,
                campaign=data.campaign,
                amount=data.amount,
                updated_at=utcnow(),
            )
        )


@dataclass
class FunnelRow:
    group: str
    leads: int
    prospects: int
    customers: int
    lead_to_prospect: Rate
    prospect_to_customer: Rate
    lead_to_customer: Rate
    spend: float | None
    cost_per_lead: float | None
    cost_per_customer: float | None


def funnel(
    conn: Connection,
    *,
    business_id: str,
    by: str,
    campaign_spend: CampaignSpend | None = None,
) -> list[FunnelRow]:
    """Conversion between stages per source, campaign (utm_campaign), form or import,
    with cost per lead and per customer where spend is known."""
    if by not in ("source", "campaign", "form", "import"):
        raise InvalidInput([FieldProblem("by", "use source, campaign, form or import")])
    rows = conn.execute(
        select(
            leads.c.source, leads.c.utm, leads.c.form_id, leads.c.import_id, leads.c.stage
        ).where(leads.c.business_id == business_id)
    ).all()
    counts: dict[str, list[int]] = {}
    for row in rows:
        if by == "source":
            group = row.source
        elif by == "campaign":
            group = orjson.loads(row.utm).get("utm_campaign") or "(none)"
        elif by == "form":
            group = row.form_id or "(none)"
        else:
            group = row.import_id or "(none)"
        tally = counts.setdefault(group, [0, 0, 0])
        tally[0] += 1
        tally[1] += row.stage in ("prospect", "customer")
        tally[2] += row.stage == "customer"
    spend: dict[str, float] = {}
    if by == "campaign":
        spend = dict(
            conn.execute(
                select(lead_spend.c.campaign, lead_spend.c.amount).where(
                    lead_spend.c.business_id == business_id
                )
            ).all()
        )
        if campaign_spend is not None:
            for group in counts:
                found = campaign_spend(conn, business_id=business_id, campaign=group)
                if found is not None:
                    spend[group] = found
    elif by in ("import", "source"):
        for import_id, kind, amount in conn.execute(
            select(lead_imports.c.id, lead_imports.c.kind, lead_imports.c.spend).where(
                lead_imports.c.business_id == business_id, lead_imports.c.spend.is_not(None)
            )
        ).all():
            key = import_id if by == "import" else kind
            spend[key] = spend.get(key, 0.0) + amount
    report = []
    for group, (n_leads, n_prospects, n_customers) in sorted(counts.items()):
        cost = spend.get(group)
        report.append(
            FunnelRow(
                group=group,
                leads=n_leads,
                prospects=n_prospects,
                customers=n_customers,
                lead_to_prospect=rate(n_prospects, n_leads),
                prospect_to_customer=rate(n_customers, n_prospects),
                lead_to_customer=rate(n_customers, n_leads),
                spend=cost,
                cost_per_lead=cost / n_leads if cost is not None and n_leads else None,
                cost_per_customer=cost / n_customers if cost is not None and n_customers else None,
            )
        )
    return report


# Subject rights -------------------------------------------------------------------------


def _leads_of(
    conn: Connection, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> list[Any]:
    matches = [
        column.in_(list(values))
        for column, values in ((leads.c.email, emails), (leads.c.anonymous_id, anonymous_ids))
        if values
    ]
    if not matches:
        return []
    return list(
        conn.execute(
            select(leads)
            .where(leads.c.business_id == business_id, or_(*matches))
            .order_by(leads.c.created_at, leads.c.id)
        )
    )


def _rows_of_leads(conn: Connection, table: Any, lead_ids: list[str]) -> list[dict[str, Any]]:
    if not lead_ids:
        return []
    rows = conn.execute(select(table).where(table.c.lead_id.in_(lead_ids)))
    return [dict(r._mapping) for r in rows]


def subject_history(
    conn: Connection, *, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """A person's leads with their consents (double opt-in), stage history and coupons."""
    found = _leads_of(conn, business_id, emails, anonymous_ids)
    ids = [row.id for row in found]
    return {
        "leads": [dict(row._mapping) for row in found],
        "consents": _rows_of_leads(conn, lead_consents, ids),
        "stage_changes": sorted(
            _rows_of_leads(conn, lead_stage_changes, ids), key=lambda r: r["id"]
        ),
        "coupons": _rows_of_leads(conn, coupons, ids),
    }


def subject_emails(
    conn: Connection, *, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> list[str]:
    """The addresses of a person's leads: a lead found by its anonymous id may have been
    given an address that is none of the person's identifiers."""
    return [str(row.email) for row in _leads_of(conn, business_id, emails, anonymous_ids)]


def erase_subject(
    conn: Connection, *, business_id: str, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> dict[str, int]:
    """Delete a person's leads with their consent copies and stage history; a coupon
    they were given stays used (unassigned from them) so its code is not handed out again.
    The proof of consent stays in the consent ledger, where double opt-in recorded it."""
    ids = [row.id for row in _leads_of(conn, business_id, emails, anonymous_ids)]
    if not ids:
        return {"leads": 0, "lead_consents": 0, "lead_stage_changes": 0, "coupons_unassigned": 0}
    consents = conn.execute(delete(lead_consents).where(lead_consents.c.lead_id.in_(ids)))
    stages = conn.execute(delete(lead_stage_changes).where(lead_stage_changes.c.lead_id.in_(ids)))
    unassigned = conn.execute(
        update(coupons).where(coupons.c.lead_id.in_(ids)).values(lead_id=None)
    )
    conn.execute(delete(leads).where(leads.c.id.in_(ids)))
    return {
        "leads": len(ids),
        "lead_consents": max(consents.rowcount, 0),
        "lead_stage_changes": max(stages.rowcount, 0),
        "coupons_unassigned": max(unassigned.rowcount, 0),
    }
