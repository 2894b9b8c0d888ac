"""Webhook destinations: entries and exits delivered, and batches parked as dead letters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, Select, and_, func, insert, select, update

from accord.audiences import webhook
from accord.audiences.definitions import find_stored
from accord.audiences.exports import Person
from accord.audiences.membership import changes
from accord.audiences.models import (
    Change,
    DeadLetterStatus,
    DeadLetterView,
    WebhookIn,
    WebhookView,
    audience_changes,
    audience_webhook_dead_letters,
    audience_webhooks,
    audiences,
)
from accord.audiences.service import _reachable
from accord.core.clock import utcnow
from accord.core.errors import Conflict, NotFound, WebhookNotDelivered
from accord.core.ids import new_id
from accord.core.outbound import OutboundPolicy
from accord.core.webhooks import new_secret
from accord.store.db import Store


def add_webhook(
    conn: Connection,
    *,
    business_id: str,
    audience: str,
    webhook_in: WebhookIn,
    outbound: OutboundPolicy,
) -> dict[str, str]:
    """A destination that receives the audience's entries and exits; the secret is shown
    once. A URL the outbound policy refuses (loopback, private, metadata...) is a 400."""
    outbound.check_url(webhook_in.url, field_name="url")
    found = find_stored(conn, business_id, audience)
    webhook_id = new_id("whk")
    secret = new_secret()
    last = conn.execute(
        select(func.max(audience_changes.c.seq)).where(audience_changes.c.audience_id == found.id)
    ).scalar()
    conn.execute(
        insert(audience_webhooks).values(
            id=webhook_id,
            business_id=business_id,
            audience_id=found.id,
            url=webhook_in.url,
            secret=secret,
            purpose=webhook_in.purpose,
            # Changes from now on: a new destination does not replay history.
            delivered_seq=last or 0,
            created_at=utcnow(),
        )
    )
    return {"id": webhook_id, "secret": secret}


def _webhook_change(change: Change, person: Person | None) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "change": change.change,
        "at": change.at.isoformat(),
        "profile_id": change.profile_id,
        "user_id": person.user_ids[0] if person is not None and person.user_ids else None,
        "email": person.emails[0] if person is not None and person.emails else None,
    }


@dataclass
class WebhookRun:
    webhook_id: str
    sent: int
    left_out: dict[str, int]
    delivery: webhook.Delivery | None
    # Failed runs in a row on the pending batch, this one included; 0 once it went.
    failures: int = 0
    # The dead letter this run parked the batch as.
    parked: str | None = None

    @property
    def failed(self) -> bool:
        """The batch is still pending after a failed delivery: a later run tries again."""
        return self.delivery is not None and not self.delivery.delivered and self.parked is None


def deliver_webhooks(
    store: Store,
    *,
    business_id: str,
    client: httpx.Client,
    batch: int = 500,
    dead_letter_after: int = 10,
    sleep: Callable[[float], None] | None = None,
) -> list[WebhookRun]:
    """Send each webhook destination the entries and exits it has not received yet.

    A batch is marked delivered only after the receiver accepted it, so a failure is
    retried on the next run (receivers dedupe by `webhook-id`). A batch the receiver
    refused (a 4xx other than 408, 425 and 429), or that failed `dead_letter_after` runs
    in a row, is parked as a dead letter and the destination moves on past it.
    """
    with store.read() as conn:
        hooks = conn.execute(
            select(audience_webhooks, audiences.c.slug)
            .join(audiences, audiences.c.id == audience_webhooks.c.audience_id)
            .where(audience_webhooks.c.business_id == business_id)
            .order_by(audience_webhooks.c.id)
        ).all()
    runs = []
    for hook in hooks:
        with store.read() as conn:
            pending = changes(
                conn,
                business_id=business_id,
                audience=hook.audience_id,
                after=hook.delivered_seq,
                limit=batch,
            )
            if not pending:
                runs.append(WebhookRun(hook.id, 0, {}, None))
                continue
            kept, left_out = _reachable(
                conn,
                business_id=business_id,
                profile_ids=sorted({c.profile_id for c in pending}),
                purpose=hook.purpose,
            )
        allowed = {p.profile_id: p for p in kept}
        body = {
            "audience": hook.slug,
            # An erasure goes to every destination whatever its purpose (it asks them
            # to forget), naming only the profile id they received entries under.
            "changes": [
                _webhook_change(c, None if c.change == "erased" else allowed[c.profile_id])
                for c in pending
                if c.change == "erased" or c.profile_id in allowed
            ],
        }
        batch_sent = _Batch(
            first_seq=pending[0].seq,
            last_seq=pending[-1].seq,
            message_id=f"{hook.id}-{pending[-1].seq}",
            body=orjson.dumps(body),
        )
        delivery = webhook.deliver(
            client,
            url=hook.url,
            secret=hook.secret,
            message_id=batch_sent.message_id,
            body=batch_sent.body,
            sleep=sleep if sleep is not None else time.sleep,
        )
        failures = 0 if delivery.delivered else hook.failures + 1
        settlement = webhook.settle(
            delivery, failures=failures, dead_letter_after=dead_letter_after
        )
        with store.write() as conn:
            parked = _settle(
                conn,
                hook=hook,
                batch=batch_sent,
                settlement=settlement,
                failures=failures,
                error=_error(delivery),
            )
        runs.append(
            WebhookRun(hook.id, len(body["changes"]), dict(left_out), delivery, failures, parked)
        )
    return runs


@dataclass(frozen=True)
class _Batch:
    """A batch as it was sent: what a dead letter keeps to send it again unchanged."""

    first_seq: int
    last_seq: int
    message_id: str
    body: bytes


def _error(delivery: webhook.Delivery) -> str | None:
    if delivery.delivered:
        return None
    return delivery.error or f"HTTP {delivery.status}"


def _settle(
    conn: Connection,
    *,
    hook: Any,
    batch: _Batch,
    settlement: webhook.Settlement,
    failures: int,
    error: str | None,
) -> str | None:
    """Record a delivery run on its destination, parking the batch when it is given up;
    the id of the dead letter made, if any.

    Parking and moving `delivered_seq` past the batch are one transaction, so a batch is
    never skipped without being kept. Each write is guarded by the `delivered_seq` the run
    started from: a run that overlapped another one changes nothing.
    """
    now = utcnow()
    same_batch = and_(
        audience_webhooks.c.id == hook.id,
        audience_webhooks.c.delivered_seq == hook.delivered_seq,
    )
    if settlement == "retry":
        conn.execute(
            update(audience_webhooks)
            .where(same_batch)
            .values(failures=failures, last_error=error, last_attempt_at=now)
        )
        return None
    moved = conn.execute(
        update(audience_webhooks)
        .where(same_batch)
        .values(delivered_seq=batch.last_seq, failures=0, last_error=error, last_attempt_at=now)
    ).rowcount
    if settlement == "delivered" or moved != 1:
        return None
    dead_letter_id = new_id("dlt")
    conn.execute(
        insert(audience_webhook_dead_letters).values(
            id=dead_letter_id,
            business_id=hook.business_id,
            webhook_id=hook.id,
            audience_id=hook.audience_id,
            first_seq=batch.first_seq,
            last_seq=batch.last_seq,
            message_id=batch.message_id,
            # orjson writes UTF-8, so the text encodes back to the very bytes sent.
            body=batch.body.decode(),
            attempts=failures,
            last_error=error or "not delivered",
            status="parked",
            created_at=now,
            resolved_at=None,
        )
    )
    return dead_letter_id


# A replay is answered to a person waiting for it: one retry absorbs a blip, more would
# keep them waiting; they can press Replay again.
REPLAY_ATTEMPTS = 2


def list_webhooks(conn: Connection, *, business_id: str, audience: str) -> list[WebhookView]:
    """The audience's destinations with how their deliveries go."""
    found = find_stored(conn, business_id, audience)
    letters = audience_webhook_dead_letters
    parked: dict[str, int] = {
        row.webhook_id: row.parked
        for row in conn.execute(
            select(letters.c.webhook_id, func.count().label("parked"))
            .where(letters.c.audience_id == found.id, letters.c.status == "parked")
            .group_by(letters.c.webhook_id)
        )
    }
    rows = conn.execute(
        select(audience_webhooks)
        .where(
            audience_webhooks.c.business_id == business_id,
            audience_webhooks.c.audience_id == found.id,
        )
        .order_by(audience_webhooks.c.created_at, audience_webhooks.c.id)
    )
    return [
        WebhookView(
            id=row.id,
            audience_id=row.audience_id,
            url=row.url,
            purpose=row.purpose,
            delivered_seq=row.delivered_seq,
            failures=row.failures,
            last_error=row.last_error,
            last_attempt_at=row.last_attempt_at,
            parked=parked.get(row.id, 0),
        )
        for row in rows
    ]


