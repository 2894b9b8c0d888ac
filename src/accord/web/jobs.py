"""Asking the scheduler from an HTTP handler to run a job soon (a new audience is computed
at once, not at its first scheduled refresh)."""

from __future__ import annotations

from accord.process import job_admin, scheduler
from accord.web import store_work
from accord.web.state import AppState


def _run_soon(state: AppState, business_id: str, name: str, target: str | None) -> None:
    if name not in state.job_kinds:
        return
    scheduler.sync(state.store, state.job_kinds, settings=state.settings, business_id=business_id)
    with state.store.write() as conn:
        job_admin.request_run(
            conn, state.job_kinds, business_id=business_id, name=name, target=target
        )


async def run_soon(
    state: AppState, *, business_id: str, name: str, target: str | None = None
) -> None:
    """Make a job due now; the worker's scheduler starts it within its poll interval."""
    await store_work.run(_run_soon, state, business_id, name, target)
