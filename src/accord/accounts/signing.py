"""Signed URL-safe tokens that expire: emailed links and flash messages of the UI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, *, purpose: str, payload: str, ttl_seconds: int) -> str:
    """A URL-safe token binding `payload` to `purpose` until it expires."""
    expires = int(time.time()) + ttl_seconds
    body = f"{purpose}|{payload}|{expires}".encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def unsign(secret: str, *, purpose: str, token: str) -> str | None:
    """The payload of a token made by `sign` for `purpose`, or None if forged or expired."""
    try:
        body_text, mac_text = token.split(".", 1)
        body = _unb64(body_text)
        mac = _unb64(mac_text)
    except ValueError:
        return None
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        got_purpose, rest = body.decode().split("|", 1)
        payload, expires = rest.rsplit("|", 1)
        if got_purpose != purpose or int(expires) < time.time():
            return None
    except (UnicodeDecodeError, ValueError):
        return None
    return payload
