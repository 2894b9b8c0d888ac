"""Email campaigns: templates, lists, send-time checks, sending, tracking, bounces, KPIs."""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Table, and_, func, or_, select, update

from accord.audiences.service import suppression_lists
from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, InvalidLink, NotFound
from accord.core.ids import new_id
from accord.core.settings import Settings
from accord.identity.service import normalise_email
from accord.messaging.bounces import MESSAGE_ID_HEADER, DeliveryReport
from accord.messaging.mime import OutgoingEmail, build_mime
from accord.messaging.models import (
    CampaignIn,
    ListIn,
    MemberIn,
    TemplateIn,
    email_campaigns,
    email_events,
    email_list_members,
    email_lists,
    email_messages,
    email_templates,
)
from accord.messaging.ports import AudienceMembers, Recipient, RecordConsent, Wiring
from accord.messaging.smtp import Outcome, SmtpConfig, send_all
from accord.messaging.stats import AbDecision, Rate, choose_winner, rate
from accord.messaging.templates import (
    CompiledTemplate,
    RenderedEmail,
    compile_template,
    personalisation,
)
from accord.messaging.tracking import Signer, machine_reason, track_html
from accord.profiles.service import traits_by_identifier
from accord.reach import service as reach
from accord.store.db import Store

__all__ = [
    "AudienceMembers",
    "CompiledTemplate",
    "Mailer",
    "Rate",
    "Recipient",
    "RecordConsent",
    "Signer",
    "SmtpConfig",
    "Wiring",
    "compile_template",
    "rate",
]

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Mailer:
    """How this installation sends: SMTP, link signing, public address, machine rule."""

    smtp: SmtpConfig
    signer: Signer
    base_url: str
    chunk: int = 500
    min_human_delay: timedelta = timedelta(seconds=2)

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(
            # Without a configured server, campaigns go to a local MTA on port 25.
            smtp=SmtpConfig.from_settings(settings),
            signer=Signer(settings.resolved_secret_key()),
            base_url=settings.resolved_public_url(),
            chunk=settings.email_send_chunk,
            min_human_delay=timedelta(seconds=settings.email_min_human_seconds),
        )


@dataclass
class SendReport:
    campaign_id: str | None
    sent: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    status: str = ""


# Templates and lists -------------------------------------------------------------------


def create_template(conn: Connection, *, business_id: str, data: TemplateIn) -> str:
    compile_template(subject=data.subject, html=data.html, text=data.text)
    template_id = new_id("tpl")
    conn.execute(
        email_templates.insert().values(
            id=template_id, business_id=business_id, created_at=utcnow(), **data.model_dump()
        )
    )
    return template_id


def _template(conn: Connection, *, business_id: str, template_id: str) -> CompiledTemplate:
    row = conn.execute(
        select(email_templates).where(
            email_templates.c.id == template_id, email_templates.c.business_id == business_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"template {template_id}")
    return compile_template(subject=row.subject, html=row.html, text=row.text)


def create_list(conn: Connection, *, business_id: str, data: ListIn) -> str:
    list_id = new_id("lst")
    conn.execute(
        email_lists.insert().values(
            id=list_id, business_id=business_id, name=data.name, created_at=utcnow()
        )
    )
    return list_id


def _require_list(conn: Connection, *, business_id: str, list_id: str) -> None:
    found = conn.execute(
        select(email_lists.c.id).where(
            email_lists.c.id == list_id, email_lists.c.business_id == business_id
        )
    ).scalar()
    if found is None:
        raise NotFound(f"list {list_id}")


def add_member(conn: Connection, *, business_id: str, list_id: str, member: MemberIn) -> None:
    """Add (or refresh) a list member. Being on a list is not consent: sends check it."""
    _require_list(conn, business_id=business_id, list_id=list_id)
    email = normalise_email(str(member.email))
    key = and_(email_list_members.c.list_id == list_id, email_list_members.c.email == email)
    values = {
        "anonymous_id": member.anonymous_id,
        "user_id": member.user_id,
        "traits": orjson.dumps(member.traits).decode(),
    }
    if conn.execute(select(email_list_members.c.email).where(key)).first() is None:
        conn.execute(
            email_list_members.insert().values(
                list_id=list_id, email=email, business_id=business_id, added_at=utcnow(), **values
            )
        )
    else:
        conn.execute(update(email_list_members).where(key).values(**values))


def list_recipients(conn: Connection, *, business_id: str, list_id: str) -> list[Recipient]:
    _require_list(conn, business_id=business_id, list_id=list_id)
    rows = conn.execute(
        select(email_list_members)
        .where(email_list_members.c.list_id == list_id)
        .order_by(email_list_members.c.email)
    ).all()
    return [
        Recipient(
            email=row.email,
            anonymous_ids=(row.anonymous_id,) if row.anonymous_id else (),
            user_ids=(row.user_id,) if row.user_id else (),
            traits=orjson.loads(row.traits),
        )
        for row in rows
    ]


# Suppression and send-time checks ------------------------------------------------------


def suppress_email(conn: Connection, *, business_id: str, email: str, reason: str) -> None:
    """Put an address on the business's suppression list (unsubscribes, bounces, complaints)."""
    reach.suppress(
        conn,
        business_id=business_id,
        kind="email",
        value=email,
        reason=reason,
        source="email",
        channel="email",
    )


def is_unsubscribed(conn: Connection, *, business_id: str, email: str) -> bool:
    found = reach.suppressed(
        conn, business_id=business_id, kind="email", values=[email], channel="email"
    )
    return bool(found)


# Subject rights -------------------------------------------------------------------------


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _of_person(
    table: Table,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str],
    user_ids: Sequence[str],
) -> ColumnElement[bool] | None:
    """The business's rows of `table` naming the person by any identifier; None: no identifier."""
    matches = [
        table.c[name].in_(values)
        for name, values in (
            ("email", emails),
            ("anonymous_id", anonymous_ids),
            ("user_id", user_ids),
        )
        if values
    ]
    return and_(table.c.business_id == business_id, or_(*matches)) if matches else None


