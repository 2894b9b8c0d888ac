"""Sending a campaign: A/B sample then the rest, checked at send time, chunk by chunk."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from accord.core.clock import utcnow
from accord.core.errors import Conflict, InvalidInput
from accord.core.ids import new_id
from accord.identity.service import normalise_email
from accord.messaging.campaigns import campaign_row, sender_footer, variants
from accord.messaging.kpis import ab_decision
from accord.messaging.lists import list_recipients
from accord.messaging.mailer import Footer, Mailer, build_message
from accord.messaging.mime import OutgoingEmail
from accord.messaging.models import email_campaigns, email_messages
from accord.messaging.ports import Recipient, Wiring
from accord.messaging.service import send_time_refusals
from accord.messaging.smtp import Outcome, send_all
from accord.messaging.templates import CompiledTemplate, listed, personalisation, recommender
from accord.profiles.service import traits_by_identifier
from accord.recommend.serving import MAX_LIMIT
from accord.store.db import Store

log = logging.getLogger(__name__)


@dataclass
class SendReport:
    campaign_id: str | None
    sent: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    status: str = ""


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


@dataclass(frozen=True)
class _Claimed:
    """A campaign taken for sending: who is left, with what, and as which phase."""

    campaign: Any
    recipients: list[Recipient]
    done: set[str]
    templates: dict[str, CompiledTemplate]
    subjects: dict[str, str | None]
    phase_two: bool
    winner: str | None
    footer: Footer


@dataclass
class _Prepared:
    messages: list[OutgoingEmail]
    ids: list[str]


def _prepare_chunk(
    store: Store,
    *,
    claimed: _Claimed,
    chunk: list[tuple[Recipient, str]],
    mailer: Mailer,
    wiring: Wiring,
    report: SendReport,
) -> _Prepared:
    """Check consent and suppression now, render what may go, and record every recipient."""
    campaign, templates, subjects = claimed.campaign, claimed.templates, claimed.subjects
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
        recommendations = recommender(conn, business_id=business_id)
        rows = []
        # The winner's rollout is in no arm of the A/B test: its mail must not weigh on
        # the test's figures (the campaign's overall KPIs still count it).
        rollout = bool(campaign.ab_test) and claimed.phase_two
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
                    context=personalisation(
                        traits, email=recipient.email, recommendations=recommendations
                    ),
                    to=recipient.email,
                    from_address=campaign.from_address,
                    mailer=mailer,
                    footer=claimed.footer,
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
                    "variant": None if rollout else variant,
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
    claimed: _Claimed,
    assignments: list[tuple[Recipient, str]],
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
            claimed=claimed,
            chunk=assignments[start : start + mailer.chunk],
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


def _claim(store: Store, *, business_id: str, campaign_id: str, wiring: Wiring) -> _Claimed:
    with store.write() as conn:
        campaign = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
        if campaign.status in ("sent",):
            raise Conflict(f"campaign {campaign_id} was already sent")
        phase_two = campaign.status == "testing"
        recipients = _recipients(conn, campaign=campaign, wiring=wiring)
        done = set(
            conn.execute(
                select(email_messages.c.email).where(email_messages.c.campaign_id == campaign_id)
            ).scalars()
        )
        templates, subjects = variants(conn, campaign)
        winner: str | None = None
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
        footer = sender_footer(conn, business_id=business_id)
    return _Claimed(campaign, recipients, done, templates, subjects, phase_two, winner, footer)


def _finish(store: Store, *, campaign_id: str, status: str, due: datetime | None) -> None:
    with store.write() as conn:
        conn.execute(
            update(email_campaigns)
            .where(email_campaigns.c.id == campaign_id)
            .values(status=status, due_at=due, sent_at=utcnow())
        )


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
    claimed = await asyncio.to_thread(
        _claim, store, business_id=business_id, campaign_id=campaign_id, wiring=wiring
    )
    campaign = claimed.campaign
    report = SendReport(campaign_id=campaign_id)
    remaining = [
        r for r in _sample_order(campaign_id, claimed.recipients) if r.email not in claimed.done
    ]
    if campaign.ab_test and not claimed.phase_two:
        ab = orjson.loads(campaign.ab_test)
        size = min(len(remaining), math.ceil(len(claimed.recipients) * ab["sample_share"]))
        sample = remaining[:size]
        assignments = [(r, "A" if i % 2 == 0 else "B") for i, r in enumerate(sample)]
        next_status, due = "testing", now + timedelta(hours=ab.get("wait_hours", 4))
    else:
        assignments = [(r, claimed.winner or "A") for r in remaining]
        next_status, due = "sent", None
    await _deliver(
        store,
        claimed=claimed,
        assignments=assignments,
        mailer=mailer,
        wiring=wiring,
        report=report,
    )
    await asyncio.to_thread(_finish, store, campaign_id=campaign_id, status=next_status, due=due)
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

    def load() -> tuple[Any, dict[str, CompiledTemplate], Footer, list[dict[str, Any]]]:
        with store.read() as conn:
            campaign = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
            templates, _subjects = variants(conn, campaign)
            # The marketer's own addresses are no profile: they get the popular products.
            popular = recommender(conn, business_id=business_id)({}, MAX_LIMIT)
            return campaign, templates, sender_footer(conn, business_id=business_id), popular

    campaign, templates, footer, popular = await asyncio.to_thread(load)
    report = SendReport(campaign_id=campaign_id, status=campaign.status)
    messages = []
    for variant in templates:
        for address in to:
            message, _links, _subject = build_message(
                message_id=new_id("msg"),
                template=templates[variant],
                context=personalisation({}, email=str(address), recommendations=listed(popular)),
                to=str(address),
                from_address=campaign.from_address,
                mailer=mailer,
                subject_prefix=f"[Test {variant}] ",
                tracking=False,
                footer=footer,
            )
            messages.append(message)
    outcomes = await send_all(messages, mailer.smtp)
    report.sent = sum(o.ok for o in outcomes)
    report.failed = len(outcomes) - report.sent
    return report


def _due(store: Store, *, now: datetime, business_id: str | None) -> list[Any]:
    with store.read() as conn:
        query = select(email_campaigns.c.business_id, email_campaigns.c.id).where(
            email_campaigns.c.status.in_(("scheduled", "testing")),
            email_campaigns.c.due_at <= now,
        )
        if business_id is not None:
            query = query.where(email_campaigns.c.business_id == business_id)
        return list(conn.execute(query.order_by(email_campaigns.c.due_at)).all())


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
    due = await asyncio.to_thread(_due, store, now=now, business_id=business_id)
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
        except InvalidInput as exc:
            # A business without a postal address: its campaign waits, the others go.
            log.warning("campaign %s not sent: %s", row.id, exc)
            continue
    return reports