def _dead_letters() -> Select[Any]:
    letters = audience_webhook_dead_letters
    return select(letters, audience_webhooks.c.url, audience_webhooks.c.secret).join(
        audience_webhooks, audience_webhooks.c.id == letters.c.webhook_id
    )


def _dead_letter_view(row: Any) -> DeadLetterView:
    sent = orjson.loads(row.body)["changes"]
    return DeadLetterView(
        id=row.id,
        webhook_id=row.webhook_id,
        url=row.url,
        audience_id=row.audience_id,
        first_seq=row.first_seq,
        last_seq=row.last_seq,
        message_id=row.message_id,
        changes=len(sent),
        erasures=sum(1 for change in sent if change["change"] == "erased"),
        attempts=row.attempts,
        last_error=row.last_error,
        status=row.status,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
    )


def list_dead_letters(
    conn: Connection,
    *,
    business_id: str,
    audience: str,
    status: DeadLetterStatus | None = None,
) -> list[DeadLetterView]:
    """The audience's dead letters, oldest batch first: the order to replay them in."""
    found = find_stored(conn, business_id, audience)
    letters = audience_webhook_dead_letters
    query = _dead_letters().where(
        letters.c.business_id == business_id, letters.c.audience_id == found.id
    )
    if status is not None:
        query = query.where(letters.c.status == status)
    rows = conn.execute(query.order_by(letters.c.first_seq, letters.c.id))
    return [_dead_letter_view(row) for row in rows]


