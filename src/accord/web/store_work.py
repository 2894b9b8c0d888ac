"""Store work from async handlers: run in the thread pool, in one read or write transaction.

The one way for an `async def` handler to touch the store (docs/development.md): `read` and
`write` open the transaction themselves; `run` is for a sync function that opens its own
(an import, a page render) or does other blocking work (files, the engine). Handlers with
nothing to await are plain `def` instead, which FastAPI runs in the thread pool.

Pages and JSON APIs alike call these, so they live beside the app state rather than in
the UI shell (`ui.py`), which the APIs do not import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from accord.accounts.audit import record_action
from accord.web.state import AppState

if TYPE_CHECKING:
    from accord.web.auth import Caller

T = TypeVar("T")
P = ParamSpec("P")


async def read(state: AppState, work: Callable[[Connection], T]) -> T:
    """`work` on a read connection, off the event loop."""

    def run_work() -> T:
        with state.store.read() as conn:
            return work(conn)

    return await run_in_threadpool(run_work)


async def write(state: AppState, work: Callable[[Connection], T]) -> T:
    """`work` in one write transaction, off the event loop."""

    def run_work() -> T:
        with state.store.write() as conn:
            return work(conn)

    return await run_in_threadpool(run_work)


async def run(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A blocking call that manages its own transactions (or none), off the event loop."""
    return await run_in_threadpool(partial(work, *args, **kwargs))


def record(conn: Connection, caller: Caller, action: str, **details: Any) -> None:
    """Note in the business's audit log that `caller` did `action` (in `conn`'s
    transaction), through `accounts.audit.record_action`, the one writer that pages,
    API routes and CLI commands share."""
    record_action(
        conn,
        business_id=caller.business_id,
        actor=caller.actor,
        action=action,
        ip=caller.ip,
        **details,
    )


async def audited(
    state: AppState,
    caller: Caller,
    action: str,
    work: Callable[[Connection], T],
    **details: Any,
) -> T:
    """`work` in one write transaction with its audit-log entry (`record`)."""

    def both(conn: Connection) -> T:
        result = work(conn)
        record(conn, caller, action, **details)
        return result

    return await write(state, both)
