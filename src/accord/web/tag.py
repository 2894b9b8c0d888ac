"""Serves Accord's own tag to websites: /accord.js (docs/collection.md, "Browser collection")."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accord.web.cmp import Asset, make_asset, serve_asset, static_text

router = APIRouter(tags=["collection"])


@cache
def tag_asset() -> Asset:
    return make_asset(static_text("accord.js").encode(), "text/javascript; charset=utf-8")


@router.get("/accord.js", summary="The collection tag for websites (docs/collection.md)")
@router.head("/accord.js", include_in_schema=False)
async def tag_script(request: Request) -> Response:
    return serve_asset(request, tag_asset())
