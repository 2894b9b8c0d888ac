"""How profiles learn a person's consent: a callable the consent context provides."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Connection


class ConsentLookup(Protocol):
    """Granted purposes of a person known by these identifiers (purpose → granted)."""

    def __call__(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]: ...
