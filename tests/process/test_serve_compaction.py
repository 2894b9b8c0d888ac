"""Lake compaction as `accord serve` alone does it: 100,000 events sent in small batches,
compacted by the `lake.compact` job to one file per partition (business and day), the
same rows on DuckDB and Spark before and after, and a server killed mid-way loses and
doubles nothing."""

from __future__ import annotations

import base64
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from accord.accounts.service import bootstrap
from accord.engine.connection import connect
from accord.engine.lake import events
from accord.lake.service import visible_files
from accord.store.db import open_store
from tests.serverproc import ServerProcess, server_env

pytestmark = [pytest.mark.slow, pytest.mark.spark]

EVENTS = 100_000
PER_REQUEST = 500
DAYS = 4


def _batches(start: datetime) -> list[list[dict[str, Any]]]:
    rng = random.Random(15)
    payload = [
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"m-{i:06d}",
            "anonymousId": f"a-{rng.randrange(5000)}",
            "timestamp": (start + timedelta(seconds=rng.randrange(DAYS * 86400))).isoformat(),
            "properties": {"sku": f"sku-{rng.randrange(300)}"},
        }
        for i in range(EVENTS)
    ]
    return [payload[i : i + PER_REQUEST] for i in range(0, EVENTS, PER_REQUEST)]


def _duckdb_ids(lake_url: str, business_id: str) -> Counter[str]:
    table = events(connect("duckdb://"), lake_url, business_id=business_id)
    return Counter(table.select("message_id").to_pyarrow().column(0).to_pylist())


def _files_per_partition(lake_url: str) -> Counter[str]:
    return Counter(path.rsplit("/", 1)[0] for path in visible_files(lake_url))


def _wait_for_job(server: ServerProcess, admin: dict[str, str], since: datetime) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = httpx.get(f"{server.base_url}/api/jobs", headers=admin, timeout=10).json()
        (job,) = [j for j in jobs if j["name"] == "lake.compact"]
        finished = job["last_finished_at"]
        if finished and datetime.fromisoformat(finished) >= since and not job["running"]:
            assert job["last_status"] == "succeeded", job
            return
        time.sleep(0.5)
    raise TimeoutError(f"lake.compact did not finish:\n{server.log_tail()}")


def test_compaction_through_serve_keeps_every_row_once(tmp_path: Path, database_url: str) -> None:
    spark_backend = connect("pyspark://local[2]")
    store = open_store(database_url)
    keys = bootstrap(store, name="Compaction Shop")
    store.dispose()
    lake_url = str(tmp_path / "lake")
    # A short lease: on PostgreSQL the killed worker's hold on the job runs out sooner.
    env = server_env(
        data_dir=tmp_path / "data",
        database_url=database_url,
        lake_url=lake_url,
        extra={"ACCORD_SCHEDULER_LEASE_SECONDS": "6"},
    )
    auth = {"Authorization": "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()}
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    start = (datetime.now(UTC) - timedelta(days=DAYS + 1)).replace(microsecond=0)
    server = ServerProcess(env, log_path=tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:

            def post(batch: list[dict[str, Any]]) -> int:
                return client.post("/v1/batch", headers=auth, json={"batch": batch}).status_code

            # Four at a time, as a busy site's servers would send.
            with ThreadPoolExecutor(max_workers=4) as pool:
                assert set(pool.map(post, _batches(start))) == {200}
        server.wait_drained(timeout=300)
        before = _duckdb_ids(lake_url, keys.business_id)
        assert len(before) == EVENTS and set(before.values()) == {1}
        assert max(_files_per_partition(lake_url).values()) > 1
        spark_before = Counter(
            events(spark_backend, lake_url, business_id=keys.business_id)
            .select("message_id")
            .to_pyarrow()
            .column(0)
            .to_pylist()
        )
        assert spark_before == before

        # Killed while compacting (at a random moment of its run), then started again.
        asked = datetime.now(UTC)
        ran = httpx.post(f"{server.base_url}/api/jobs/lake.compact/run", headers=admin)
        assert ran.status_code == 202
        time.sleep(random.Random(7).uniform(0.5, 2.0))
        server.kill()
        assert _duckdb_ids(lake_url, keys.business_id) == before
        server = ServerProcess(env, log_path=tmp_path / "server.log").start()
        asked = datetime.now(UTC)
        ran = httpx.post(f"{server.base_url}/api/jobs/lake.compact/run", headers=admin)
        assert ran.status_code == 202
        _wait_for_job(server, admin, asked)
    finally:
        server.stop()
    # One visible file per partition (superseded ones are deleted after their grace).
    assert set(_files_per_partition(lake_url).values()) == {1}
    assert _duckdb_ids(lake_url, keys.business_id) == before
    spark_after = Counter(
        events(spark_backend, lake_url, business_id=keys.business_id)
        .select("message_id")
        .to_pyarrow()
        .column(0)
        .to_pylist()
    )
    assert spark_after == before
