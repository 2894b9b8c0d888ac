"""Subject rights: export everything held about a person, and erase it for good.

Every context holding personal data contributes its part (`rights.contributors`).

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

from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from accord.accounts.models import Actor
from accord.accounts.service import audit
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.identity import service as identity
from accord.lake.service import remove_events
from accord.leads import subjects as leads
from accord.profiles import service as profiles
from accord.profiles.models import Identifier
from accord.rights.contributors import CONTRIBUTORS, Subject
from accord.rights.models import ErasureReport, SubjectExport
from accord.store.db import Store


def _with_lead_emails(conn: Connection, subject: Subject) -> Subject:
    """The subject with the addresses its leads were given (email reaches them there)."""
    found = leads.subject_emails(
        conn,
        business_id=subject.business_id,
        emails=subject.values("email"),
        anonymous_ids=subject.values("anonymous_id"),
    )
    return replace(subject, lead_emails=tuple(found))


def export_subject(
    conn: Connection,
    *,
    business_id: str,
    profile_id: str,
) -> SubjectExport:
    view = profiles.profile_view(conn, business_id=business_id, profile_id=profile_id)
    subject = Subject(
        business_id=business_id,
        profile_id=profile_id,
        identifiers=tuple(view.identifiers),
    )
    subject = _with_lead_emails(conn, subject)
    parts: dict[str, Any] = {}
    for contributor in CONTRIBUTORS:
        if contributor.export is not None:
            parts.update(contributor.export(conn, subject))
    return SubjectExport(**parts, exported_at=utcnow())


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
        profiles.profile_view(conn, business_id=business_id, profile_id=profile_id)
        keys = list(profiles.members(conn, profile_ids=[profile_id])[profile_id])
        hashes = identity.add_tombstones(
            conn, business_id=business_id, keys=keys, erasure_id=erasure_id
        )
    with store.read() as conn:
        events = profiles.events_of(conn, profile_id=profile_id)
    rewritten = remove_events(
        lake_url,
        business_id=business_id,
        days={e.occurred_at.date().isoformat() for e in events},
        message_ids={e.message_id for e in events},
    )
    subject = Subject(
        business_id=business_id,
        profile_id=profile_id,
        identifiers=tuple(Identifier(kind=kind, value=value) for kind, value in keys),
        inbox_seqs=tuple(e.inbox_seq for e in events),
    )
    with store.write() as conn:
        subject = _with_lead_emails(conn, subject)
        tables: dict[str, int] = {}
        for contributor in CONTRIBUTORS:
            if contributor.erase is not None:
                tables.update(contributor.erase(conn, subject))
        notices = tables.pop("erasure_notices", 0)
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
    return ErasureReport(
        erasure_id=erasure_id,
        business_id=business_id,
        profile_id=profile_id,
        identifier_hashes=hashes,
        identifiers=tables["profile_identifiers"],
        events=tables["profile_events"],
        inbox_rows=tables["inbox"],
        lake_files_rewritten=len(rewritten),
        edges=tables["identity_edges"],
        merges=tables["identity_merges"],
        reviews=tables["identity_reviews"],
        tables=tables,
        erasure_notices=notices,
        erased_at=erased_at,
    )
