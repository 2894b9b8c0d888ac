"""Durable appends to the inbox, alone or grouped: one commit for many concurrent requests."""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import Insert

from accord.collect.models import inbox
from accord.store.db import Store

log = logging.getLogger(__name__)

Row = dict[str, Any]


# One statement per dialect, built once: for a single call, building it cost more than
# running it. RETURNING tells what was inserted, skipping known messageIds, the same way
# on every backend (rowcount is not reliable for executemany).
_INSERTS: dict[str, Insert] = {}


def _insert_statement(store: Store) -> Insert:
    statement = _INSERTS.get(store.dialect)
    if statement is None:
        statement = store.insert_ignoring_conflicts(inbox).returning(
            inbox.c.source_id, inbox.c.message_id
        )
        _INSERTS[store.dialect] = statement
    return statement


def insert_rows(store: Store, rows: list[Row]) -> list[tuple[str, str]]:
    """Insert in one transaction; returns the (source, messageId) pairs really inserted."""
    if not rows:
        return []
    statement = _insert_statement(store)

    def work(conn: Connection) -> list[tuple[str, str]]:
        return [(r.source_id, r.message_id) for r in conn.execute(statement, rows)]

    # Acknowledgements wait on this commit: poll for the lock rather than sleep.
    return store.write_soon(work)


@dataclass
class _Append:
    rows: list[Row]
    done: Future[int] = field(default_factory=Future)


@dataclass
class InboxWriter:
    """One thread commits whatever requests are waiting, together, then answers each.

    Requests no longer queue for the database's write lock one by one: while one
    transaction commits (and fsyncs), the next requests gather and share the next
    commit. Each request's events still commit all together or not at all.
    """

    store: Store
    max_rows: int = 20_000
    _queue: queue.Queue[_Append | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="accord-inbox-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def insert(self, rows: list[Row]) -> int:
        """Block until the rows are committed; returns how many were new."""
        if not rows:
            return 0
        request = _Append(rows)
        self._queue.put(request)
        return request.done.result()

    def _gather(self, first: _Append) -> tuple[list[_Append], bool]:
        group, size = [first], len(first.rows)
        while size < self.max_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
            size += len(item.rows)
        return group, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group, stopping = self._gather(first)
            try:
                inserted = Counter(
                    insert_rows(self.store, [row for item in group for row in item.rows])
                )
            except Exception as exc:
                log.exception("appending %d requests to the inbox failed", len(group))
                for item in group:
                    item.done.set_exception(exc)
                continue
            for item in group:
                stored = 0
                for row in item.rows:
                    key = (row["source_id"], row["message_id"])
                    # A messageId sent twice within one commit counts for the first only.
                    if inserted[key] > 0:
                        inserted[key] -= 1
                        stored += 1
                item.done.set_result(stored)
