"""Runs per job and outcome since a time, and the newest failures (the overview's widget)."""

from __future__ import annotations

from datetime import timedelta

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.process import job_admin
from accord.process.kinds import JobKind
from accord.process.scheduler import Scheduler
from accord.store.db import Store
from tests.process.test_scheduler import T0, Counter, kinds_of


def test_outcomes_and_failed_runs_of_one_business_since_a_time(
    store: Store, keys: Bootstrap
) -> None:
    other = bootstrap(store, name="Other shop")
    kinds = kinds_of(
        JobKind(name="test.ok", title="ok", run=Counter(), schedule="every 1m"),
        JobKind(
            name="test.bad",
            title="bad",
            run=Counter(fail_times=9),
            schedule="every 1m",
            max_attempts=1,
        ),
    )
    clock = [T0]
    runner = Scheduler(store, Settings(), kinds, clock=lambda: clock[0])
    for minutes in (0, 1, 2):
        clock[0] = T0 + timedelta(minutes=minutes, seconds=1)
        runner.run_until_idle()
    with store.read() as conn:
        found = job_admin.outcomes(conn, business_id=keys.business_id, since=T0)
        later = job_admin.outcomes(
            conn, business_id=keys.business_id, since=T0 + timedelta(minutes=2)
        )
        failed = job_admin.failed_runs(conn, business_id=keys.business_id, since=T0, limit=2)
        theirs = job_admin.outcomes(conn, business_id=other.business_id, since=T0)
    assert found == {"test.bad": {"failed": 3}, "test.ok": {"succeeded": 3}}
    assert later == {"test.bad": {"failed": 1}, "test.ok": {"succeeded": 1}}
    assert [(r.name, r.status) for r in failed] == [("test.bad", "failed")] * 2
    assert failed[0].started_at > failed[1].started_at
    assert failed[0].error and "boom" in failed[0].error
    assert theirs == {"test.bad": {"failed": 3}, "test.ok": {"succeeded": 3}}
