"""The report pages of the admin UI: the business overview (`/app`) and the event volume."""

from __future__ import annotations

from fastapi import APIRouter

from accord.analytics.pages import overview, volume
from accord.web.ui import NavEntry

router = APIRouter(include_in_schema=False)
for area in (overview, volume):
    router.include_router(area.router)

nav = [
    NavEntry("Overview", "/app", "assets.read", "Business", 10),
    NavEntry("Event volume", "/analytics/volume", "reports.read", "Customers", 11),
]
