"""Subject rights: export everything held about a person, and erase it for good.

Erasure, in this order so that a crash anywhere can be resumed by erasing again:
1. tombstones (hashed identifiers) are stored, so the worker drops any new, late or
   replayed event naming the person from then on;
2. the person's events are cut out of the lake partitions that hold them;
3. in one transaction: the profile, its identifiers, its events, its inbox rows and
   the identity graph's edges, merge history and review items that name it are
   deleted; its leads (with their consent copies and stage history), email list
   memberships and journey runs are deleted; its email messages and their events are
   anonymised and its email suppressions kept only as hashes; its audience
   memberships go and each audience it was in records an `erased` change for webhook
   destinations; the audit log records who erased whom.
Consent ledger records are kept unchanged: they are the proof of consent the law
requires (docs/identity.md says which and why).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection

from accord.accounts.models import Actor
from accord.accounts.service import audit
from accord.audiences import service as audiences
from accord.collect.service import forget_events
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.identity import service as identity
from accord.journeys import service as journeys
from accord.lake.service import remove_events
from accord.leads import service as leads
from accord.messaging import service as messaging
from accord.profiles import service
from accord.profiles.models import Identifier
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


def _by_kind(identifiers: list[Identifier]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"email": [], "anonymous_id": [], "user_id": []}
    for identifier in identifiers:
        found.setdefault(identifier.kind, []).append(identifier.value)
    return found


def _emails(
    by_kind: dict[str, list[str]], lead_history: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """The person's addresses: email identifiers, and those their leads were sent to."""
    return sorted({*by_kind["email"], *(str(lead["email"]) for lead in lead_history["leads"])})


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
    by_kind = _by_kind(view.identifiers)
    lead_history = leads.subject_history(
        conn,
        business_id=business_id,
        emails=by_kind["email"],
        anonymous_ids=by_kind["anonymous_id"],
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
        leads=lead_history,
        email=messaging.subject_history(
            conn,
            business_id=business_id,
            emails=_emails(by_kind, lead_history),
            anonymous_ids=by_kind["anonymous_id"],
            user_ids=by_kind["user_id"],
        ),
        journeys=[
            run.model_dump(mode="json")
            for run in journeys.person_path(conn, business_id=business_id, profile_id=profile_id)
        ],
        exported_at=utcnow(),
    )


def erase_subject(
    store: Store,
    *,
    business_id: str,
    profile_id: str,
    lake_url: str,
    actor: Actor | None = None,
    ip: str | None = None,
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
        by_kind: dict[str, list[str]] = {"email": [], "anonymous_id": [], "user_id": []}
        for kind, value in keys:
            by_kind.setdefault(kind, []).append(value)
        lead_history = leads.subject_history(
            conn,
            business_id=business_id,
            emails=by_kind["email"],
            anonymous_ids=by_kind["anonymous_id"],
        )
        tables = {
            **leads.erase_subject(
                conn,
                business_id=business_id,
                emails=by_kind["email"],
                anonymous_ids=by_kind["anonymous_id"],
            ),
            **messaging.erase_subject(
                conn,
                business_id=business_id,
                emails=_emails(by_kind, lead_history),
                anonymous_ids=by_kind["anonymous_id"],
                user_ids=by_kind["user_id"],
            ),
            **journeys.erase_person(conn, business_id=business_id, profile_id=profile_id),
            **audiences.forget_profile(
                conn,
                business_id=business_id,
                profile_id=profile_id,
                identifiers=[Identifier(kind=k, value=v) for k, v in keys],
            ),
        }
        notices = tables.pop("erasure_notices")
        identifiers, event_count = service.delete_profile(
            conn, business_id=business_id, profile_id=profile_id
        )
        tables = {
            "profiles": 1,
            "profile_identifiers": identifiers,
            "profile_events": event_count,
            "inbox": inbox_rows,
            "identity_edges": forgotten.edges,
            "identity_merges": forgotten.merges,
            "identity_reviews": forgotten.reviews,
            **tables,
        }
        erased_at = utcnow()
        # Who erased whom, with what went: only the profile id and counts, no identifier.
        audit(
            conn,
            business_id=business_id,
            actor=actor or Actor(kind="system", label="subject-rights erasure"),
            action="profile.erase",
            asset=("profile", profile_id),
            after={
                "erasure_id": erasure_id,
                "tables": tables,
                "lake_files_rewritten": len(rewritten),
                "erasure_notices": notices,
            },
            ip=ip,
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
        tables=tables,
        erasure_notices=notices,
        erased_at=erased_at,
    )
    return report
