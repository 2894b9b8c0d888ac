"""A pixel on the web: the origins browsers may send from, and the snippet a site pastes."""

from __future__ import annotations

import html
from collections.abc import Iterable

from sqlalchemy import Connection, update

from accord.accounts import origins
from accord.accounts.assets import get_pixel
from accord.accounts.models import Actor, PixelView, sources
from accord.accounts.service import audit


def set_allowed_origins(
    conn: Connection,
    *,
    business_id: str,
    pixel_id: str,
    entries: Iterable[str],
    actor: Actor,
    ip: str | None,
) -> PixelView:
    """Restrict the pixel's write key to browsers on these origins (nothing or "*": any
    origin). Server libraries, which send no Origin, are not affected."""
    before = get_pixel(conn, business_id=business_id, pixel_id=pixel_id)
    allowed = origins.parse_origins(entries)
    after = list(allowed) if allowed else None
    if after == before.allowed_origins:
        return before
    conn.execute(
        update(sources)
        .where(sources.c.id == pixel_id, sources.c.business_id == business_id)
        .values(allowed_origins=origins.stored(allowed))
    )
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="pixel.origins",
        asset=("pixel", pixel_id),
        before={"allowed_origins": before.allowed_origins},
        after={"allowed_origins": after},
        ip=ip,
    )
    return get_pixel(conn, business_id=business_id, pixel_id=pixel_id)


def install_snippet(*, base_url: str, write_key: str, property_key: str | None) -> str:
    """The HTML a site owner pastes into the <head> of every page, on any origin: the
    consent banner of `property_key` (when the business has one), then the tag. Both load
    with `async` from Accord itself and read their settings from their own attributes,
    so a page with a strict Content-Security-Policy only adds its nonce to them."""
    base = base_url.rstrip("/")
    key = html.escape(write_key, quote=True)
    lines = []
    if property_key is not None:
        lines.append(
            f'<script async src="{base}/cmp.js" data-write-key="{key}" '
            f'data-property="{html.escape(property_key, quote=True)}"></script>'
        )
    lines.append(f'<script async src="{base}/accord.js" data-write-key="{key}"></script>')
    return "\n".join(lines)
