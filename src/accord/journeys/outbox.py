"""Delivers what journey steps queued: render, re-check reachability, send, record.

A batch is claimed first (`claimed`, with a lease). Each message is then marked
`sending` in its own commit just before it leaves and `sent` or `failed` after, so a
crash leaves at most the one message in flight in doubt. Claimed messages whose lease
ran out go back to the queue (they never left); a `sending` one is never sent again
automatically (the provider may have it already) and becomes `unknown`, visible in
the person's path. Delivery is at most once; the step that queued it ran exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson
from jinja2 import TemplateError
from sqlalchemy import Connection, insert, select, update

from accord.core.clock import utcnow
from accord.journeys.graph import Message
from accord.journeys.models import journey_outbox, journey_runs, journey_steps
from accord.journeys.runner import Runner
from accord.messaging.channels import Channel, Delivery, Outgoing
from accord.messaging.templates import listed, render_text
from accord.recommend.serving import MAX_LIMIT, for_contact
from accord.store.db import Store

LEASE = timedelta(minutes=5)

# Where a channel finds the person's address among their traits.
ADDRESS_TRAITS = {
    "email": ("email",),
    "sms": ("phone", "mobile"),
    "whatsapp": ("whatsapp", "phone", "mobile"),
    "push": ("push_subscription",),
}


def render(text: str, traits: Mapping[str, Any], *, html: bool = False) -> str:
    """Render a message template over a person's traits in the bounded sandbox of
    email templates (messaging.templates).

    A missing trait is an error unless the template gives a fallback with
    `| default(...)`: a message never goes out with a blank where a name should be.
    """
    return render_text(text, dict(traits), html=html)


def _names(
    conn: Connection, row: Any, message: Message | None, traits: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The person's traits, plus `contact` (the same traits) and `recommendations(contact,
    n)` when the message uses them, read now like the traits (the person's consent to
    personalisation decides between their own products and the popular ones)."""
    texts = (message.body, message.subject or "", message.title or "") if message else ()
    if not any("recommendations" in text for text in texts):
        return traits
    items = for_contact(
        conn, business_id=row.business_id, contact={"profile_id": row.profile_id}, limit=MAX_LIMIT
    )
    return {**traits, "contact": dict(traits), "recommendations": listed(items)}


def address(channel: str, traits: Mapping[str, Any]) -> Any:
    for trait in ADDRESS_TRAITS.get(channel, ()):
        value = traits.get(trait)
        if value:
            return value
    return None


def _build(
    row: Any, message: Message | None, destination: str | None, traits: Mapping[str, Any]
) -> Outgoing | str:
    """The rendered message, or why it cannot be built."""
    if row.channel == "webhook":
        if destination is None:
            # Only a webhook node names a destination; older versions could also send one.
            return f"no webhook destination {row.message!r}"
        return Outgoing(
            id=row.id,
            business_id=row.business_id,
            profile_id=row.profile_id,
            channel="webhook",
            to=destination,
            body=row.message,
            # Only references: the destination looks the person up if it may.
            data={"run_id": row.run_id, "node": row.node},
        )
    assert message is not None
    to = address(row.channel, traits)
    if to is None:
        return f"no {row.channel} address"
    try:
        return Outgoing(
            id=row.id,
            business_id=row.business_id,
            profile_id=row.profile_id,
            channel=row.channel,
            to=to,
            body=render(message.body, traits, html=row.channel == "email"),
            title=render(message.subject or message.title, traits),
            url=message.url,
        )
    except TemplateError as exc:
        return f"template error: {exc}"


def dispatch(
    store: Store,
    runner: Runner,
    channels: Mapping[str, Channel],
    *,
    limit: int = 100,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> int:
    """Send up to `limit` queued messages; the number handled."""
    now = now or utcnow()
    out = journey_outbox.c
    with store.write() as conn:
        stale = out.claimed_at < now - lease
        conn.execute(
            update(journey_outbox)
            .where(out.status == "claimed", stale)
            .values(status="queued", claimed_at=None)
        )
        conn.execute(
            update(journey_outbox)
            .where(out.status == "sending", stale)
            .values(status="unknown", detail='{"reason": "outcome unknown after a stop"}')
        )
        query = (
            select(journey_outbox)
            .where(out.status == "queued", out.channel.in_(list(channels)))
            .order_by(out.created_at)
            .limit(limit)
        )
        if store.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return 0
        conn.execute(
            update(journey_outbox)
            .where(out.id.in_([r.id for r in rows]))
            .values(status="claimed", claimed_at=now)
        )
    for row in rows:
        with store.write() as conn:
            conn.execute(
                update(journey_outbox)
                .where(out.id == row.id)
                .values(status="sending", attempts=out.attempts + 1, claimed_at=utcnow())
            )
        delivery = _deliver(store, runner, channels[row.channel], row)
        with store.write() as conn:
            conn.execute(
                update(journey_outbox)
                .where(out.id == row.id)
                .values(
                    status=delivery.status,
                    sent_at=utcnow() if delivery.status == "sent" else None,
                    detail=orjson.dumps(
                        {
                            "provider_id": delivery.provider_id,
                            "detail": delivery.detail,
                            "permanent": delivery.permanent,
                        }
                    ).decode(),
                )
            )
            # The outcome joins the person's history, where audiences and journeys see it.
            runner.env.people.record(
                conn,
                business_id=row.business_id,
                profile_id=row.profile_id,
                event="Message Sent" if delivery.status == "sent" else "Message Failed",
                properties={
                    "channel": row.channel,
                    "message": row.message,
                    "message_id": row.id,
                    "reason": delivery.detail,
                },
            )
            conn.execute(
                insert(journey_steps).values(
                    business_id=row.business_id,
                    run_id=row.run_id,
                    journey_id=conn.execute(
                        select(journey_runs.c.journey_id).where(journey_runs.c.id == row.run_id)
                    ).scalar_one(),
                    profile_id=row.profile_id,
                    node=row.node,
                    outcome="delivered" if delivery.status == "sent" else "delivery_failed",
                    detail=orjson.dumps(
                        {"channel": row.channel, "outbox": row.id, "detail": delivery.detail}
                    ).decode(),
                    at=utcnow(),
                )
            )
    return len(rows)


def _deliver(store: Store, runner: Runner, channel: Channel, row: Any) -> Delivery:
    with store.read() as conn:
        run = conn.execute(
            select(journey_runs.c.journey_id, journey_runs.c.version).where(
                journey_runs.c.id == row.run_id
            )
        ).one()
        definition = runner.definitions.get(conn, run.journey_id, run.version)
        # Consent or suppression may have changed since the step queued the message.
        reach = runner.env.reachability.check(
            conn, business_id=row.business_id, profile_id=row.profile_id, channel=row.channel
        )
        if not reach.allowed:
            return Delivery("failed", detail=f"not sent: {reach.reason}", permanent=True)
        traits = runner.env.people.traits(
            conn, business_id=row.business_id, profile_id=row.profile_id
        )
        message = definition.messages.get(row.message)
        names = _names(conn, row, message, traits)
    outgoing = _build(row, message, definition.destinations.get(row.message), names)
    if isinstance(outgoing, str):
        return Delivery("failed", detail=outgoing, permanent=True)
    try:
        return channel.send(outgoing)
    except Exception as exc:  # a broken adapter must not stop the other messages
        return Delivery("failed", detail=f"{type(exc).__name__}: {exc}"[:300])