def _messages_of(
    conn: Connection,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str],
    user_ids: Sequence[str],
) -> list[Any]:
    where = _of_person(email_messages, business_id, emails, anonymous_ids, user_ids)
    if where is None:
        return []
    return list(
        conn.execute(
            select(email_messages)
            .where(where)
            .order_by(email_messages.c.created_at, email_messages.c.id)
        )
    )


def _members_of(
    conn: Connection,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str],
    user_ids: Sequence[str],
) -> list[Any]:
    where = _of_person(email_list_members, business_id, emails, anonymous_ids, user_ids)
    if where is None:
        return []
    return list(
        conn.execute(
            select(email_list_members, email_lists.c.name.label("list_name"))
            .join(email_lists, email_lists.c.id == email_list_members.c.list_id)
            .where(where)
            .order_by(email_list_members.c.added_at)
        )
    )


def subject_history(
    conn: Connection,
    *,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str] = (),
    user_ids: Sequence[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """A person's email history: messages, their events, suppressions and list memberships."""
    messages = _messages_of(conn, business_id, emails, anonymous_ids, user_ids)
    ids = [m.id for m in messages]
    events = []
    for start in range(0, len(ids), 500):
        events += list(
            conn.execute(
                select(email_events)
                .where(email_events.c.message_id.in_(ids[start : start + 500]))
                .order_by(email_events.c.occurred_at, email_events.c.id)
            )
        )
    suppressions = reach.entries(
        conn, business_id=business_id, identifiers=[("email", e) for e in emails]
    )
    return {
        "messages": [_plain(m) for m in messages],
        "events": [_plain(e) for e in events],
        "suppressions": suppressions,
        "list_memberships": [
            _plain(r) for r in _members_of(conn, business_id, emails, anonymous_ids, user_ids)
        ],
    }


def erase_subject(
    conn: Connection,
    *,
    business_id: str,
    emails: Sequence[str],
    anonymous_ids: Sequence[str] = (),
    user_ids: Sequence[str] = (),
) -> dict[str, int]:
    """Erase a person from email: list memberships deleted; messages and their events
    anonymised (campaign statistics keep their counts, nothing names the person). Their
    suppressions are reach's to keep as hashes."""
    messages = _messages_of(conn, business_id, emails, anonymous_ids, user_ids)
    ids = [m.id for m in messages]
    events = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(
            update(email_messages)
            .where(email_messages.c.id.in_(chunk))
            # A placeholder unique per message keeps (campaign, email) unique.
            .values(
                email="erased:" + email_messages.c.id,
                anonymous_id=None,
                user_id=None,
                subject="(erased)",
                links="[]",
            )
        )
        events += conn.execute(
            update(email_events)
            .where(email_events.c.message_id.in_(chunk))
            .values(detail=None, user_agent=None, ip=None)
        ).rowcount
    members = _members_of(conn, business_id, emails, anonymous_ids, user_ids)
    for row in members:
        conn.execute(
            email_list_members.delete().where(
                email_list_members.c.list_id == row.list_id,
                email_list_members.c.email == row.email,
            )
        )
    return {
        "email_messages_anonymised": len(ids),
        "email_events_anonymised": max(events, 0),
        "email_list_members": len(members),
    }


def send_time_refusals(
    conn: Connection, *, business_id: str, recipients: Sequence[Recipient], purpose: str
) -> dict[str, str]:
    """Email → why reach refuses it now (unsubscribed, bounced, no_consent...)."""
    decided = reach.decisions(
        conn,
        business_id=business_id,
        people=[
            reach.Addressee(
                key=r.email,
                anonymous_ids=r.anonymous_ids,
                user_ids=r.user_ids,
                emails=(r.email,),
            )
            for r in recipients
        ],
        channel="email",
        purpose=purpose,
        lists=suppression_lists,
    )
    return {email: d.reason for email, d in decided.items() if d.reason is not None}


# Building messages ---------------------------------------------------------------------


def build_message(
    *,
    message_id: str,
    template: CompiledTemplate | RenderedEmail,
    context: dict[str, Any],
    to: str,
    from_address: str,
    mailer: Mailer,
    subject_override: str | None = None,
    subject_prefix: str = "",
    tracking: bool = True,
    unsubscribe: bool = True,
) -> tuple[OutgoingEmail, list[str], str]:
    """The raw message, the links it holds and its subject; `context` is what the
    template sees (`personalisation(...)` for marketing email)."""
    # A message another context already rendered (a journey's) is taken as it is.
    rendered = template if isinstance(template, RenderedEmail) else template.render(context)
    subject = subject_prefix + (subject_override or rendered.subject)
    html, links = rendered.html, []
    if tracking:
        tracked = track_html(
            html, message_id=message_id, base_url=mailer.base_url, signer=mailer.signer
        )
        html, links = tracked.html, tracked.links
    domain = from_address.rsplit("@", 1)[-1]
    headers = [
        ("Subject", subject),
        ("Message-ID", f"<{message_id}.{uuid.uuid4().hex[:12]}@{domain}>"),
        (MESSAGE_ID_HEADER, message_id),
    ]
    if unsubscribe:
        token = mailer.signer.dumps("unsubscribe", message_id)
        headers.append(("List-Unsubscribe", f"<{mailer.base_url}/e/u/{token}>"))
        headers.append(("List-Unsubscribe-Post", ONE_CLICK))
    message = build_mime(
        sender=from_address,
        recipient=to,
        headers=headers,
        text=rendered.text or subject,
        html=html,
    )
    return message, links, subject


async def send_transactional(
    store: Store,
    *,
    business_id: str,
    kind: str,
    to: str,
    from_address: str,
    template: CompiledTemplate,
    context: dict[str, Any],
    mailer: Mailer,
) -> tuple[str, Outcome]:
    """One message that is not marketing (a double opt-in confirmation): no consent check,
    no tracking, no unsubscribe header; kept in `email_messages` as proof it was sent."""
    message_id = new_id("msg")
    outcome = await _send_one(
        store,
        business_id=business_id,
        kind=kind,
        message_id=message_id,
        to=to,
        built=build_message(
            message_id=message_id,
            template=template,
            context=context,
            to=to,
            from_address=from_address,
            mailer=mailer,
            tracking=False,
            unsubscribe=False,
        ),
        mailer=mailer,
    )
    return message_id, outcome


async def send_rendered(
    store: Store,
    *,
    business_id: str,
    kind: str,
    message_id: str,
    to: str,
    rendered: RenderedEmail,
    from_address: str,
    mailer: Mailer,
) -> Outcome:
    """One marketing message rendered elsewhere (a journey step): tracked, with one-click
    unsubscribe, kept in `email_messages` under the caller's id so opens, clicks and
    unsubscribes count. The caller has checked consent and suppression."""
    return await _send_one(
        store,
        business_id=business_id,
        kind=kind,
        message_id=message_id,
        to=to,
        built=build_message(
            message_id=message_id,
            template=rendered,
            context={},
            to=to,
            from_address=from_address,
            mailer=mailer,
        ),
        mailer=mailer,
    )


async def _send_one(
    store: Store,
    *,
    business_id: str,
    kind: str,
    message_id: str,
    to: str,
    built: tuple[OutgoingEmail, list[str], str],
    mailer: Mailer,
) -> Outcome:
    """Keep one message in `email_messages`, send it, and record how it went."""
    message, links, subject = built
    with store.write() as conn:
        conn.execute(
            email_messages.insert().values(
                id=message_id,
                business_id=business_id,
                kind=kind,
                email=to,
                subject=subject,
                links=orjson.dumps(links).decode(),
                status="queued",
                created_at=utcnow(),
            )
        )
    [outcome] = await send_all([message], mailer.smtp)
    with store.write() as conn:
        conn.execute(
            update(email_messages)
            .where(email_messages.c.id == message_id)
            .values(
                status="sent" if outcome.ok else "failed",
                reason=outcome.error,
                sent_at=utcnow() if outcome.ok else None,
            )
        )
    return outcome


# Campaigns -----------------------------------------------------------------------------


def create_campaign(conn: Connection, *, business_id: str, data: CampaignIn) -> str:
    if (data.list_id is None) == (data.audience_id is None):
        raise InvalidInput([FieldProblem("list_id", "give exactly one of list_id, audience_id")])
    _template(conn, business_id=business_id, template_id=data.template_id)
    if data.list_id is not None:
        _require_list(conn, business_id=business_id, list_id=data.list_id)
    if data.ab_test is not None:
        if data.ab_test.template_id is None and data.ab_test.subject is None:
            raise InvalidInput(
                [FieldProblem("ab_test", "variant B needs a subject or a template_id")]
            )
        if data.ab_test.template_id is not None:
            _template(conn, business_id=business_id, template_id=data.ab_test.template_id)
    campaign_id = new_id("cmp")
    conn.execute(
        email_campaigns.insert().values(
            id=campaign_id,
            business_id=business_id,
            name=data.name,
            template_id=data.template_id,
            list_id=data.list_id,
            audience_id=data.audience_id,
            from_address=str(data.from_address),
            status="scheduled" if data.due_at else "draft",
            due_at=data.due_at,
            ab_test=data.ab_test.model_dump_json() if data.ab_test else None,
            spend=data.spend,
            created_at=utcnow(),
        )
    )
    return campaign_id


def schedule_campaign(
    conn: Connection, *, business_id: str, campaign_id: str, due_at: datetime
) -> None:
    row = _campaign(conn, business_id=business_id, campaign_id=campaign_id)
    if row.status not in ("draft", "scheduled"):
        raise Conflict(f"campaign {campaign_id} is {row.status}; only drafts can be scheduled")
    conn.execute(
        update(email_campaigns)
        .where(email_campaigns.c.id == campaign_id)
        .values(status="scheduled", due_at=due_at)
    )


def _campaign(conn: Connection, *, business_id: str, campaign_id: str) -> Any:
    row = conn.execute(
        select(email_campaigns).where(
            email_campaigns.c.id == campaign_id, email_campaigns.c.business_id == business_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"campaign {campaign_id}")
    return row


def _recipients(conn: Connection, *, campaign: Any, wiring: Wiring) -> list[Recipient]:
    if campaign.list_id is not None:
        found = list_recipients(conn, business_id=campaign.business_id, list_id=campaign.list_id)
    else:
        if wiring.audience_members is None:
            raise Conflict("audiences are not available in this installation")
        found = wiring.audience_members(
            conn, business_id=campaign.business_id, audience_id=campaign.audience_id
        )
    unique: dict[str, Recipient] = {}
    for recipient in found:
        email = normalise_email(recipient.email)
        unique.setdefault(
            email,
            Recipient(email, recipient.anonymous_ids, recipient.user_ids, recipient.traits),
        )
    return list(unique.values())


def _sample_order(campaign_id: str, recipients: Iterable[Recipient]) -> list[Recipient]:
    # A fixed pseudo-random order, so a resumed send picks the same sample.
    return sorted(
        recipients, key=lambda r: hashlib.sha256(f"{campaign_id}:{r.email}".encode()).digest()
    )


@dataclass
class _Prepared:
    messages: list[OutgoingEmail]
    ids: list[str]


def _prepare_chunk(
    store: Store,
    *,
    campaign: Any,
    chunk: list[tuple[Recipient, str]],
    templates: dict[str, CompiledTemplate],
    subjects: dict[str, str | None],
    mailer: Mailer,
    wiring: Wiring,
    report: SendReport,
) -> _Prepared:
    """Check consent and suppression now, render what may go, and record every recipient."""
    business_id = campaign.business_id
    prepared = _Prepared(messages=[], ids=[])
    now = utcnow()
    with store.write() as conn:
        refused = send_time_refusals(
            conn,
            business_id=business_id,
            recipients=[r for r, _ in chunk],
            purpose=wiring.consent_purpose,
        )
        profile_traits = traits_by_identifier(
            conn,
            business_id=business_id,
            kind="email",
            values=[r.email for r, _ in chunk if r.email not in refused],
        )
        rows = []
        for recipient, variant in chunk:
            message_id = new_id("msg")
            reason = refused.get(recipient.email)
            links: list[str] = []
            subject = subjects[variant] or ""
            if reason is None:
                traits = {**profile_traits.get(recipient.email, {}), **recipient.traits}
                message, links, subject = build_message(
                    message_id=message_id,
                    template=templates[variant],
                    context=personalisation(traits, email=recipient.email),
                    to=recipient.email,
                    from_address=campaign.from_address,
                    mailer=mailer,
                    subject_override=subjects[variant],
                )
                prepared.messages.append(message)
                prepared.ids.append(message_id)
            else:
                report.skipped[reason] = report.skipped.get(reason, 0) + 1
            rows.append(
                {
                    "id": message_id,
                    "business_id": business_id,
                    "campaign_id": campaign.id,
                    "variant": variant,
                    "kind": "campaign",
                    "email": recipient.email,
                    "anonymous_id": recipient.anonymous_ids[0] if recipient.anonymous_ids else None,
                    "user_id": recipient.user_ids[0] if recipient.user_ids else None,
                    "subject": subject[:500],
                    "links": orjson.dumps(links).decode(),
                    "status": "queued" if reason is None else "skipped",
                    "reason": reason,
                    "created_at": now,
                    "sent_at": None,
                }
            )
        if rows:
            conn.execute(email_messages.insert(), rows)
    return prepared


def _record_outcomes(
    store: Store, *, prepared: _Prepared, outcomes: list[Outcome], report: SendReport
) -> None:
    sent_at = utcnow()
    ok = [prepared.ids[o.index] for o in outcomes if o.ok]
    with store.write() as conn:
        for begin in range(0, len(ok), 500):
            conn.execute(
                update(email_messages)
                .where(email_messages.c.id.in_(ok[begin : begin + 500]))
                .values(status="sent", sent_at=sent_at)
            )
        for outcome in outcomes:
            if not outcome.ok:
                conn.execute(
                    update(email_messages)
                    .where(email_messages.c.id == prepared.ids[outcome.index])
                    .values(status="failed", reason=outcome.error)
                )
    report.sent += len(ok)
    report.failed += len(outcomes) - len(ok)


async def _deliver(
    store: Store,
    *,
    campaign: Any,
    assignments: list[tuple[Recipient, str]],
    templates: dict[str, CompiledTemplate],
    subjects: dict[str, str | None],
    mailer: Mailer,
    wiring: Wiring,
    report: SendReport,
) -> None:
    """Chunk by chunk; the next chunk is checked and rendered (in a thread) while the
    previous one is on the wire, so the SMTP connections are rarely idle."""
    sending: tuple[_Prepared, asyncio.Task[list[Outcome]]] | None = None
    for start in range(0, len(assignments), mailer.chunk):
        prepared = await asyncio.to_thread(
            _prepare_chunk,
            store,
            campaign=campaign,
            chunk=assignments[start : start + mailer.chunk],
            templates=templates,
            subjects=subjects,
            mailer=mailer,
            wiring=wiring,
            report=report,
        )
        if sending is not None:
            done, task = sending
            await asyncio.to_thread(
                _record_outcomes, store, prepared=done, outcomes=await task, report=report
            )
        sending = (prepared, asyncio.create_task(send_all(prepared.messages, mailer.smtp)))
    if sending is not None:
        done, task = sending
        await asyncio.to_thread(
            _record_outcomes, store, prepared=done, outcomes=await task, report=report
        )


def _variants(
    conn: Connection, campaign: Any
) -> tuple[dict[str, CompiledTemplate], dict[str, str | None]]:
    business_id = campaign.business_id
    templates = {"A": _template(conn, business_id=business_id, template_id=campaign.template_id)}
    subjects: dict[str, str | None] = {"A": None}
    if campaign.ab_test:
        ab = orjson.loads(campaign.ab_test)
        templates["B"] = (
            _template(conn, business_id=business_id, template_id=ab["template_id"])
            if ab.get("template_id")
            else templates["A"]
        )
        subjects["B"] = ab.get("subject")
    return templates, subjects


async def send_campaign(
    store: Store,
    *,
    business_id: str,
    campaign_id: str,
    mailer: Mailer,
    wiring: Wiring,
    now: datetime | None = None,
) -> SendReport:
    """Send a campaign now (or its next phase): A/B sample first, then the rest.

    Recipients already holding a message of this campaign are not sent again, so a
    send cut short by a crash is resumed by sending again.
    """
    now = now or utcnow()
    with store.write() as conn:
        campaign = _campaign(conn, business_id=business_id, campaign_id=campaign_id)
        if campaign.status in ("sent",):
            raise Conflict(f"campaign {campaign_id} was already sent")
        phase_two = campaign.status == "testing"
        recipients = _recipients(conn, campaign=campaign, wiring=wiring)
        done = set(
            conn.execute(
                select(email_messages.c.email).where(email_messages.c.campaign_id == campaign_id)
            ).scalars()
        )
        templates, subjects = _variants(conn, campaign)
        winner: str | None = None
        decision: AbDecision | None = None
        if phase_two:
            decision = ab_decision(conn, business_id=business_id, campaign_id=campaign_id)
            # Without a significant difference the control (A) is kept.
            winner = decision.winner or "A"
        # Conditional on the status read above: of two workers sending the same due
        # campaign, the second finds it already taken (PostgreSQL re-reads the row).
        taken = conn.execute(
            update(email_campaigns)
            .where(
                email_campaigns.c.id == campaign_id,
                email_campaigns.c.status == campaign.status,
            )
            .values(status="sending", winner=winner)
        ).rowcount
        if not taken:
            raise Conflict(f"campaign {campaign_id} is being sent by another worker")
    report = SendReport(campaign_id=campaign_id)
    remaining = [r for r in _sample_order(campaign_id, recipients) if r.email not in done]
    if campaign.ab_test and not phase_two:
        ab = orjson.loads(campaign.ab_test)
        size = min(len(remaining), math.ceil(len(recipients) * ab["sample_share"]))
        sample = remaining[:size]
        assignments = [(r, "A" if i % 2 == 0 else "B") for i, r in enumerate(sample)]
        next_status, due = "testing", now + timedelta(hours=ab.get("wait_hours", 4))
    else:
        assignments = [(r, winner or "A") for r in remaining]
        next_status, due = "sent", None
    await _deliver(
        store,
        campaign=campaign,
        assignments=assignments,
        templates=templates,
        subjects=subjects,
        mailer=mailer,
        wiring=wiring,
        report=report,
    )
    with store.write() as conn:
        conn.execute(
            update(email_campaigns)
            .where(email_campaigns.c.id == campaign_id)
            .values(status=next_status, due_at=due, sent_at=utcnow())
        )
    report.status = next_status
    return report


async def send_test(
    store: Store,
    *,
    business_id: str,
    campaign_id: str,
    to: Sequence[str],
    mailer: Mailer,
) -> SendReport:
    """Send the campaign's message(s) to the marketer's own addresses; not in the KPIs."""
    with store.read() as conn:
        campaign = _campaign(conn, business_id=business_id, campaign_id=campaign_id)
        templates, subjects = _variants(conn, campaign)
    report = SendReport(campaign_id=campaign_id, status=campaign.status)
    messages = []
    for variant in templates:
        for address in to:
            message, _links, _subject = build_message(
                message_id=new_id("msg"),
                template=templates[variant],
                context=personalisation({}, email=str(address)),
                to=str(address),
                from_address=campaign.from_address,
                mailer=mailer,
                subject_override=subjects[variant],
                subject_prefix=f"[Test {variant}] ",
                tracking=False,
            )
            messages.append(message)
    outcomes = await send_all(messages, mailer.smtp)
    report.sent = sum(o.ok for o in outcomes)
    report.failed = len(outcomes) - report.sent
    return report


async def run_due(
    store: Store,
    *,
    mailer: Mailer,
    wiring: Wiring,
    now: datetime | None = None,
    business_id: str | None = None,
) -> list[SendReport]:
    """Send every campaign whose due time has come (scheduled ones, and A/B tests whose
    waiting time is over), of one business or of all. The `email.send_due` job and
    `accord email send-due` call this; a campaign another worker took is left to it."""
    now = now or utcnow()
    with store.read() as conn:
        query = select(email_campaigns.c.business_id, email_campaigns.c.id).where(
            email_campaigns.c.status.in_(("scheduled", "testing")),
            email_campaigns.c.due_at <= now,
        )
        if business_id is not None:
            query = query.where(email_campaigns.c.business_id == business_id)
        due = conn.execute(query.order_by(email_campaigns.c.due_at)).all()
    reports = []
    for row in due:
        try:
            reports.append(
                await send_campaign(
                    store,
                    business_id=row.business_id,
                    campaign_id=row.id,
                    mailer=mailer,
                    wiring=wiring,
                    now=now,
                )
            )
        except Conflict:
            continue
    return reports


# Tracking ------------------------------------------------------------------------------


def _message(conn: Connection, message_id: str) -> Any:
    row = conn.execute(select(email_messages).where(email_messages.c.id == message_id)).first()
    if row is None:
        raise InvalidLink("the link points to no message")
    return row


def _track(
    conn: Connection,
    *,
    wiring: Wiring | None,
    message: Any,
    kind: str,
    detail: str | None,
    user_agent: str | None,
    ip: str | None,
    now: datetime,
    min_human_delay: timedelta,
) -> bool:
    reason = machine_reason(
        user_agent=user_agent,
        ip=ip,
        sent_at=message.sent_at,
        occurred_at=now,
        min_human_delay=min_human_delay,
    )
    conn.execute(
        email_events.insert().values(
            business_id=message.business_id,
            message_id=message.id,
            campaign_id=message.campaign_id,
            kind=kind,
            machine=reason is not None,
            detail=" ".join(p for p in (detail, reason) if p)[:500] or None,
            user_agent=(user_agent or "")[:500] or None,
            ip=ip,
            occurred_at=now,
        )
    )
    if reason is None and wiring is not None and wiring.on_engagement is not None:
        wiring.on_engagement(conn, business_id=message.business_id, email=message.email, kind=kind)
    return reason is None


def record_open(
    store: Store,
    *,
    mailer: Mailer,
    token: str,
    user_agent: str | None,
    ip: str | None,
    now: datetime | None = None,
    wiring: Wiring | None = None,
) -> bool:
    """Record a pixel hit; True when a person (not a machine) opened the message."""
    message_id = mailer.signer.loads("open", token)
    if not isinstance(message_id, str):
        raise InvalidLink("the link is not valid")
    with store.write() as conn:
        return _track(
            conn,
            wiring=wiring,
            message=_message(conn, message_id),
            kind="open",
            detail=None,
            user_agent=user_agent,
            ip=ip,
            now=now or utcnow(),
            min_human_delay=mailer.min_human_delay,
        )


def record_click(
    store: Store,
    *,
    mailer: Mailer,
    token: str,
    user_agent: str | None,
    ip: str | None,
    now: datetime | None = None,
    wiring: Wiring | None = None,
) -> str:
    """Record a click and return where it goes: only ever one of the message's links."""
    payload = mailer.signer.loads("click", token)
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], str)
        or not isinstance(payload[1], int)
    ):
        raise InvalidLink("the link is not valid")
    with store.write() as conn:
        message = _message(conn, payload[0])
        links = orjson.loads(message.links)
        if not 0 <= payload[1] < len(links):
            raise InvalidLink("the link points to nothing in its message")
        target = str(links[payload[1]])
        _track(
            conn,
            wiring=wiring,
            message=message,
            kind="click",
            detail=target,
            user_agent=user_agent,
            ip=ip,
            now=now or utcnow(),
            min_human_delay=mailer.min_human_delay,
        )
    return target


