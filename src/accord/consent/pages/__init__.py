"""The consent pages of the admin UI: set-up (`setup`) and what it produced (`insight`)."""

from __future__ import annotations

from fastapi import APIRouter

from accord.consent.pages import insight, setup

router = APIRouter(include_in_schema=False)
for area in (setup, insight):
    router.include_router(area.router)

nav = [*setup.nav, *insight.nav]
