"""Acceptance: SIGKILL the server during a 100k-event batch load, restart it, finish the load.

Every acknowledged event must be stored exactly once, none lost or doubled: in the
inbox, in the lake and in the profiles, although the process dies both while
requests are in flight and while the inline worker is half-way through a batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import httpx
import orjson
import pyarrow.dataset as ds
import pytest
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap
from accord.collect.models import inbox
from accord.core.clock import iso
from accord.lake.service import visible_files
from accord.profiles.models import profile_identifiers, profiles
from accord.store.db import Store
from tests.serverproc import ServerProcess, server_env

T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(700)]

EVENTS = 100_000
BATCH = 500
USERS = 500
LOADERS = 4
# Kill once this share of the batches is acknowledged, with requests still in flight.
KILL_AT = 0.4
LOAD_TIMEOUT = 120.0
# The worker resolves identities, keeps every event per profile and computes traits:
# about 440 events/s on the 2 shared cores with the load running beside it.
DRAIN_TIMEOUT = 400.0
# A claim left by a dead process is taken over after the lease (PostgreSQL) or at
# once on restart (SQLite); a short lease keeps the test quick.
LEASE_SECONDS = 3
# Tries at killing the worker between a claim's lake write and its commit.
KILL_ATTEMPTS = 5


def make_events(now: datetime) -> list[dict[str, Any]]:
    """Valid, distinct events over USERS users: one profile each, three identifiers each."""
    events = []
    for i in range(EVENTS):
        user, round_ = i % USERS, i // USERS
        base: dict[str, Any] = {
            "messageId": f"crash-{i:06d}",
            "userId": f"user-{user}",
            "anonymousId": f"anon-{user}",
            # Spread over four days, so a claim writes several lake partitions.
            "timestamp": iso(now - timedelta(seconds=(i * 7919) % (4 * 86400))),
            "context": {"library": {"name": "crash-loader", "version": "1"}},
        }
        if round_ % 10 == 0:
            base |= {
                "type": "identify",
                "traits": {"email": f"user-{user}@example.com", "seen": i},
            }
        elif round_ % 10 == 1:
            base |= {
                "type": "page",
                "name": "Product",
                "properties": {"url": f"https://shop.example.com/p/{i}", "path": f"/p/{i}"},
            }
        else:
            base |= {
                "type": "track",
                "event": "Product Viewed",
                "properties": {"product_id": f"sku-{i % 97}", "price": i % 500 / 10},
            }
        events.append(base)
    return events


@dataclass
class Loader:
    """Posts batches over keep-alive connections and remembers which ones got a 200."""

    server: ServerProcess
    write_key: str
    batches: list[list[dict[str, Any]]]
    acked: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    rejected: dict[int, str] = field(default_factory=dict)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, index: int) -> bytes:
        # Like a real client, every attempt carries its own sentAt.
        return orjson.dumps({"batch": self.batches[index], "sentAt": iso(datetime.now(UTC))})

    def send(
        self, indices: list[int], *, threads: int, stop_on_error: bool
    ) -> list[threading.Thread]:
        """Start `threads` senders over `indices`; a sender stops at its first transport error
        when `stop_on_error` (the server is gone), else it retries that batch a few times."""
        work: queue.Queue[int] = queue.Queue()
        for index in indices:
            work.put(index)

        def run() -> None:
            with httpx.Client(
                base_url=self.server.base_url, auth=(self.write_key, ""), timeout=60.0
            ) as client:
                while True:
                    try:
                        index = work.get_nowait()
                    except queue.Empty:
                        return
                    for attempt in range(1 if stop_on_error else 3):
                        with self.lock:
                            self.in_flight += 1
                        try:
                            response = client.post(
                                "/v1/batch",
                                content=self.body(index),
                                headers={"Content-Type": "application/json"},
                            )
                        except httpx.TransportError:
                            if stop_on_error or attempt == 2:
                                with self.lock:
                                    self.failed.add(index)
                                if stop_on_error:
                                    return
                            continue
                        finally:
                            with self.lock:
                                self.in_flight -= 1
                        with self.lock:
                            if response.status_code == 200:
                                self.acked.add(index)
                                self.failed.discard(index)
                            else:
                                self.rejected[index] = f"{response.status_code} {response.text}"
                        break

        senders = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
        for sender in senders:
            sender.start()
        return senders


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"loader still running after {timeout}s"


def wait_for(
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.01
) -> T:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return value


def is_server(pid: int) -> bool:
    """The pid runs `accord serve` itself (not a shell or launcher around it)."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return b"accord.cli" in cmdline and b"serve" in cmdline


