"""Subject rights: export everything held about a person, and erase it for good.

Erasure, in this order so that a crash anywhere can be resumed by erasing again:
1. tombstones (hashed identifiers) are stored, so the worker drops any new, late or
   replayed event naming the person from then on;
2. the person's events are cut out of the lake partitions that hold them;
3. the profile, its identifiers, its events, its inbox rows and the identity graph's
   edges, merge history and review items that name it are deleted in one transaction.
Consent records are the consent context's: it keeps the proof the law requires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection

from accord.collect.service import forget_events
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.identity import service as identity
from accord.lake.service import remove_events
from accord.profiles import service
from accord.store.db import Store


class ConsentRecords(Protocol):
    """The consent records of a person known by these identifiers (consent context)."""

    def __call__(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> list[dict[str, Any]]: ...


class SubjectExport(BaseModel):
    profile: dict[str, Any]
    identifiers: list[dict[str, str]]
    events: list[dict[str, Any]]
    merges: list[dict[str, Any]]
    # Null when no consent ledger is wired into the caller.
    consent_records: list[dict[str, Any]] | None
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
    erased_at: datetime


def export_subject(
    conn: Connection,
    *,
    business_id: str,
    profile_id: str,
    consent_records: ConsentRecords | None = None,
) -> SubjectExport:
    view = service.profile_view(conn, business_id=business_id, profile_id=profile_id)
    events = [orjson.loads(e.payload) for e in service.events_of(conn, profile_id=profile_id)]
    records = None
    if consent_records is not None:
        records = consent_records(
            conn,
            business_id=business_id,
            anonymous_ids=[i.value for i in view.identifiers if i.kind == "anonymous_id"],
            user_ids=[i.value for i in view.identifiers if i.kind == "user_id"],
        )
    return SubjectExport(
        profile=view.model_dump(mode="json", exclude={"recent_events", "identifiers"}),
        identifiers=[i.model_dump() for i in view.identifiers],
        events=events,
        merges=[
            m.model_dump(mode="json")
            for m in identity.merge_history(conn, business_id=business_id, profile_id=profile_id)
        ],
        consent_records=records,
        exported_at=utcnow(),
    )


def erase_subject(
    store: Store,
    *,
    business_id: str,
    profile_id: str,
    lake_url: str,
    on_erased: Callable[[ErasureReport], None] | None = None,
) -> ErasureReport:
    """Erase a person: see the module's docstring for the order and what stays."""
    erasure_id = new_id("era")
    with store.write() as conn:
        service.profile_view(conn, business_id=business_id, profile_id=profile_id)
        keys = list(service.members(conn, profile_ids=[profile_id])[profile_id])
        hashes = identity.add_tombstones(
            conn, business_id=business_id, keys=keys, erasure_id=erasure_id
        )
    with store.read() as conn:
        events = service.events_of(conn, profile_id=profile_id)
    rewritten = remove_events(
        lake_url,
        business_id=business_id,
        days={e.occurred_at.date().isoformat() for e in events},
        message_ids={e.message_id for e in events},
    )
    with store.write() as conn:
        # Events linked since the first step's read are named by the second delete.
        inbox_rows = forget_events(
            conn,
            business_id=business_id,
            seqs=[e.inbox_seq for e in events],
            profile_id=profile_id,
        )
        forgotten = identity.forget_graph(
            conn, business_id=business_id, profile_id=profile_id, keys=keys
        )
        identifiers, event_count = service.delete_profile(
            conn, business_id=business_id, profile_id=profile_id
        )
    report = ErasureReport(
        erasure_id=erasure_id,
        business_id=business_id,
        profile_id=profile_id,
        identifier_hashes=hashes,
        identifiers=identifiers,
        events=event_count,
        inbox_rows=inbox_rows,
        lake_files_rewritten=len(rewritten),
        edges=forgotten.edges,
        merges=forgotten.merges,
        reviews=forgotten.reviews,
        erased_at=utcnow(),
    )
    if on_erased is not None:
        on_erased(report)
    return report