def _parked(conn: Connection, business_id: str, audience: str, dead_letter_id: str) -> Any:
    found = find_stored(conn, business_id, audience)
    letters = audience_webhook_dead_letters
    row = conn.execute(
        _dead_letters().where(
            letters.c.id == dead_letter_id,
            letters.c.business_id == business_id,
            letters.c.audience_id == found.id,
        )
    ).first()
    if row is None:
        raise NotFound(f"dead letter {dead_letter_id!r}")
    if row.status != "parked":
        raise Conflict(f"dead letter {dead_letter_id} was {row.status} already")
    return row


def _reread(conn: Connection, dead_letter_id: str) -> DeadLetterView:
    letters = audience_webhook_dead_letters
    return _dead_letter_view(
        conn.execute(_dead_letters().where(letters.c.id == dead_letter_id)).one()
    )


def discard_dead_letter(
    conn: Connection, *, business_id: str, audience: str, dead_letter_id: str
) -> DeadLetterView:
    """Give a parked batch up: its receiver will never get it."""
    row = _parked(conn, business_id, audience, dead_letter_id)
    letters = audience_webhook_dead_letters
    done = conn.execute(
        update(letters)
        .where(letters.c.id == row.id, letters.c.status == "parked")
        .values(status="discarded", resolved_at=utcnow())
    ).rowcount
    if done != 1:
        raise Conflict(f"dead letter {dead_letter_id} was resolved meanwhile")
    return _reread(conn, row.id)


def replay_dead_letter(
    store: Store,
    *,
    business_id: str,
    audience: str,
    dead_letter_id: str,
    client: httpx.Client,
    sleep: Callable[[float], None] | None = None,
) -> DeadLetterView:
    """POST a parked batch again: the same body and `webhook-id`, freshly signed.

    Raises `WebhookNotDelivered` when the receiver still does not accept it; the batch
    stays parked with the new error.
    """
    with store.read() as conn:
        row = _parked(conn, business_id, audience, dead_letter_id)
    delivery = webhook.deliver(
        client,
        url=row.url,
        secret=row.secret,
        message_id=row.message_id,
        body=row.body.encode(),
        attempts=REPLAY_ATTEMPTS,
        sleep=sleep if sleep is not None else time.sleep,
    )
    letters = audience_webhook_dead_letters
    error = _error(delivery)
    with store.write() as conn:
        if error is None:
            # Delivered is what happened, even if someone discarded it meanwhile.
            conn.execute(
                update(letters)
                .where(letters.c.id == row.id, letters.c.status != "replayed")
                .values(status="replayed", resolved_at=utcnow())
            )
        else:
            conn.execute(
                update(letters)
                .where(letters.c.id == row.id)
                .values(attempts=letters.c.attempts + 1, last_error=error)
            )
        view = _reread(conn, row.id)
    if error is not None:
        raise WebhookNotDelivered(url=row.url, reason=error)
    return view