def claimed_unprocessed(store: Store) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(inbox)
                .where(inbox.c.batch_id.is_not(None), inbox.c.processed_at.is_(None))
            ).scalar_one()
        )


def unprocessed_in(store: Store, batch_id: str) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(inbox)
                .where(inbox.c.batch_id == batch_id, inbox.c.processed_at.is_(None))
            ).scalar_one()
        )


def half_done_claim(store: Store, lake: Path) -> str | None:
    """A claim whose lake files are written while its rows are not yet processed."""
    with store.read() as conn:
        if not conn.execute(
            select(inbox.c.seq).where(inbox.c.processed_at.is_(None)).limit(1)
        ).first():
            raise AssertionError("the inbox drained before the worker could be killed mid-claim")
        claimed = conn.execute(
            select(inbox.c.batch_id)
            .where(inbox.c.processed_at.is_(None), inbox.c.batch_id.is_not(None))
            .distinct()
        ).scalars()
        for batch_id in claimed:
            if any(lake.glob(f"business_id=*/day=*/part-{batch_id}.parquet")):
                return str(batch_id)
    return None


def pending(store: Store) -> int:
    with store.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.processed_at.is_(None))
            ).scalar_one()
        )


def test_sigkill_mid_load_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str, store: Store, opt_out_keys: Bootstrap
) -> None:
    # The load sends identifies with no consent and no location: the business keeps
    # events of unknown location (the geo rule XX), as a business can.
    keys = opt_out_keys
    started = time.monotonic()
    events = make_events(datetime.now(UTC).replace(microsecond=0))
    batches = [events[i : i + BATCH] for i in range(0, EVENTS, BATCH)]
    all_ids = {e["messageId"] for e in events}
    assert len(all_ids) == EVENTS
    lake = tmp_path / "lake"
    env = server_env(
        data_dir=tmp_path,
        database_url=database_url,
        lake_url=str(lake),
        extra={
            # This test is about collection and the inbox worker under kills; scheduled
            # jobs (retraining after 10k events, refreshes, compaction) would only take
            # the cores from it. They have kill tests of their own in tests/process.
            "ACCORD_SCHEDULER_ENABLED": "false",
            "ACCORD_SQLITE_SYNCHRONOUS": "FULL",
            "ACCORD_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        },
    )
    server = ServerProcess(env, log_path=tmp_path / "server.log")
    report: dict[str, Any] = {}
    try:
        # 1. Load with the inline worker on; SIGKILL once 40 % is acknowledged.
        server.start()
        loader = Loader(server, keys.write_key, batches)
        senders = loader.send(list(range(len(batches))), threads=LOADERS, stop_on_error=True)
        kill_at = int(len(batches) * KILL_AT)
        wait_for(
            lambda: len(loader.acked) >= kill_at and loader.in_flight > 0,
            LOAD_TIMEOUT,
            f"{kill_at} acknowledged batches",
            interval=0.002,
        )
        assert is_server(server.pid)
        report["in_flight_at_kill"] = loader.in_flight
        server.kill()
        report["claimed_at_kill"] = claimed_unprocessed(store)
        report["first_kill_s"] = time.monotonic() - started
        join_all(senders, 60.0)
        assert loader.rejected == {}
        acked_before_kill = set(loader.acked)
        report["acked_before_kill"] = len(acked_before_kill)
        report["failed_at_kill"] = len(loader.failed)
        assert kill_at <= len(acked_before_kill) < len(batches)
        assert loader.failed, "no request was cut off by the kill"
        # Every acknowledged event is durable at the moment of the kill, before any retry.
        with store.read() as conn:
            stored_at_kill = set(conn.execute(select(inbox.c.message_id)).scalars())
        report["stored_at_kill"] = len(stored_at_kill)
        acked_ids = {e["messageId"] for i in acked_before_kill for e in batches[i]}
        assert acked_ids <= stored_at_kill

        # 2. Restart on the same data and re-send every batch without a 200. This
        #    server collects only (`--no-worker`), so that whatever the speed of this
        #    machine a backlog is left for the worker to be killed in the middle of.
        server.worker = False
        server.start()
        unacked = [i for i in range(len(batches)) if i not in acked_before_kill]
        join_all(loader.send(unacked, threads=LOADERS, stop_on_error=False), LOAD_TIMEOUT)
        assert loader.rejected == {}
        assert loader.failed == set()
        assert loader.acked == set(range(len(batches)))
        server.stop()
        report["load_done_s"] = time.monotonic() - started
        report["pending_after_load"] = pending(store)
        assert report["pending_after_load"] >= EVENTS - len(acked_before_kill) * BATCH

        # 3. With the worker on again, kill it once a claim's lake files are written
        #    but its rows not yet marked processed: the moment a crash could double
        #    the lake. The dead worker's claims are taken over after each restart.
        server.worker = True
        server.start()
        caught = None
        for attempt in range(1, KILL_ATTEMPTS + 1):
            batch_id = wait_for(
                lambda: half_done_claim(store, lake),
                60.0,
                "a claim with its lake files written",
                interval=0.02,
            )
            server.kill()
            if unprocessed_in(store, batch_id) > 0:
                caught = batch_id
                report["second_kill_attempts"] = attempt
                report["claim_at_second_kill"] = unprocessed_in(store, batch_id)
                report["pending_at_second_kill"] = pending(store)
                break
            server.start()  # the worker committed the claim before the kill landed
        assert caught is not None, "never killed the worker between lake write and commit"
        server.start()
        server.wait_drained(DRAIN_TIMEOUT)
        report["drained_s"] = time.monotonic() - started
    finally:
        server.kill()
    print(f"\ncrash recovery on {store.dialect}: {report}")

    # (a) The inbox: one row per messageId sent, all processed and linked to a profile.
    with store.read() as conn:
        rows = conn.execute(
            select(inbox.c.message_id, inbox.c.seq, inbox.c.processed_at, inbox.c.profile_id)
        ).all()
    assert len(rows) == EVENTS
    assert {r.message_id for r in rows} == all_ids
    assert all(r.processed_at is not None and r.profile_id is not None for r in rows)
    seq_of = {r.message_id: r.seq for r in rows}

    # (b) The lake: every event exactly once, from the inbox row that was stored.
    # Through the visible files: the scheduler's lake.compact job may have merged them.
    table = ds.dataset(
        visible_files(str(lake)),
        format="parquet",
        partitioning=ds.partitioning(flavor="hive"),
        partition_base_dir=str(lake),
    ).to_table(columns=["message_id", "inbox_seq", "user_id", "business_id"])
    counts = Counter(table.column("message_id").to_pylist())
    doubled = {m: n for m, n in counts.items() if n > 1}
    assert doubled == {}, f"{len(doubled)} messageIds are in the lake more than once"
    assert set(counts) == all_ids
    assert table.num_rows == EVENTS
    assert (
        dict(
            zip(
                table.column("message_id").to_pylist(),
                table.column("inbox_seq").to_pylist(),
                strict=True,
            )
        )
        == seq_of
    )
    assert set(table.column("business_id").to_pylist()) == {keys.business_id}
    # The same through the files the analytics engine reads.
    total, distinct = duckdb.read_parquet(
        visible_files(str(lake)), hive_partitioning=True
    ).aggregate("count(*), count(DISTINCT message_id)").fetchone() or (0, 0)
    assert (total, distinct) == (EVENTS, EVENTS)
    # A retried claim rewrites its own files, so no half-written file is left behind.
    assert list(lake.rglob("*.tmp")) == []

    # (c) Profiles: one per user, each with exactly its three identifiers.
    with store.read() as conn:
        profile_ids = set(conn.execute(select(profiles.c.id)).scalars())
        identifiers = conn.execute(
            select(
                profile_identifiers.c.kind,
                profile_identifiers.c.value,
                profile_identifiers.c.profile_id,
            )
        ).all()
    assert len(profile_ids) == USERS
    by_profile: dict[str, set[tuple[str, str]]] = {}
    for kind, value, profile_id in identifiers:
        by_profile.setdefault(profile_id, set()).add((kind, value))
    assert set(by_profile) == profile_ids, "a profile without identifiers was created"
    assert sorted(by_profile.values(), key=sorted) == sorted(
        (
            {
                ("user_id", f"user-{u}"),
                ("anonymous_id", f"anon-{u}"),
                ("email", f"user-{u}@example.com"),
            }
            for u in range(USERS)
        ),
        key=sorted,
    )
    profile_of_user = {v: p for k, v, p in identifiers if k == "user_id"}
    assert {r.profile_id for r in rows} == profile_ids
    for row in rows:
        user = f"user-{int(row.message_id.split('-')[1]) % USERS}"
        assert row.profile_id == profile_of_user[user]
