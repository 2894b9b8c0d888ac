"""Businesses, sources and admin tokens: bootstrap, write-key lookup, token checks."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update

from accord.accounts.models import Bootstrap, SourceRef, api_tokens, businesses, sources
from accord.core.clock import utcnow
from accord.core.errors import InvalidToken, UnknownWriteKey
from accord.core.ids import hash_token, new_id, new_secret
from accord.store.db import Store

DEFAULT_SOURCE_NAME = "Website"


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:100] or "business"


def create_business(conn: Connection, *, name: str, slug: str) -> str:
    business_id = new_id("biz")
    conn.execute(
        businesses.insert().values(id=business_id, name=name, slug=slug, created_at=utcnow())
    )
    return business_id


def create_source(conn: Connection, *, business_id: str, name: str, kind: str = "web") -> SourceRef:
    source_id = new_id("src")
    conn.execute(
        sources.insert().values(
            id=source_id,
            business_id=business_id,
            name=name,
            kind=kind,
            write_key=new_secret("wk", 18),
            enabled=True,
            created_at=utcnow(),
        )
    )
    return SourceRef(business_id=business_id, source_id=source_id)


def issue_admin_token(conn: Connection, *, business_id: str, name: str) -> str:
    """A new admin token; only its hash is kept, so this is the one time it is seen."""
    token = new_secret("adm", 24)
    conn.execute(
        api_tokens.insert().values(
            id=new_id("tok"),
            business_id=business_id,
            name=name,
            token_hash=hash_token(token),
            created_at=utcnow(),
        )
    )
    return token


def bootstrap(store: Store, *, name: str) -> Bootstrap:
    """Create, or find again, the business called `name` with its first source.

    Running it again returns the same business, source and write key; a new admin
    token is issued each time because the old one's plain text was never stored.
    """
    slug = slugify(name)
    with store.write() as conn:
        business_id = conn.execute(
            select(businesses.c.id).where(businesses.c.slug == slug)
        ).scalar()
        if business_id is None:
            business_id = create_business(conn, name=name, slug=slug)
        row = conn.execute(
            select(sources.c.id, sources.c.write_key)
            .where(sources.c.business_id == business_id)
            .order_by(sources.c.created_at, sources.c.id)
            .limit(1)
        ).first()
        if row is None:
            create_source(conn, business_id=business_id, name=DEFAULT_SOURCE_NAME)
            row = conn.execute(
                select(sources.c.id, sources.c.write_key).where(
                    sources.c.business_id == business_id
                )
            ).one()
        token = issue_admin_token(conn, business_id=business_id, name="bootstrap")
    return Bootstrap(
        business_id=business_id, source_id=row.id, write_key=row.write_key, admin_token=token
    )


def source_for_write_key(store: Store, write_key: str) -> SourceRef:
    with store.read() as conn:
        row = conn.execute(
            select(sources.c.business_id, sources.c.id).where(
                sources.c.write_key == write_key, sources.c.enabled.is_(True)
            )
        ).first()
    if row is None:
        raise UnknownWriteKey()
    return SourceRef(business_id=row.business_id, source_id=row.id)


@dataclass
class WriteKeyCache:
    """Remembers write-key lookups for a short time so collection skips a query per call."""

    store: Store
    ttl_seconds: float
    _entries: dict[str, tuple[float, SourceRef]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, write_key: str | None) -> SourceRef:
        if not write_key:
            raise UnknownWriteKey()
        now = time.monotonic()
        hit = self._entries.get(write_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        source = source_for_write_key(self.store, write_key)
        with self._lock:
            self._entries[write_key] = (now + self.ttl_seconds, source)
        return source


def business_for_token(store: Store, authorization: str | None) -> str:
    """The business an `Authorization: Bearer <admin token>` header acts for."""
    if not authorization or authorization[:7].lower() != "bearer ":
        raise InvalidToken()
    token_hash = hash_token(authorization[7:].strip())
    with store.read() as conn:
        row = conn.execute(
            select(api_tokens.c.id, api_tokens.c.business_id).where(
                api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        raise InvalidToken()
    with store.write() as conn:
        conn.execute(
            update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=utcnow())
        )
    return str(row.business_id)
