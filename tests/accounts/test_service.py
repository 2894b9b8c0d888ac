"""Bootstrap, write keys and admin tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from accord.accounts.models import api_tokens, sources
from accord.accounts.service import (
    WriteKeyCache,
    bootstrap,
    source_for_write_key,
)
from accord.accounts.tokens import access_for_token
from accord.core.clock import utcnow
from accord.core.errors import InvalidToken, UnknownWriteKey
from accord.core.ids import hash_token
from accord.store.db import Store


def test_bootstrap_is_idempotent_but_issues_a_fresh_token(store: Store) -> None:
    first = bootstrap(store, name="Acme Shoes")
    second = bootstrap(store, name="Acme Shoes")
    assert (first.business_id, first.source_id, first.write_key) == (
        second.business_id,
        second.source_id,
        second.write_key,
    )
    assert first.admin_token != second.admin_token
    assert access_for_token(store, f"Bearer {first.admin_token}").access.business_id == (
        first.business_id
    )
    assert bootstrap(store, name="Other Shop").business_id != first.business_id


def test_tokens_are_stored_only_as_hashes(store: Store) -> None:
    keys = bootstrap(store, name="Acme")
    with store.read() as conn:
        stored = list(conn.execute(select(api_tokens.c.token_hash)).scalars())
    assert keys.admin_token not in stored
    assert hash_token(keys.admin_token) in stored


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer nope", "Bearer "])
def test_bad_tokens_are_refused(store: Store, header: str | None) -> None:
    bootstrap(store, name="Acme")
    with pytest.raises(InvalidToken):
        access_for_token(store, header)


def test_revoked_tokens_are_refused(store: Store) -> None:
    keys = bootstrap(store, name="Acme")
    with store.write() as conn:
        conn.execute(update(api_tokens).values(revoked_at=utcnow()))
    with pytest.raises(InvalidToken):
        access_for_token(store, f"Bearer {keys.admin_token}")


def test_write_keys_resolve_to_their_source_and_disabled_ones_do_not(store: Store) -> None:
    keys = bootstrap(store, name="Acme")
    assert source_for_write_key(store, keys.write_key).source_id == keys.source_id
    cache = WriteKeyCache(store=store, ttl_seconds=0)
    with pytest.raises(UnknownWriteKey):
        cache.resolve(None)
    with pytest.raises(UnknownWriteKey):
        cache.resolve("wk_unknown")
    with store.write() as conn:
        conn.execute(update(sources).values(enabled=False))
    with pytest.raises(UnknownWriteKey):
        cache.resolve(keys.write_key)
