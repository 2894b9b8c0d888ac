"""Grouped appends: concurrent requests share commits and each gets its own answer."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from accord.accounts.models import Bootstrap
from accord.collect.inbox import InboxWriter
from accord.collect.models import inbox
from accord.core.clock import utcnow
from accord.store.db import Store


def rows(keys: Bootstrap, ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "business_id": keys.business_id,
            "source_id": keys.source_id,
            "message_id": m,
            "type": "track",
            "received_at": utcnow(),
            "payload": "{}",
        }
        for m in ids
    ]


def test_concurrent_requests_are_all_stored_and_counted(store: Store, keys: Bootstrap) -> None:
    writer = InboxWriter(store=store)
    writer.start()
    answers: dict[int, int] = {}

    def send(n: int) -> None:
        # Every request repeats one id shared by all, so only one of them stores it.
        answers[n] = writer.insert(rows(keys, [f"r{n}-a", f"r{n}-b", "shared"]))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    writer.stop()
    assert sum(answers.values()) == 40 * 2 + 1
    assert sorted(set(answers.values())) in ([2, 3], [3])
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar() == 81


def test_a_failed_commit_fails_every_request_of_its_group(store: Store, keys: Bootstrap) -> None:
    writer = InboxWriter(store=store)
    writer.start()
    bad = rows(keys, ["x"])
    bad[0]["type"] = None  # violates NOT NULL
    with pytest.raises(Exception, match=r"(?i)null"):
        writer.insert(bad)
    # The writer keeps serving after a failure.
    assert writer.insert(rows(keys, ["y"])) == 1
    writer.stop()
