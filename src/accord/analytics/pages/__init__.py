"""The report pages of the admin UI: the business overview (`/app`), the event volume,
funnels, paths and retention."""

from __future__ import annotations

from fastapi import APIRouter

from accord.analytics.pages import overview, reports, volume
from accord.web.ui import NavEntry

router = APIRouter(include_in_schema=False)
for area in (overview, volume, reports):
    router.include_router(area.router)

nav = [
    NavEntry("Overview", "/app", "assets.read", "Business", 10),
    NavEntry("Event volume", "/analytics/volume", "reports.read", "Customers", 11),
    NavEntry("Funnels", "/analytics/funnels", "analytics.read", "Customers", 12),
    NavEntry("Paths", "/analytics/paths", "analytics.read", "Customers", 13),
    NavEntry("Retention", "/analytics/retention", "analytics.read", "Customers", 14),
]
