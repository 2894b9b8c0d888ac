"""Identifiers and secrets: prefixed random ids, write keys, token hashing."""

from __future__ import annotations

import hashlib
import secrets
import uuid


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def new_secret(prefix: str, nbytes: int = 24) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_token(token: str) -> str:
    # Tokens are 192-bit random values, so a fast hash cannot be brute-forced;
    # passwords, which are guessable, get argon2 in the accounts issue.
    return hashlib.sha256(token.encode()).hexdigest()
