"""The accounts pages of the admin UI, one module per area; `router` and `nav` gather them."""

from __future__ import annotations

from fastapi import APIRouter

from accord.accounts.pages import assets, business, members, security, sign_in
from accord.web.ui import NavEntry

router = APIRouter(include_in_schema=False)
for area in (sign_in, business, members, assets, security):
    router.include_router(area.router)

nav = [
    NavEntry("Assets", "/assets", "assets.read", "Business", 20),
    NavEntry("People", "/people", "accounts.read", "Settings", 60),
    NavEntry("Partners", "/partners", "accounts.read", "Settings", 65),
    NavEntry("Business settings", "/business/settings", "accounts.read", "Settings", 70),
    NavEntry("Security centre", "/security", "accounts.manage", "Settings", 75),
    NavEntry("API tokens", "/tokens", "accounts.manage", "Settings", 80),
    NavEntry("Audit log", "/audit", "audit.read", "Settings", 85),
]
