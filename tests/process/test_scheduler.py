"""The job scheduler on SQLite and PostgreSQL: claims, retries, timeouts, history."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from accord.accounts.models import Bootstrap
from accord.core.errors import InvalidInput, NotFound
from accord.core.settings import Settings
from accord.process import claims, job_admin, scheduler
from accord.process.kinds import JobContext, JobKind, JobOutcome
from accord.process.models import JobChange, job_runs, jobs
from accord.process.schedule import parse_schedule
from accord.process.scheduler import Scheduler
from accord.store.db import Store, open_store

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Counter:
    def __init__(self, fail_times: int = 0, sleep: float = 0.0) -> None:
        self.calls: list[JobContext] = []
        self.fail_times = fail_times
        self.sleep = sleep
        self.lock = threading.Lock()

    def __call__(self, context: JobContext) -> JobOutcome:
        with self.lock:
            self.calls.append(context)
            failing = len(self.calls) <= self.fail_times
        if self.sleep:
            time.sleep(self.sleep)
        if failing:
            raise RuntimeError(f"boom {len(self.calls)}")
        return JobOutcome(counts={"done": 1.0}, state={"runs": len(self.calls)})


def kinds_of(*kinds: JobKind) -> dict[str, JobKind]:
    return {k.name: k for k in kinds}


def test_new_businesses_get_their_jobs_due_at_once(store: Store, keys: Bootstrap) -> None:
    counter = Counter()
    kinds = kinds_of(JobKind(name="test.tick", title="tick", run=counter, schedule="every 1m"))
    assert scheduler.sync(store, kinds, settings=Settings(), now=T0) == 1
    assert scheduler.sync(store, kinds, settings=Settings(), now=T0) == 0
    with store.read() as conn:
        (view,) = job_admin.list_jobs(conn, kinds, business_id=keys.business_id, now=T0)
    assert view.next_due_at == T0 and view.schedule == "every 1m" and view.enabled


def test_a_run_is_recorded_and_the_next_one_follows_the_schedule(
    store: Store, keys: Bootstrap
) -> None:
    counter = Counter()
    kinds = kinds_of(JobKind(name="test.tick", title="tick", run=counter, schedule="every 1m"))
    scheduler.sync(store, kinds, settings=Settings(), now=T0)
    (job,) = claims.claim(store, kinds, worker="w1", limit=5, now=T0)
    assert claims.claim(store, kinds, worker="w2", limit=5, now=T0) == []
    outcome, error = claims.execute(store, Settings(), kinds, job, worker="w1")
    assert error is None
    claims.finish(store, kinds, job, worker="w1", outcome=outcome, now=T0 + timedelta(seconds=2))
    with store.read() as conn:
        (view,) = job_admin.list_jobs(conn, kinds, business_id=keys.business_id, now=T0)
        (run,) = job_admin.history(conn, business_id=keys.business_id)
        state = conn.execute(select(jobs.c.state)).scalar_one()
    assert view.next_due_at == T0 + timedelta(minutes=1)
    assert view.last_status == "succeeded" and not view.running
    assert run.status == "succeeded" and run.counts == {"done": 1.0} and run.seconds == 2.0
    assert state == '{"runs":1}'
    assert counter.calls[0].business_id == keys.business_id


def test_a_failing_job_is_retried_with_backoff_then_waits_for_its_next_occurrence(
    store: Store, keys: Bootstrap
) -> None:
    counter = Counter(fail_times=5)
    kinds = kinds_of(
        JobKind(
            name="test.flaky",
            title="flaky",
            run=counter,
            schedule="0 * * * *",
            max_attempts=3,
            backoff=timedelta(seconds=10),
        )
    )
    scheduler.sync(store, kinds, settings=Settings(), now=T0)
    now = T0
    dues = []
    for _ in range(3):
        (job,) = claims.claim(store, kinds, worker="w", limit=1, now=now)
        outcome, error = claims.execute(store, Settings(), kinds, job, worker="w")
        assert outcome is None and error is not None and "RuntimeError: boom" in error
        claims.finish(
            store, kinds, job, worker="w", outcome=None, error=error, status="failed", now=now
        )
        with store.read() as conn:
            due = conn.execute(select(jobs.c.next_due_at)).scalar_one()
        dues.append(due - now)
        now = due
    # 10 s, then 20 s, then the attempts are spent: the next hour.
    assert dues[:2] == [timedelta(seconds=10), timedelta(seconds=20)]
    assert now == T0.replace(hour=10)
    with store.read() as conn:
        runs = job_admin.history(conn, business_id=keys.business_id)
        attempt = conn.execute(select(jobs.c.attempt)).scalar_one()
    assert [r.status for r in runs] == ["failed"] * 3
    assert [r.attempt for r in reversed(runs)] == [1, 2, 3]
    assert attempt == 0 and "boom" in (runs[0].error or "")


def test_a_lease_that_ran_out_is_taken_over_and_the_lost_run_recorded(
    store: Store, keys: Bootstrap
) -> None:
    counter = Counter()
    kinds = kinds_of(
        JobKind(
            name="test.tick",
            title="tick",
            run=counter,
            schedule="every 1m",
            timeout=timedelta(seconds=30),
        )
    )
    scheduler.sync(store, kinds, settings=Settings(), now=T0)
    (first,) = claims.claim(store, kinds, worker="dead", limit=1, now=T0)
    # The worker died: nothing until the lease (timeout plus margin) runs out.
    assert claims.claim(store, kinds, worker="w2", limit=1, now=T0 + timedelta(seconds=60)) == []
    later = T0 + timedelta(seconds=91)
    (second,) = claims.claim(store, kinds, worker="w2", limit=1, now=later)
    assert second.job_id == first.job_id
    # The dead worker's late report moves nothing on; the run it held is already lost.
    claims.finish(store, kinds, first, worker="dead", outcome=JobOutcome(), now=later)
    with store.read() as conn:
        statuses = {r.id: r.status for r in job_admin.history(conn, business_id=keys.business_id)}
        owner = conn.execute(select(jobs.c.lease_owner)).scalar_one()
    assert statuses == {first.run_id: "lost", second.run_id: "running"}
    assert owner == "w2"


def test_two_schedulers_run_each_occurrence_once(settings: Settings, keys: Bootstrap) -> None:
    counter = Counter(sleep=0.05)
    kinds = kinds_of(
        *[
            JobKind(name=f"test.job{i}", title=f"job {i}", run=counter, schedule="every 1h")
            for i in range(6)
        ]
    )
    stores = [
        open_store(settings.resolved_database_url(), sqlite_synchronous="NORMAL") for _ in "ab"
    ]
    fast = settings.model_copy(update={"scheduler_poll_seconds": 0.05})
    try:
        scheduler.sync(stores[0], kinds, settings=fast)
        runners = [Scheduler(s, fast, kinds, concurrency=2) for s in stores]
        threads = [threading.Thread(target=r.run_until_idle) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for s in stores:
            s.dispose()
    assert sorted(c.now is not None for c in counter.calls) == [True] * 6
    store = open_store(settings.resolved_database_url())
    with store.read() as conn:
        runs = conn.execute(select(job_runs.c.name, job_runs.c.status)).all()
    store.dispose()
    assert sorted(r.name for r in runs) == sorted(kinds)
    assert {r.status for r in runs} == {"succeeded"}


def test_a_job_past_its_timeout_is_recorded_and_the_scheduler_goes_on(
    store: Store, keys: Bootstrap
) -> None:
    slow = Counter(sleep=1.5)
    quick = Counter()
    kinds = kinds_of(
        JobKind(
            name="test.slow",
            title="slow",
            run=slow,
            schedule="every 1h",
            timeout=timedelta(seconds=0.3),
            max_attempts=1,
        ),
        JobKind(name="test.quick", title="quick", run=quick, schedule="every 1h"),
    )
    runner = Scheduler(store, Settings(scheduler_poll_seconds=0.05), kinds, concurrency=2)
    runner.run_until_idle(timeout=30)
    with store.read() as conn:
        statuses = {r.name: r.status for r in job_admin.history(conn, business_id=keys.business_id)}
        error = conn.execute(select(jobs.c.last_error).where(jobs.c.name == "test.slow")).scalar()
    assert statuses == {"test.slow": "timed_out", "test.quick": "succeeded"}
    assert "timed out" in (error or "")


def test_quiet_runs_that_did_nothing_leave_no_history(store: Store, keys: Bootstrap) -> None:
    def nothing(context: JobContext) -> JobOutcome:
        return JobOutcome(counts={"sent": 0.0})

    kinds = kinds_of(
        JobKind(name="test.poll", title="poll", run=nothing, schedule="every 30s", quiet=True)
    )
    Scheduler(store, Settings(), kinds).run_until_idle()
    with store.read() as conn:
        assert job_admin.history(conn, business_id=keys.business_id) == []
        (view,) = job_admin.list_jobs(conn, kinds, business_id=keys.business_id)
    assert view.last_status == "succeeded" and view.last_finished_at is not None


def test_run_now_change_and_bad_input(store: Store, keys: Bootstrap) -> None:
    counter = Counter()
    kinds = kinds_of(
        JobKind(name="test.tick", title="tick", run=counter, schedule="every 1h"),
        JobKind(
            name="test.each",
            title="each",
            run=counter,
            schedule="every 1h",
            scope="object",
            targets=lambda conn, business_id: ["obj_a", "obj_b"],
        ),
    )
    scheduler.sync(store, kinds, settings=Settings(), now=T0)
    other = "biz_someone_else"
    with store.write() as conn:
        conn.execute(update(jobs).values(next_due_at=T0 + timedelta(hours=1)))
        with pytest.raises(NotFound):
            job_admin.request_run(conn, kinds, business_id=keys.business_id, name="test.nope")
        with pytest.raises(NotFound):
            job_admin.request_run(conn, kinds, business_id=other, name="test.tick")
        with pytest.raises(NotFound):
            job_admin.request_run(
                conn, kinds, business_id=keys.business_id, name="test.each", target="obj_zzz"
            )
        with pytest.raises(InvalidInput) as bad:
            job_admin.change(
                conn,
                kinds,
                business_id=keys.business_id,
                name="test.tick",
                body=JobChange(schedule="61 * * * *"),
                now=T0,
            )
        assert bad.value.problems[0].field == "schedule"
        with pytest.raises(InvalidInput) as bad_zone:
            job_admin.change(
                conn,
                kinds,
                business_id=keys.business_id,
                name="test.tick",
                body=JobChange(timezone="Mars/Olympus"),
                now=T0,
            )
        assert bad_zone.value.problems[0].field == "timezone"
    # Nothing changed by the refused requests.
    with store.read() as conn:
        views = job_admin.list_jobs(conn, kinds, business_id=keys.business_id, now=T0)
    assert {(v.schedule, v.next_due_at) for v in views} == {("every 1h", T0 + timedelta(hours=1))}
    with store.write() as conn:
        (changed,) = job_admin.change(
            conn,
            kinds,
            business_id=keys.business_id,
            name="test.tick",
            body=JobChange(schedule="30 8 * * *", timezone="Europe/Paris"),
            now=T0,
        )
        assert changed.next_due_at == datetime(2026, 12, 8, 7, 30, tzinfo=UTC)
        ids = job_admin.request_run(
            conn, kinds, business_id=keys.business_id, name="test.each", target="obj_b", now=T0
        )
    (job,) = claims.claim(store, kinds, worker="w", limit=5, now=T0)
    assert [job.job_id] == ids and job.target == "obj_b"
    # A synced default schedule never overrides one a person chose.
    scheduler.sync(store, kinds, settings=Settings(), now=T0)
    with store.read() as conn:
        tick = next(
            v
            for v in job_admin.list_jobs(conn, kinds, business_id=keys.business_id)
            if v.name == "test.tick"
        )
    assert tick.schedule == "30 8 * * *" and tick.default_schedule == "every 1h"


def test_objects_that_go_away_take_their_jobs_with_them(store: Store, keys: Bootstrap) -> None:
    objects = ["obj_a", "obj_b"]
    kinds = kinds_of(
        JobKind(
            name="test.each",
            title="each",
            run=Counter(),
            schedule="every 1h",
            scope="object",
            targets=lambda conn, business_id: list(objects),
        )
    )
    assert scheduler.sync(store, kinds, settings=Settings(), now=T0) == 2
    objects[:] = ["obj_b", "obj_c"]
    assert scheduler.sync(store, kinds, settings=Settings(), now=T0) == 2
    with store.read() as conn:
        targets = [v.target for v in job_admin.list_jobs(conn, kinds, business_id=keys.business_id)]
    assert targets == ["obj_b", "obj_c"]


@given(
    amount=st.integers(min_value=5, max_value=10_000),
    unit=st.sampled_from(["s", "m", "h", "d"]),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_intervals_step_by_their_length(amount: int, unit: str, moment: datetime) -> None:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds > 366 * 86400:
        with pytest.raises(InvalidInput):
            parse_schedule(f"every {amount}{unit}")
        return
    assert parse_schedule(f"every {amount}{unit}").next_after(moment) - moment == timedelta(
        seconds=seconds
    )


@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_daily_cron_fires_once_a_day_after_the_moment_at_local_time(
    minute: int, hour: int, zone: str, moment: datetime
) -> None:
    from zoneinfo import ZoneInfo

    schedule = parse_schedule(f"{minute} {hour} * * *", timezone=zone)
    due = schedule.next_after(moment)
    local = due.astimezone(ZoneInfo(zone))
    assert due > moment
    # Within a day and a DST hour; at the local minute asked for (an hour that a DST
    # change skips moves, as cron does).
    assert due - moment <= timedelta(days=1, hours=1)
    asked = local.replace(hour=hour, minute=minute)
    # A wall-clock time that exists that day is kept to the minute; one a DST change skips
    # (02:30 on the night clocks go forward) fires at the first instant after the gap.
    exists = asked.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) == (
        asked.replace(tzinfo=None)
    )
    if exists:
        assert (local.hour, local.minute) == (hour, minute)
    else:
        assert local.minute == 0 and local > asked.replace(minute=0) - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("every 2s", "between"),
        ("every 3 weeks", "every N"),
        ("* * *", "five fields"),
        ("0 0 30 2 *", "bad cron"),
        ("99 * * * *", "bad cron"),
    ],
)
def test_bad_schedules_name_the_field_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(text)
    assert caught.value.problems[0].field == "schedule"
    assert reason in caught.value.problems[0].reason
