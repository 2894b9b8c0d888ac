"""The `identity.match` job merges profiles only when someone asked for it."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.process import job_admin, scheduler
from accord.process.jobs import default_kinds, match_profiles
from accord.process.kinds import REQUESTED_AT, JobContext
from accord.process.models import jobs
from accord.store.db import Store


def _context(
    settings: Settings, store: Store, keys: Bootstrap, state: dict[str, str]
) -> JobContext:
    return JobContext(
        settings=settings,
        store=store,
        business_id=keys.business_id,
        target=None,
        now=utcnow(),
        state=state,
    )


def test_a_scheduled_run_nobody_asked_for_does_nothing(
    settings: Settings, store: Store, keys: Bootstrap
) -> None:
    outcome = match_profiles(_context(settings, store, keys, {}))
    assert outcome.counts == {"not_asked": 1.0}
    asked = match_profiles(_context(settings, store, keys, {REQUESTED_AT: utcnow().isoformat()}))
    # Asked, it goes on to matching (here there are no matching rules to run).
    assert asked.counts == {"not_configured": 1.0}


def test_run_now_records_the_request_in_the_job_state(
    settings: Settings, store: Store, keys: Bootstrap
) -> None:
    kinds = default_kinds()
    scheduler.sync(store, kinds, settings=settings, business_id=keys.business_id)
    with store.write() as conn:
        job_admin.request_run(conn, kinds, business_id=keys.business_id, name="identity.match")
    with store.read() as conn:
        state = conn.execute(
            select(jobs.c.state).where(
                jobs.c.business_id == keys.business_id, jobs.c.name == "identity.match"
            )
        ).scalar_one()
    assert REQUESTED_AT in orjson.loads(state)