@dataclass(frozen=True)
class Subscription:
    email: str
    unsubscribed: bool


def subscription(store: Store, *, mailer: Mailer, token: str) -> Subscription:
    message_id = mailer.signer.loads("unsubscribe", token)
    with store.read() as conn:
        message = _message(conn, str(message_id))
        found = is_unsubscribed(conn, business_id=message.business_id, email=message.email)
    return Subscription(email=message.email, unsubscribed=found)


def unsubscribe(
    store: Store,
    *,
    mailer: Mailer,
    token: str,
    wiring: Wiring,
    via: str,
    ip: str | None,
    now: datetime | None = None,
) -> Subscription:
    """Stop marketing email to the message's recipient (one-click or preference page)."""
    message_id = mailer.signer.loads("unsubscribe", token)
    now = now or utcnow()
    with store.write() as conn:
        message = _message(conn, str(message_id))
        if not is_unsubscribed(conn, business_id=message.business_id, email=message.email):
            suppress_email(
                conn, business_id=message.business_id, email=message.email, reason="unsubscribed"
            )
            conn.execute(
                email_events.insert().values(
                    business_id=message.business_id,
                    message_id=message.id,
                    campaign_id=message.campaign_id,
                    kind="unsubscribe",
                    machine=False,
                    detail=via,
                    ip=ip,
                    occurred_at=now,
                )
            )
            if wiring.record_consent is not None:
                wiring.record_consent(
                    conn,
                    business_id=message.business_id,
                    anonymous_id=message.anonymous_id,
                    user_id=message.user_id,
                    purposes={wiring.consent_purpose: False},
                    source=f"email_unsubscribe:{via}",
                    evidence={"message_id": message.id, "ip": ip, "at": now.isoformat()},
                )
    return Subscription(email=message.email, unsubscribed=True)


