"""The profile pages of the admin UI: the directory (`directory`), one person's 360° page
(`person`), and their subject-rights export and erasure (`rights`)."""

from __future__ import annotations

from fastapi import APIRouter

from accord.profiles.pages import directory, person, rights

router = APIRouter(include_in_schema=False)
# The rights routes sit under /profiles/{id}/…: they are included before the person page.
for area in (directory, rights, person):
    router.include_router(area.router)

nav = [*directory.nav, *person.nav, *rights.nav]
