"""Store work from async handlers: run in the thread pool, in one read or write transaction.

Pages and JSON APIs alike call these, so they live beside the app state rather than in
the UI shell (`ui.py`), which the APIs do not import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from accord.web.state import AppState

T = TypeVar("T")


async def read(state: AppState, work: Callable[[Connection], T]) -> T:
    """`work` on a read connection, off the event loop."""

    def run() -> T:
        with state.store.read() as conn:
            return work(conn)

    return await run_in_threadpool(run)


async def write(state: AppState, work: Callable[[Connection], T]) -> T:
    """`work` in one write transaction, off the event loop."""

    def run() -> T:
        with state.store.write() as conn:
            return work(conn)

    return await run_in_threadpool(run)
