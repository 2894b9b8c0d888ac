"""Request bodies read under a limit: refused by Content-Length, or counted as they stream."""

from __future__ import annotations

from fastapi import Request

from accord.core.errors import PayloadTooLarge


def _too_large(limit: int, field: str, reason: str | None) -> PayloadTooLarge:
    return PayloadTooLarge(field, reason or f"the request is too large; the limit is {limit} bytes")


def refuse_declared_over(
    request: Request, *, limit: int, field: str = "body", reason: str | None = None
) -> bool:
    """Refuse a body whose Content-Length is over `limit` (or not a number) before any of
    it is read. True when the length was declared, so the server bounds what follows."""
    length = request.headers.get("content-length")
    if length is None:
        return False
    if not length.strip().isdigit() or int(length) > limit:
        raise _too_large(limit, field, reason)
    return True


async def read_limited(
    request: Request, *, limit: int, field: str = "body", reason: str | None = None
) -> bytes:
    """The body, read only while it stays within `limit` bytes: a declared Content-Length
    over it is refused unread, and a chunked body is refused at the chunk that crosses it."""
    refuse_declared_over(request, limit=limit, field=field, reason=reason)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit, field, reason)
    read = bytes(body)
    # Starlette's form parser and `request.body()` reuse what was received here.
    request._body = read
    return read
