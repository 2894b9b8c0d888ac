"""Signed URL-safe tokens that expire: emailed links and flash messages of the UI.

Built on itsdangerous, as the email links of `messaging.tracking` are; the expiry is
signed into the token, so a link's lifetime is fixed when it is made.
"""

from __future__ import annotations

import time

from itsdangerous import BadData, URLSafeSerializer


def sign(secret: str, *, purpose: str, payload: str, ttl_seconds: int) -> str:
    """A URL-safe token binding `payload` to `purpose` until it expires."""
    expires = int(time.time()) + ttl_seconds
    return str(URLSafeSerializer(secret, salt=purpose).dumps([payload, expires]))


def unsign(secret: str, *, purpose: str, token: str) -> str | None:
    """The payload of a token made by `sign` for `purpose`, or None if forged or expired."""
    try:
        loaded = URLSafeSerializer(secret, salt=purpose).loads(token)
    except BadData:
        return None
    match loaded:
        case [str() as payload, int() as expires] if expires >= time.time():
            return payload
    return None
