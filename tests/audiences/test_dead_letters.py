"""Webhook destinations that keep failing, on SQLite and PostgreSQL, against a real local
receiver: failures counted, batches parked so later changes flow, replay, discard,
erasure notices kept, tenants apart, and the scheduled job's setting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.audiences import definitions, destinations, erasure, membership, service
from accord.audiences.destinations import WebhookRun
from accord.audiences.models import (
    DeadLetterStatus,
    DeadLetterView,
    WebhookIn,
    WebhookView,
    audience_changes,
)
from accord.core.clock import utcnow
from accord.core.errors import Conflict, InvalidInput, NotFound, WebhookNotDelivered
from accord.core.settings import Settings
from accord.core.webhooks import verify
from accord.process.jobs import WebhookDeliveryFailed, deliver_audience_webhooks
from accord.process.kinds import JobContext
from accord.store.db import Store
from tests.audiences.test_service import Grants, create, identify, ingest, track
from tests.webhook_receiver import WebhookReceiver, running_receiver

CARTS = 'did "Product Added" in the last 7 days and did not "Order Completed" in the last 7 days'
CONSENT = Grants({"eve": {"marketing"}, "fay": {"marketing"}})


def no_wait(_seconds: float) -> None:
    pass  # backoff between attempts is webhook.deliver's business, not these tests'


@dataclass
class Hooked:
    """A business whose audience `carts` has one destination: the local receiver."""

    store: Store
    keys: Bootstrap
    settings: Settings
    receiver: WebhookReceiver
    client: httpx.Client
    webhook_id: str
    secret: str

    @property
    def business_id(self) -> str:
        return self.keys.business_id

    def deliver(self, *, dead_letter_after: int = 3) -> WebhookRun:
        [run] = destinations.deliver_webhooks(
            self.store,
            business_id=self.business_id,
            client=self.client,
            dead_letter_after=dead_letter_after,
            sleep=no_wait,
        )
        return run

    def hook(self) -> WebhookView:
        with self.store.read() as conn:
            [view] = destinations.list_webhooks(
                conn, business_id=self.business_id, audience="carts"
            )
        return view

    def letters(self, status: DeadLetterStatus | None = None) -> list[DeadLetterView]:
        with self.store.read() as conn:
            return destinations.list_dead_letters(
                conn, business_id=self.business_id, audience="carts", status=status
            )

    def replay(self, dead_letter_id: str) -> DeadLetterView:
        return destinations.replay_dead_letter(
            self.store,
            business_id=self.business_id,
            audience="carts",
            dead_letter_id=dead_letter_id,
            client=self.client,
            sleep=no_wait,
        )

    def discard(self, dead_letter_id: str) -> DeadLetterView:
        with self.store.write() as conn:
            return destinations.discard_dead_letter(
                conn, business_id=self.business_id, audience="carts", dead_letter_id=dead_letter_id
            )

    def profile_of(self, user_id: str) -> str:
        with self.store.read() as conn:
            feed = membership.changes(conn, business_id=self.business_id, audience="carts")
            found = service.people(
                conn, business_id=self.business_id, profile_ids=[c.profile_id for c in feed]
            )
        [profile_id] = [p for p, person in found.items() if user_id in person.user_ids]
        return profile_id

    def erase(self, profile_id: str) -> dict[str, int]:
        with self.store.write() as conn:
            return erasure.forget_profile(conn, business_id=self.business_id, profile_id=profile_id)


@pytest.fixture
def hooked(store: Store, keys: Bootstrap, settings: Settings) -> Iterator[Hooked]:
    # The receiver listens on loopback: the operator allows it here.
    settings = settings.model_copy(update={"outbound_allow": "127.0.0.1"})
    create(store, keys.business_id, "carts", CARTS)
    CONSENT.record(store, keys.business_id)
    with running_receiver() as receiver, httpx.Client(timeout=5) as client:
        with store.write() as conn:
            added = destinations.add_webhook(
                conn,
                business_id=keys.business_id,
                audience="carts",
                webhook_in=WebhookIn(url=receiver.url),
                outbound=settings.outbound_policy(),
            )
        ingest(
            store,
            keys,
            settings,
            [identify(1, "eve", 1, email="eve@example.com"), track(2, "eve", "Product Added", 0.5)],
        )
        yield Hooked(store, keys, settings, receiver, client, added["id"], added["secret"])


def test_a_failing_destination_is_counted_then_its_batch_parked_and_later_changes_flow(
    hooked: Hooked,
) -> None:
    hooked.receiver.status = 503
    first = hooked.deliver(dead_letter_after=3)
    assert first.failed and first.failures == 1 and first.parked is None
    # One run is five attempts, all the same message.
    assert len(hooked.receiver.received) == 5
    assert len({r.headers["webhook-id"] for r in hooked.receiver.received}) == 1
    hook = hooked.hook()
    assert (hook.failures, hook.parked) == (1, 0)
    assert hook.last_error == "HTTP 503 after 5 attempts"
    assert hook.last_attempt_at is not None and hook.last_attempt_at <= utcnow()
    pending_from = hook.delivered_seq

    assert hooked.deliver(dead_letter_after=3).failures == 2
    assert hooked.hook().delivered_seq == pending_from  # still held back
    third = hooked.deliver(dead_letter_after=3)
    assert third.parked is not None and not third.failed and third.failures == 3

    [letter] = hooked.letters()
    sent = hooked.receiver.received[-1]
    assert letter.id == third.parked and letter.status == "parked"
    assert letter.message_id == sent.headers["webhook-id"]
    assert (letter.changes, letter.erasures, letter.attempts) == (1, 0, 3)
    assert letter.first_seq == letter.last_seq > pending_from
    assert letter.last_error == "HTTP 503 after 5 attempts" and letter.resolved_at is None
    hook = hooked.hook()
    assert (hook.failures, hook.parked, hook.delivered_seq) == (0, 1, letter.last_seq)

    # The receiver is back: the next change goes out, the parked one is not sent again.
    hooked.receiver.status = 200
    ingest(hooked.store, hooked.keys, hooked.settings, [track(3, "eve", "Order Completed", 0.1)])
    delivered = hooked.deliver(dead_letter_after=3)
    assert delivered.delivery is not None and delivered.delivery.delivered
    [accepted] = hooked.receiver.accepted()
    assert [(c["change"], c["user_id"]) for c in accepted.json()["changes"]] == [("exited", "eve")]
    assert accepted.json()["changes"][0]["seq"] > letter.last_seq
    hook = hooked.hook()
    assert (hook.failures, hook.last_error, hook.parked) == (0, None, 1)
    assert hooked.deliver().delivery is None  # nothing pending


def test_a_refusal_parks_the_batch_at_once(hooked: Hooked) -> None:
    hooked.receiver.status = 410
    run = hooked.deliver(dead_letter_after=10)
    assert run.parked is not None and run.failures == 1
    assert len(hooked.receiver.received) == 1  # refused: not retried
    [letter] = hooked.letters(status="parked")
    assert (letter.attempts, letter.last_error) == (1, "refused with HTTP 410")
    # Too many requests only asks for later: counted, not parked.
    hooked.receiver.status = 429
    ingest(hooked.store, hooked.keys, hooked.settings, [track(3, "eve", "Order Completed", 0.1)])
    later = hooked.deliver(dead_letter_after=10)
    assert later.failed and later.parked is None and len(hooked.letters()) == 1


def test_replay_sends_the_same_body_and_webhook_id_once_the_receiver_is_back(
    hooked: Hooked,
) -> None:
    hooked.receiver.status = 400
    parked = hooked.deliver().parked
    assert parked is not None
    original = hooked.receiver.received[0]

    # Still down: a 502-worthy error, and the batch stays parked with the new error.
    hooked.receiver.status = 503
    with pytest.raises(WebhookNotDelivered) as refused:
        hooked.replay(parked)
    assert refused.value.url == hooked.receiver.url and "503" in refused.value.reason
    [letter] = hooked.letters()
    assert letter.status == "parked" and letter.attempts == 2
    assert letter.last_error == "HTTP 503 after 2 attempts"

    hooked.receiver.status = 204
    replayed = hooked.replay(parked)
    assert replayed.status == "replayed" and replayed.resolved_at is not None
    [again] = hooked.receiver.accepted()
    assert again.body == original.body
    assert again.headers["webhook-id"] == original.headers["webhook-id"] == letter.message_id
    assert verify(hooked.secret, again.headers, again.body)
    assert [c["user_id"] for c in again.json()["changes"]] == ["eve"]
    assert hooked.letters(status="parked") == [] and hooked.hook().parked == 0
    with pytest.raises(Conflict):
        hooked.replay(parked)
    with pytest.raises(Conflict):
        hooked.discard(parked)


def test_discard_gives_the_batch_up_and_frees_the_audience(hooked: Hooked) -> None:
    hooked.receiver.status = 404
    parked = hooked.deliver().parked
    assert parked is not None
    # Parked batches keep the audience: deleting it would lose them unseen.
    with pytest.raises(InvalidInput, match="1 parked webhook batches"), hooked.store.write() as c:
        definitions.delete_audience(c, business_id=hooked.business_id, audience="carts")
    discarded = hooked.discard(parked)
    assert discarded.status == "discarded" and discarded.resolved_at is not None
    assert hooked.hook().parked == 0
    with pytest.raises(Conflict):
        hooked.replay(parked)
    hooked.receiver.status = 204
    assert len(hooked.receiver.received) == 1  # nothing was sent on discard
    with hooked.store.write() as conn:
        definitions.delete_audience(conn, business_id=hooked.business_id, audience="carts")


def test_erasure_notices_are_parked_and_counted_and_the_erased_leave_parked_batches(
    hooked: Hooked,
) -> None:
    ingest(
        hooked.store,
        hooked.keys,
        hooked.settings,
        [identify(3, "fay", 1, email="fay@example.com"), track(4, "fay", "Product Added", 0.4)],
    )
    eve = hooked.profile_of("eve")
    hooked.receiver.status = 410
    first = hooked.deliver().parked
    [letter] = hooked.letters()
    assert (letter.changes, letter.erasures) == (2, 0)

    # Eve is erased: her entry leaves the parked batch (it named her email), and the
    # erasure notice that follows is parked in turn, counted as such.
    erased = hooked.erase(eve)
    assert erased["audience_webhook_dead_letters_scrubbed"] == 1
    second = hooked.deliver().parked
    assert second is not None and second != first
    assert [(d.changes, d.erasures) for d in hooked.letters(status="parked")] == [(1, 0), (1, 1)]
    assert hooked.hook().parked == 2

    hooked.receiver.status = 204
    replayed = [hooked.replay(d.id) for d in hooked.letters(status="parked")]
    assert [d.status for d in replayed] == ["replayed", "replayed"]
    scrubbed, notice = (r.json()["changes"] for r in hooked.receiver.accepted())
    assert [(c["change"], c["user_id"]) for c in scrubbed] == [("entered", "fay")]
    assert notice == [
        {
            "seq": notice[0]["seq"],
            "change": "erased",
            "at": notice[0]["at"],
            "profile_id": eve,
            "user_id": None,
            "email": None,
        }
    ]
    assert not any(b"eve@example.com" in r.body for r in hooked.receiver.accepted())


def test_another_business_can_neither_see_nor_act_on_a_dead_letter(hooked: Hooked) -> None:
    hooked.receiver.status = 410
    parked = hooked.deliver().parked
    assert parked is not None
    other = bootstrap(hooked.store, name="Other Business").business_id
    create(hooked.store, other, "carts", CARTS)
    with hooked.store.read() as conn:
        assert destinations.list_dead_letters(conn, business_id=other, audience="carts") == []
        assert destinations.list_webhooks(conn, business_id=other, audience="carts") == []
    with pytest.raises(NotFound):
        destinations.replay_dead_letter(
            hooked.store,
            business_id=other,
            audience="carts",
            dead_letter_id=parked,
            client=hooked.client,
        )
    with pytest.raises(NotFound), hooked.store.write() as conn:
        destinations.discard_dead_letter(
            conn, business_id=other, audience="carts", dead_letter_id=parked
        )
    [letter] = hooked.letters()
    assert letter.status == "parked" and len(hooked.receiver.received) == 1


def test_the_scheduled_job_parks_after_the_configured_number_of_failed_runs(
    hooked: Hooked,
) -> None:
    # 501 is not retried within a run, so each run is a single POST.
    hooked.receiver.status = 501
    settings = hooked.settings.model_copy(update={"webhook_dead_letter_after": 2})
    context = JobContext(
        settings=settings,
        store=hooked.store,
        business_id=hooked.business_id,
        target=None,
        now=utcnow(),
        state={},
    )
    with pytest.raises(WebhookDeliveryFailed, match="1 of 2 failed runs"):
        deliver_audience_webhooks(context)
    outcome = deliver_audience_webhooks(context)
    assert outcome.counts["batches_parked"] == 1 and outcome.counts["failed_destinations"] == 0
    assert len(hooked.receiver.received) == 2
    [letter] = hooked.letters(status="parked")
    assert letter.attempts == 2 and letter.last_error == "refused with HTTP 501"


def test_erasure_notices_come_after_every_change_there_was_even_the_ones_they_replace(
    hooked: Hooked,
) -> None:
    # Eve's changes are the only ones there are, so erasing her deletes the newest rows;
    # a sequence that handed their numbers out again would put her erasure notices at or
    # before what destinations received already, and they would never be sent.
    hooked.receiver.status = 204
    assert hooked.deliver().delivery is not None
    with hooked.store.read() as conn:
        newest = conn.execute(select(func.max(audience_changes.c.seq))).scalar_one()
    eve = hooked.profile_of("eve")
    hooked.erase(eve)
    with hooked.store.read() as conn:
        notices = conn.execute(select(audience_changes.c.seq, audience_changes.c.change)).all()
    assert notices and all(change == "erased" and seq > newest for seq, change in notices)
    run = hooked.deliver()
    assert run.delivery is not None and run.delivery.delivered
    [notice] = hooked.receiver.accepted()[-1].json()["changes"]
    assert (notice["change"], notice["profile_id"]) == ("erased", eve)