# Bounces and complaints ----------------------------------------------------------------


def apply_delivery_reports(
    conn: Connection,
    *,
    business_id: str,
    reports: Sequence[DeliveryReport],
    now: datetime | None = None,
) -> int:
    """Record bounces and complaints; hard bounces and complaints suppress the address.

    Returns how many reports matched a message this business sent.
    """
    now = now or utcnow()
    matched = 0
    for report in reports:
        query = select(email_messages).where(
            email_messages.c.business_id == business_id,
            email_messages.c.email == normalise_email(report.email),
        )
        if report.message_id:
            query = query.where(email_messages.c.id == report.message_id)
        message = conn.execute(query.order_by(email_messages.c.created_at.desc())).first()
        if message is None:
            continue
        matched += 1
        conn.execute(
            email_events.insert().values(
                business_id=business_id,
                message_id=message.id,
                campaign_id=message.campaign_id,
                kind=report.kind,
                machine=False,
                detail=" ".join(
                    p
                    for p in ("hard" if report.hard else "soft", report.status, report.diagnostic)
                    if p
                )[:500],
                occurred_at=now,
            )
        )
        if report.kind == "bounce" and report.hard:
            conn.execute(
                update(email_messages)
                .where(email_messages.c.id == message.id)
                .values(status="bounced", reason=(report.status or "hard bounce")[:200])
            )
        if report.hard:
            suppress_email(
                conn,
                business_id=business_id,
                email=message.email,
                reason="hard_bounce" if report.kind == "bounce" else "complaint",
            )
    return matched


