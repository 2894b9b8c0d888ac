"""The lead pages of the admin UI: forms, leads, funnel, magnets, imports (`people`) and
the scoring rules (`scoring`)."""

from __future__ import annotations

from fastapi import APIRouter

from accord.leads.pages import people, scoring

router = APIRouter(include_in_schema=False)
for area in (people, scoring):
    router.include_router(area.router)

nav = [*people.nav, *scoring.nav]
