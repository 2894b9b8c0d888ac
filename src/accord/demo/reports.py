"""The demo's saved reports: a purchase funnel, the paths after a product view, weekly
retention and last-touch attribution, saved through the saved-reports service and computed
once by the code the `analytics.reports` job runs (the scheduler refreshes them hourly)."""

from __future__ import annotations

from typing import Any

from accord.analytics import reports
from accord.core.clock import utcnow
from accord.store.db import Store

# The generator's visits land with utm_source, utm_medium and utm_campaign (ads, search,
# the newsletter), so last-touch attribution has channels to credit.
KINDS = ("funnels", "paths", "retention", "attribution")


def save_reports(
    store: Store, *, business_id: str, backend: Any, lake_url: str, days: int
) -> dict[str, float] | None:
    """Save the example reports over the demo's `days` and refresh them all once; None
    when every one was saved before (a report the business removed stays removed only
    until the next `accord demo`)."""
    wanted = reports.examples(last_days=days)
    with store.write() as conn:
        have = {(r.kind, r.name) for r in reports.list_reports(conn, business_id=business_id)}
        made = 0
        for kind in KINDS:
            report = wanted[kind]
            if (report.kind, report.name) not in have:
                reports.save(conn, business_id=business_id, data=report)
                made += 1
    if not made:
        return None
    now = utcnow()
    inputs = reports.ReportInputs(
        store=store, backend=backend, lake_url=lake_url, business_id=business_id, today=now.date()
    )
    return reports.refresh_all(inputs, now=now)
