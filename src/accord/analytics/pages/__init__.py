"""The report pages of the admin UI: the business overview (`/app`), the event volume,
funnels, paths, retention, attribution, spend and the dashboard of saved reports."""

from __future__ import annotations

from fastapi import APIRouter

from accord.analytics.pages import attribution, dashboard, overview, reports, spend, volume
from accord.web.ui import NavEntry

router = APIRouter(include_in_schema=False)
for area in (overview, volume, reports, attribution, spend, dashboard):
    router.include_router(area.router)

nav = [
    NavEntry("Overview", "/app", "assets.read", "Business", 10),
    NavEntry("Event volume", "/analytics/volume", "reports.read", "Customers", 11),
    NavEntry("Dashboard", "/analytics/dashboard", "analytics.read", "Customers", 12),
    NavEntry("Funnels", "/analytics/funnels", "analytics.read", "Customers", 13),
    NavEntry("Paths", "/analytics/paths", "analytics.read", "Customers", 14),
    NavEntry("Retention", "/analytics/retention", "analytics.read", "Customers", 15),
    NavEntry("Attribution", "/analytics/attribution", "analytics.read", "Customers", 16),
    NavEntry("Spend", "/analytics/spend", "analytics.read", "Customers", 17),
]
