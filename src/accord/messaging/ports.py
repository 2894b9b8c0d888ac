"""What messaging needs from contexts above it or beside it: recording consent, audience
members, engagement scoring. Consent and suppression it reads from `reach` directly.

Each is a callable with keyword-only arguments, passed in by `web/` or the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection


@dataclass(frozen=True)
class Recipient:
    """One person a campaign may reach, with what personalisation may use."""

    email: str
    anonymous_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    traits: Mapping[str, Any] = field(default_factory=dict)


class RecordConsent(Protocol):
    """Append a consent decision (with its evidence) to the consent ledger."""

    def __call__(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_id: str | None,
        user_id: str | None,
        purposes: Mapping[str, bool],
        source: str,
        evidence: Mapping[str, Any],
    ) -> None: ...


class AudienceMembers(Protocol):
    def __call__(
        self, conn: Connection, *, business_id: str, audience_id: str
    ) -> list[Recipient]: ...


class OnEngagement(Protocol):
    """Told of every human open or click (lead scoring uses it)."""

    def __call__(self, conn: Connection, *, business_id: str, email: str, kind: str) -> None: ...


@dataclass(frozen=True)
class Wiring:
    """The outside services messaging and leads call; each may be absent. Every send is
    checked by `reach` (consent in the ledger for `consent_purpose`, suppressions)."""

    consent_purpose: str = "marketing"
    record_consent: RecordConsent | None = None
    audience_members: AudienceMembers | None = None
    on_engagement: OnEngagement | None = None
