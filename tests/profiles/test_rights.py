"""Subject rights: export everything, erase everywhere, and stay erased after a replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from sqlalchemy import String, Text, select

from accord.accounts.models import Bootstrap
from accord.core.errors import NotFound
from accord.core.settings import Settings
from accord.profiles.rights import ErasureReport, erase_subject, export_subject
from accord.store.db import Store
from accord.store.schema import metadata
from tests.identity.helpers import assert_conserved, ev, groups, linked_events, process, profile_of

ERASED = ("ann-user", "ann-phone", "ann@example.org", "+33612345678", "ann-laptop")


def _events() -> list[dict[str, Any]]:
    return [
        ev(
            minute=1,
            anonymousId="ann-phone",
            event="Product Viewed",
            properties={"product_id": "p1"},
            timestamp="2026-11-09T23:59:00Z",
        ),
        ev(
            "identify",
            2,
            anonymousId="ann-phone",
            userId="ann-user",
            traits={"email": "Ann@Example.org", "phone": "+33 6 12 34 56 78"},
        ),
        ev(
            minute=3,
            userId="ann-user",
            anonymousId="ann-laptop",
            event="Order Completed",
            properties={"revenue": 20},
        ),
        ev(
            minute=4,
            anonymousId="bob-pc",
            userId="bob",
            event="Order Completed",
            properties={"revenue": 5},
        ),
    ]


def _scan_store(store: Store) -> list[str]:
    """Every text value anywhere in the state store that names the erased person."""
    found = []
    with store.read() as conn:
        for table in metadata.sorted_tables:
            text_columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            if not text_columns:
                continue
            for row in conn.execute(select(*text_columns)):
                for value in row:
                    if isinstance(value, str) and any(e.lower() in value.lower() for e in ERASED):
                        found.append(f"{table.name}: {value[:80]}")
    return found


def _scan_lake(lake: str) -> list[str]:
    files = sorted(Path(lake).rglob("*.parquet"))
    found = []
    for file in files:
        for row in pq.ParquetFile(file).read().to_pylist():
            text = orjson.dumps([str(v) for v in row.values()]).decode().lower()
            found += [f"{file.name}: {e}" for e in ERASED if e.lower() in text]
    return found


def test_export_then_erase_everywhere(store: Store, keys: Bootstrap, settings: Settings) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    sent = _events()
    process(store, keys, lake, sent)
    ann = profile_of(store, biz, "user_id:ann-user")
    assert _scan_lake(lake) and _scan_store(store)

    def records(
        conn: Any, *, business_id: str, anonymous_ids: list[str], user_ids: list[str]
    ) -> list[dict[str, Any]]:
        return [{"purpose": "analytics", "granted": True, "user_ids": user_ids}]

    with store.read() as conn:
        exported = export_subject(conn, business_id=biz, profile_id=ann, consent_records=records)
    assert len(exported.events) == 3
    assert {i["value"] for i in exported.identifiers} == {
        "ann-user",
        "ann-phone",
        "ann-laptop",
        "ann@example.org",
        "+33612345678",
    }
    assert exported.consent_records == [
        {"purpose": "analytics", "granted": True, "user_ids": ["ann-user"]}
    ]
    assert exported.profile["computed"]["total_spend"] == 20

    heard: list[ErasureReport] = []
    report = erase_subject(
        store, business_id=biz, profile_id=ann, lake_url=lake, on_erased=heard.append
    )
    assert heard == [report]
    assert (report.identifiers, report.events, report.inbox_rows) == (5, 3, 3)
    # Two days hold Ann's events: both partitions were rewritten.
    assert report.lake_files_rewritten == 2
    assert len(report.identifier_hashes) == 5
    assert _scan_store(store) == []
    assert _scan_lake(lake) == []
    assert groups(store, biz) == {frozenset({"user_id:bob", "anonymous_id:bob-pc"})}
    assert_conserved(store, biz, sent)

    # Replaying the original events (new messageIds, as a re-import would) and a late
    # event from Ann's phone bring nothing back; Bob's replayed event comes in.
    replay = [{**e, "messageId": e["messageId"] + "-again"} for e in sent]
    late = ev(minute=9, anonymousId="ann-phone", event="Product Viewed")
    process(store, keys, lake, [*replay, late])
    assert _scan_store(store) == []
    assert _scan_lake(lake) == []
    assert len(linked_events(store, biz)[profile_of(store, biz, "user_id:bob")]) == 2
    with store.read() as conn, pytest.raises(NotFound):
        export_subject(conn, business_id=biz, profile_id=ann)


def test_export_and_erase_through_api_and_cli(
    client: Any,
    keys: Bootstrap,
    store: Store,
    settings: Settings,
    tmp_path: Path,
    database_url: str,
) -> None:
    from tests.test_cli import Cli

    biz, lake = keys.business_id, settings.resolved_lake_url()
    process(store, keys, lake, _events())
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    ann = profile_of(store, biz, "user_id:ann-user")
    exported = client.get(f"/api/profiles/{ann}/export", headers=admin)
    assert exported.status_code == 200, exported.text
    # The consent ledger is wired in; Ann has made no decision in it.
    assert exported.json()["consent_records"] == []
    assert len(exported.json()["events"]) == 3

    cli = Cli(tmp_path, database_url)
    cli.env["ACCORD_LAKE_URL"] = lake
    by_email = cli.json("profiles", "export", "email:ANN@example.org", "--business-id", biz)
    assert by_email["identifiers"] == exported.json()["identifiers"]
    cli("profiles", "erase", "email:nobody@example.org", "--business-id", biz, "--yes", code=1)
    bob = profile_of(store, biz, "user_id:bob")
    assert cli.json("profiles", "erase", bob, "--business-id", biz, "--yes")["events"] == 1

    erased = client.delete(f"/api/profiles/{ann}", headers=admin)
    assert erased.status_code == 200, erased.text
    assert erased.json()["events"] == 3
    assert client.delete(f"/api/profiles/{ann}", headers=admin).status_code == 404
    assert _scan_lake(lake) == []
    assert groups(store, biz) == set()


def test_an_erasure_during_a_batch_leaves_nothing_in_the_lake(
    store: Store, keys: Bootstrap, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.collect import worker
    from accord.identity.service import add_tombstones

    biz, lake = keys.business_id, settings.resolved_lake_url()
    real_write = worker.write_batch

    def write_then_erase(*args: Any, **kwargs: Any) -> list[str]:
        written = real_write(*args, **kwargs)
        # The erasure stores its tombstones just after this batch wrote its lake files.
        with store.write() as conn:
            add_tombstones(
                conn, business_id=biz, keys=[("anonymous_id", "ann-phone")], erasure_id="era_test"
            )
        return written

    monkeypatch.setattr(worker, "write_batch", write_then_erase)
    process(
        store, keys, lake, [ev(minute=1, anonymousId="ann-phone"), ev(minute=2, anonymousId="bob")]
    )
    assert _scan_lake(lake) == []
    assert groups(store, biz) == {frozenset({"anonymous_id:bob"})}
