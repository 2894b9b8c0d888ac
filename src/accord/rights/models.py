"""What a subject-rights request returns: the export of a person, the erasure report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class SubjectExport(BaseModel):
    profile: dict[str, Any]
    identifiers: list[dict[str, str]]
    events: list[dict[str, Any]]
    merges: list[dict[str, Any]]
    # Null when no consent ledger is wired into the caller.
    consent_records: list[dict[str, Any]]
    # leads, consents (double opt-in copies), stage_changes, coupons
    leads: dict[str, list[dict[str, Any]]]
    # messages, events, suppressions, list_memberships
    email: dict[str, list[dict[str, Any]]]
    # Each journey run with the steps taken.
    journeys: list[dict[str, Any]]
    exported_at: datetime


class ErasureReport(BaseModel):
    erasure_id: str
    business_id: str
    profile_id: str
    identifier_hashes: list[str]
    identifiers: int
    events: int
    inbox_rows: int
    lake_files_rewritten: int
    edges: int
    merges: int
    reviews: int
    # Rows erased (deleted, anonymised or hashed) per table, including the above.
    tables: dict[str, int]
    # Audiences told of the erasure through their webhook destinations.
    erasure_notices: int
    erased_at: datetime