# KPIs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    sent: int
    delivered: int
    human_openers: int
    machine_opens: int
    clickers: int
    unsubscribes: int
    complaints: int
    bounces: int
    rates: dict[str, Rate]


def _kpis(conn: Connection, where: Any) -> Kpis:
    counts: dict[str, int] = dict(
        conn.execute(
            select(email_messages.c.status, func.count())
            .where(where, email_messages.c.kind == "campaign")
            .group_by(email_messages.c.status)
        ).all()
    )
    bounced = counts.get("bounced", 0)
    sent = counts.get("sent", 0) + bounced
    delivered = sent - bounced
    joined = email_events.join(email_messages, email_events.c.message_id == email_messages.c.id)

    def distinct(*conditions: Any) -> int:
        return int(
            conn.execute(
                select(func.count(func.distinct(email_events.c.message_id)))
                .select_from(joined)
                .where(where, email_messages.c.kind == "campaign", *conditions)
            ).scalar()
            or 0
        )

    human = email_events.c.machine.is_(False)
    # A person who clicked has opened, even when images were blocked.
    openers = distinct(email_events.c.kind.in_(("open", "click")), human)
    clickers = distinct(email_events.c.kind == "click", human)
    machine_opens = distinct(email_events.c.kind == "open", email_events.c.machine.is_(True))
    unsubscribes = distinct(email_events.c.kind == "unsubscribe")
    complaints = distinct(email_events.c.kind == "complaint")
    return Kpis(
        sent=sent,
        delivered=delivered,
        human_openers=openers,
        machine_opens=machine_opens,
        clickers=clickers,
        unsubscribes=unsubscribes,
        complaints=complaints,
        bounces=bounced,
        rates={
            "delivery_rate": rate(delivered, sent, name="delivery_rate"),
            "open_rate": rate(openers, delivered, name="open_rate"),
            "click_through_rate": rate(clickers, delivered, name="click_through_rate"),
            "click_to_open_rate": rate(clickers, openers),
            "unsubscribe_rate": rate(unsubscribes, delivered),
            "bounce_rate": rate(bounced, sent),
            "complaint_rate": rate(complaints, delivered),
        },
    )


