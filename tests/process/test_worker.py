"""The inbox worker: in order, exactly once, across crashes and concurrent workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import orjson
from sqlalchemy import func, select, update

from accord.accounts.models import Bootstrap, SourceRef
from accord.collect.consent_gate import GateDecision, KeepEverything
from accord.collect.models import inbox
from accord.collect.service import append, purge_processed
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.lake.schema import lake_row
from accord.lake.service import visible_files, write_batch
from accord.process.worker import claim, drain, pending_count, process
from accord.profiles.service import find_profile
from accord.store.db import Store

LEASE = timedelta(seconds=60)


def event(n: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "track",
        "event": "Viewed",
        "messageId": f"m{n}",
        "anonymousId": f"a{n % 7}",
        "timestamp": f"2026-11-{1 + n % 20:02d}T10:00:00.000Z",
        "receivedAt": "2026-11-23T00:00:00Z",
    }
    base.update(fields)
    return base


def store_events(store: Store, keys: Bootstrap, events: list[dict[str, Any]]) -> None:
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(store, source=source, events=events, gate=KeepEverything(), received_at=utcnow())


def lake_ids(settings: Settings) -> list[str]:
    files = visible_files(settings.resolved_lake_url())
    return [r[0] for r in duckdb.read_parquet(files).select("message_id").fetchall()]


def test_drain_processes_everything_once(store: Store, keys: Bootstrap, settings: Settings) -> None:
    store_events(store, keys, [event(n) for n in range(120)])
    lake = settings.resolved_lake_url()
    assert drain(store, lake_url=lake, batch_size=50, lease=LEASE) == 120
    assert drain(store, lake_url=lake, batch_size=50, lease=LEASE) == 0
    assert pending_count(store) == 0
    assert sorted(lake_ids(settings)) == sorted(f"m{n}" for n in range(120))
    with store.read() as conn:
        profiles = conn.execute(select(func.count(func.distinct(inbox.c.profile_id)))).scalar()
    assert profiles == 7


def test_identify_traits_are_latest_by_event_time(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    newer = event(
        1,
        type="identify",
        userId="u1",
        timestamp="2026-11-20T10:00:00Z",
        traits={"plan": "pro", "email": "Ann@Example.com"},
    )
    older = event(
        2,
        type="identify",
        userId="u1",
        timestamp="2026-11-10T10:00:00Z",
        traits={"plan": "free", "city": "Turin"},
    )
    store_events(store, keys, [newer, older])
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=1, lease=LEASE)
    with store.read() as conn:
        profile = find_profile(
            conn, business_id=keys.business_id, kind="email", value="ann@example.com"
        )
    assert profile.traits == {"plan": "pro", "email": "Ann@Example.com", "city": "Turin"}
    assert profile.first_seen == datetime(2026, 11, 10, 10, tzinfo=UTC)
    assert {(i.kind, i.value) for i in profile.identifiers} == {
        ("user_id", "u1"),
        ("anonymous_id", "a1"),
        ("anonymous_id", "a2"),
        ("email", "ann@example.com"),
    }
    assert [e["messageId"] for e in profile.recent_events] == ["m2", "m1"]


def test_alias_links_previous_id(store: Store, keys: Bootstrap, settings: Settings) -> None:
    store_events(
        store,
        keys,
        [
            event(1, anonymousId="anon-1"),
            event(2, type="alias", anonymousId=None, userId="u9", previousId="anon-1"),
        ],
    )
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=10, lease=LEASE)
    with store.read() as conn:
        by_user = find_profile(conn, business_id=keys.business_id, kind="user_id", value="u9")
        by_anon = find_profile(
            conn, business_id=keys.business_id, kind="anonymous_id", value="anon-1"
        )
    assert by_user.id == by_anon.id


def test_a_batch_interrupted_after_the_lake_write_is_redone_without_duplicates(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    store_events(
        store, keys, [event(n, type="identify", userId="u", traits={"n": n}) for n in range(30)]
    )
    lake = settings.resolved_lake_url()
    first = claim(store, batch_size=100, lease=LEASE)
    assert first is not None
    # The worker died after writing the lake files and before committing profiles.
    write_batch(
        lake,
        batch_id=first.batch_id,
        rows=[
            (r.business_id, lake_row(r.seq, r.source_id, orjson.loads(r.payload)))
            for r in first.rows
        ],
    )
    # A new worker does not touch a claim still within its lease ...
    assert claim(store, batch_size=100, lease=LEASE) is None
    # ... but takes it over when it knows the old worker is gone.
    again = claim(store, batch_size=100, lease=LEASE, take_over_all=True)
    assert again is not None and again.batch_id == first.batch_id
    assert [r.seq for r in again.rows] == [r.seq for r in first.rows]
    assert process(store, again, lake_url=lake) == 30
    assert sorted(lake_ids(settings)) == sorted(f"m{n}" for n in range(30))
    # Finishing the stale copy of the same batch changes nothing more.
    assert process(store, first, lake_url=lake) == 0
    assert len(lake_ids(settings)) == 30


def test_a_claim_past_its_lease_is_taken_over(store: Store, keys: Bootstrap) -> None:
    store_events(store, keys, [event(1)])
    first = claim(store, batch_size=10, lease=LEASE)
    assert first is not None
    with store.write() as conn:
        conn.execute(update(inbox).values(claimed_at=utcnow() - LEASE - timedelta(seconds=1)))
    again = claim(store, batch_size=10, lease=LEASE)
    assert again is not None and again.batch_id == first.batch_id


def test_concurrent_workers_process_each_event_once(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    # Shared identifiers across events make the workers race on the same profiles.
    store_events(store, keys, [event(n, userId=f"u{n % 5}") for n in range(600)])
    lake = settings.resolved_lake_url()
    done: list[int] = []

    def work() -> None:
        done.append(drain(store, lake_url=lake, batch_size=40, lease=LEASE))

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert sum(done) == 600
    ids = lake_ids(settings)
    assert len(ids) == len(set(ids)) == 600
    with store.read() as conn:
        profiles = conn.execute(select(func.count(func.distinct(inbox.c.profile_id)))).scalar()
    assert profiles == 5


def test_processed_rows_are_purged_after_retention(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    store_events(store, keys, [event(n) for n in range(3)])
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=10, lease=LEASE)
    assert purge_processed(store, older_than=timedelta(days=1)) == 0
    with store.write() as conn:
        conn.execute(update(inbox).values(processed_at=utcnow() - timedelta(days=2)))
    assert purge_processed(store, older_than=timedelta(days=1)) == 3


class DropMarketing:
    def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision:
        if event.get("event") == "Ad Clicked":
            return GateDecision(keep=False, reason="no marketing consent")
        return GateDecision(keep=True, strip=("ip",))


def test_the_consent_gate_drops_and_strips_before_storage(store: Store, keys: Bootstrap) -> None:
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    result = append(
        store,
        source=source,
        gate=DropMarketing(),
        received_at=utcnow(),
        events=[
            event(1, event="Ad Clicked"),
            event(2, context={"ip": "192.0.2.1", "locale": "it"}),
        ],
    )
    assert (result.received, result.stored, result.dropped_by_consent) == (2, 1, 1)
    with store.read() as conn:
        payload = conn.execute(select(inbox.c.payload)).scalar_one()
    assert '"ip"' not in payload and '"locale":"it"' in payload


def test_a_batch_interrupted_between_profile_chunks_is_finished_whole(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    from accord.process.pipeline import default_steps
    from accord.process.worker import PROFILE_CHUNK, apply_chunk

    total = PROFILE_CHUNK * 2 + 10
    store_events(store, keys, [event(n, userId=f"u{n % 3}") for n in range(total)])
    lake = settings.resolved_lake_url()
    first = claim(store, batch_size=total, lease=LEASE)
    assert first is not None
    events = [orjson.loads(r.payload) for r in first.rows]
    # The worker committed its first chunk of profile changes, then died.
    pairs = list(zip(first.rows, events, strict=True))
    assert apply_chunk(store, pairs[:PROFILE_CHUNK], default_steps()) == PROFILE_CHUNK
    again = claim(store, batch_size=total, lease=LEASE, take_over_all=True)
    assert again is not None and again.batch_id == first.batch_id
    assert len(again.rows) == total
    assert process(store, again, lake_url=lake) == total - PROFILE_CHUNK
    ids = lake_ids(settings)
    assert len(ids) == len(set(ids)) == total
    assert pending_count(store) == 0
