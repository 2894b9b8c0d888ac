"""The pipeline: its steps in order, and the leads step scoring each event exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from accord.accounts.models import Bootstrap, SourceRef
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.leads import forms, service, submissions
from accord.leads.models import FormIn, ScoringIn, ScoringRule, lead_stage_changes
from accord.leads.models import leads as lead_rows
from accord.leads.validation import CleanSubmission
from accord.process.pipeline import default_steps
from accord.process.worker import PROFILE_CHUNK, apply_chunk, claim, drain, process
from accord.store.db import Store

LEASE = timedelta(seconds=60)


def test_the_steps_run_in_the_documented_order() -> None:
    steps = default_steps()
    assert [s.name for s in steps] == [
        "identity",
        "profiles",
        "audiences",
        "journeys",
        "leads",
        "lake",
    ]
    # Every step but the lake works on chunks; the lake on the whole batch.
    assert [s.name for s in steps if s.on_chunk is None] == ["lake"]
    assert [s.name for s in steps if s.before_chunks or s.after_chunks] == ["lake"]


def _lead(store: Store, business_id: str, anonymous_id: str) -> str:
    """A confirmed lead known by this anonymous id, and a scoring rule for purchases."""
    with store.write() as conn:
        service.set_scoring(
            conn,
            business_id=business_id,
            data=ScoringIn(
                rules=[
                    ScoringRule(kind="event", name="Product Viewed", points=1),
                    ScoringRule(kind="event", name="Order Completed", points=40, stage="customer"),
                ],
                half_life_days=3650,
            ),
        )
        form = forms.create_form(
            conn,
            business_id=business_id,
            data=FormIn.model_validate(
                {
                    "slug": "newsletter",
                    "title": {"en": "Newsletter"},
                    "fields": [{"key": "email", "kind": "email"}],
                    "privacy_policy_url": "https://shop.example/privacy",
                    "from_address": "news@shop.example",
                    "double_opt_in": False,
                }
            ),
        )
        return submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="ann@shop.example"),
            anonymous_id=anonymous_id,
            ip=None,
            user_agent=None,
        ).lead_id


def _store_events(store: Store, keys: Bootstrap, events: list[dict[str, Any]]) -> None:
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(store, source=source, events=events, gate=KeepEverything(), received_at=utcnow())


def _event(n: int, name: str, anonymous_id: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": f"m{n}",
        "anonymousId": anonymous_id,
        "timestamp": "2026-11-10T10:00:00.000Z",
    }


def _lead_state(store: Store, lead_id: str) -> tuple[str, float, list[str]]:
    with store.read() as conn:
        row = conn.execute(
            select(lead_rows.c.stage, lead_rows.c.score).where(lead_rows.c.id == lead_id)
        ).one()
        stages = conn.execute(
            select(lead_stage_changes.c.stage)
            .where(lead_stage_changes.c.lead_id == lead_id)
            .order_by(lead_stage_changes.c.id)
        ).scalars()
        return row.stage, row.score, list(stages)


def test_an_order_completed_makes_the_lead_a_customer(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    lead = _lead(store, keys.business_id, "anon-ann")
    _store_events(
        store,
        keys,
        [
            _event(1, "Product Viewed", "anon-ann"),
            _event(2, "Order Completed", "anon-ann"),
            # Not a lead: scores nothing, changes nothing.
            _event(3, "Order Completed", "anon-bob"),
        ],
    )
    assert drain(store, lake_url=settings.resolved_lake_url(), batch_size=10, lease=LEASE) == 3
    stage, score, stages = _lead_state(store, lead)
    assert stage == "customer"
    assert score == pytest.approx(41, abs=0.01)
    assert stages == ["customer"]


def test_a_chunk_redone_after_a_crash_scores_each_event_once(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    lead = _lead(store, keys.business_id, "anon-ann")
    total = PROFILE_CHUNK + 10
    _store_events(store, keys, [_event(n, "Product Viewed", "anon-ann") for n in range(total)])
    first = claim(store, batch_size=total, lease=LEASE)
    assert first is not None
    pairs = list(zip(first.rows, [orjson.loads(r.payload) for r in first.rows], strict=True))
    # The worker committed its first chunk, then died; another takes the batch over.
    assert apply_chunk(store, pairs[:PROFILE_CHUNK], default_steps()) == PROFILE_CHUNK
    assert _lead_state(store, lead)[1] == pytest.approx(PROFILE_CHUNK, abs=0.01)
    again = claim(store, batch_size=total, lease=LEASE, take_over_all=True)
    assert again is not None and again.batch_id == first.batch_id
    lake = settings.resolved_lake_url()
    assert process(store, again, lake_url=lake) == 10
    # A stale copy of the same chunks finished late changes nothing either.
    assert apply_chunk(store, pairs, default_steps()) == 0
    assert _lead_state(store, lead)[1] == pytest.approx(total, abs=0.01)