def campaign_kpis(
    conn: Connection, *, business_id: str, campaign_id: str, variant: str | None = None
) -> Kpis:
    _campaign(conn, business_id=business_id, campaign_id=campaign_id)
    where = and_(
        email_messages.c.business_id == business_id, email_messages.c.campaign_id == campaign_id
    )
    if variant is not None:
        where = and_(where, email_messages.c.variant == variant)
    return _kpis(conn, where)


def kpis_by_day(
    conn: Connection, *, business_id: str, since: datetime, until: datetime
) -> list[tuple[str, Kpis]]:
    """KPIs of the campaign messages sent each day (UTC) in [since, until)."""
    days: list[tuple[str, Kpis]] = []
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < until:
        end = day + timedelta(days=1)
        where = and_(
            email_messages.c.business_id == business_id,
            email_messages.c.sent_at >= day,
            email_messages.c.sent_at < end,
        )
        kpis = _kpis(conn, where)
        if kpis.sent:
            days.append((day.date().isoformat(), kpis))
        day = end
    return days


def ab_decision(conn: Connection, *, business_id: str, campaign_id: str) -> AbDecision:
    campaign = _campaign(conn, business_id=business_id, campaign_id=campaign_id)
    if not campaign.ab_test:
        raise Conflict(f"campaign {campaign_id} has no A/B test")
    ab = orjson.loads(campaign.ab_test)
    a = campaign_kpis(conn, business_id=business_id, campaign_id=campaign_id, variant="A")
    b = campaign_kpis(conn, business_id=business_id, campaign_id=campaign_id, variant="B")
    metric = "clickers" if ab["metric"] == "clicks" else "human_openers"
    return choose_winner(
        successes_a=getattr(a, metric),
        trials_a=a.delivered,
        successes_b=getattr(b, metric),
        trials_b=b.delivered,
        min_sample=ab["min_sample"],
        alpha=ab["alpha"],
    )


def campaign_row(conn: Connection, *, business_id: str, campaign_id: str) -> Any:
    return _campaign(conn, business_id=business_id, campaign_id=campaign_id)
