"""What messaging needs from contexts built elsewhere (consent, audiences, suppression).

Each is a callable with keyword-only arguments, passed in by `web/` or the CLI, so the
engine can be tested with small in-test implementations and wired to the real
services when they exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


class GrantedPurposes(Protocol):
    """Consent in force now for a person, purpose → granted."""

    def __call__(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: Sequence[str],
        user_ids: Sequence[str],
    ) -> dict[str, bool]: ...


class FilterSuppressed(Protocol):
    """The identifiers (email addresses here) that are NOT on a suppression list."""

    def __call__(
        self, conn: Connection, *, business_id: str, identifiers: Sequence[str]
    ) -> list[str]: ...


class Suppress(Protocol):
    def __call__(
        self, conn: Connection, *, business_id: str, identifier: str, reason: str
    ) -> None: ...


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
    """The outside services messaging and leads call; optional ones may be absent.

    `granted_purposes` is required: no email leaves without a consent check.
    """

    granted_purposes: GrantedPurposes
    consent_purpose: str = "marketing"
    filter_suppressed: FilterSuppressed | None = None
    suppress: Suppress | None = None
    record_consent: RecordConsent | None = None
    audience_members: AudienceMembers | None = None
    on_engagement: OnEngagement | None = None
