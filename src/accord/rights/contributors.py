"""What each context holds about a person: its part of an export and of an erasure.

`CONTRIBUTORS` is the registry: one entry per context holding personal data, in the
order their erasures run inside the erasure's one transaction. A context that starts
keeping data about people adds its entry here; `rights.service` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from accord.audiences.erasure import forget_profile
from accord.collect import service as collect
from accord.consent import service as consent
from accord.identity import service as identity
from accord.journeys import service as journeys
from accord.leads import subjects as leads
from accord.messaging import service as messaging
from accord.profiles import service as profiles
from accord.profiles.models import Identifier
from accord.reach import service as reach


@dataclass(frozen=True)
class Subject:
    """The person a request is about, as every contributor sees them."""

    business_id: str
    profile_id: str
    identifiers: tuple[Identifier, ...]
    # Addresses the person's leads were given, which may be none of their identifiers.
    lead_emails: tuple[str, ...] = ()
    # Erasure: the inbox rows of the profile's events, read before the lake was rewritten.
    inbox_seqs: tuple[int, ...] = ()

    def values(self, kind: str) -> list[str]:
        return [i.value for i in self.identifiers if i.kind == kind]

    @property
    def emails(self) -> list[str]:
        """The person's addresses: email identifiers, and those their leads were sent to."""
        return sorted({*self.values("email"), *self.lead_emails})


# An export contributes fields of `SubjectExport`; an erasure, rows erased per table.
Export = Callable[[Connection, Subject], dict[str, Any]]
Erase = Callable[[Connection, Subject], dict[str, int]]


@dataclass(frozen=True)
class Contributor:
    """One context's part of subject rights; None where it has nothing to give or erase."""

    name: str
    export: Export | None = None
    erase: Erase | None = None


def _forget_inbox(conn: Connection, subject: Subject) -> dict[str, int]:
    # Events linked since the inbox rows were read are named by the profile id.
    inbox_rows = collect.forget_events(
        conn,
        business_id=subject.business_id,
        seqs=list(subject.inbox_seqs),
        profile_id=subject.profile_id,
    )
    return {"inbox": inbox_rows}


def _export_merges(conn: Connection, subject: Subject) -> dict[str, Any]:
    history = identity.merge_history(
        conn, business_id=subject.business_id, profile_id=subject.profile_id
    )
    return {"merges": [m.model_dump(mode="json") for m in history]}


def _forget_graph(conn: Connection, subject: Subject) -> dict[str, int]:
    forgotten = identity.forget_graph(
        conn,
        business_id=subject.business_id,
        profile_id=subject.profile_id,
        keys=[(i.kind, i.value) for i in subject.identifiers],
    )
    return {
        "identity_edges": forgotten.edges,
        "identity_merges": forgotten.merges,
        "identity_reviews": forgotten.reviews,
    }


def _export_leads(conn: Connection, subject: Subject) -> dict[str, Any]:
    history = leads.subject_history(
        conn,
        business_id=subject.business_id,
        emails=subject.values("email"),
        anonymous_ids=subject.values("anonymous_id"),
    )
    return {"leads": history}


def _erase_leads(conn: Connection, subject: Subject) -> dict[str, int]:
    return leads.erase_subject(
        conn,
        business_id=subject.business_id,
        emails=subject.values("email"),
        anonymous_ids=subject.values("anonymous_id"),
    )


def _export_email(conn: Connection, subject: Subject) -> dict[str, Any]:
    history = messaging.subject_history(
        conn,
        business_id=subject.business_id,
        emails=subject.emails,
        anonymous_ids=subject.values("anonymous_id"),
        user_ids=subject.values("user_id"),
    )
    return {"email": history}


def _erase_email(conn: Connection, subject: Subject) -> dict[str, int]:
    return messaging.erase_subject(
        conn,
        business_id=subject.business_id,
        emails=subject.emails,
        anonymous_ids=subject.values("anonymous_id"),
        user_ids=subject.values("user_id"),
    )


def _export_journeys(conn: Connection, subject: Subject) -> dict[str, Any]:
    runs = journeys.person_path(
        conn, business_id=subject.business_id, profile_id=subject.profile_id
    )
    return {"journeys": [run.model_dump(mode="json") for run in runs]}


def _erase_journeys(conn: Connection, subject: Subject) -> dict[str, int]:
    return journeys.erase_person(
        conn, business_id=subject.business_id, profile_id=subject.profile_id
    )


def _forget_audiences(conn: Connection, subject: Subject) -> dict[str, int]:
    # Includes `erasure_notices`: the audiences whose destinations are told.
    return forget_profile(
        conn,
        business_id=subject.business_id,
        profile_id=subject.profile_id,
    )


def _hash_suppressions(conn: Connection, subject: Subject) -> dict[str, int]:
    keys = [("profile", subject.profile_id), *((i.kind, i.value) for i in subject.identifiers)]
    keys += [("email", e) for e in subject.lead_emails]
    hashed = reach.erase(conn, business_id=subject.business_id, identifiers=keys)
    return {"suppressions_hashed": hashed}


def _export_profile(conn: Connection, subject: Subject) -> dict[str, Any]:
    view = profiles.profile_view(
        conn, business_id=subject.business_id, profile_id=subject.profile_id
    )
    events = profiles.events_of(conn, profile_id=subject.profile_id)
    return {
        "profile": view.model_dump(mode="json", exclude={"recent_events", "identifiers"}),
        "identifiers": [i.model_dump() for i in view.identifiers],
        "events": [orjson.loads(e.payload) for e in events],
    }


def _delete_profile(conn: Connection, subject: Subject) -> dict[str, int]:
    identifiers, events = profiles.delete_profile(
        conn, business_id=subject.business_id, profile_id=subject.profile_id
    )
    return {"profiles": 1, "profile_identifiers": identifiers, "profile_events": events}


def _export_consent(conn: Connection, subject: Subject) -> dict[str, Any]:
    records = consent.records_of_person(
        conn,
        business_id=subject.business_id,
        anonymous_ids=subject.values("anonymous_id"),
        user_ids=subject.values("user_id"),
    )
    return {"consent_records": records}


CONTRIBUTORS: tuple[Contributor, ...] = (
    Contributor("collect", erase=_forget_inbox),
    Contributor("identity", export=_export_merges, erase=_forget_graph),
    Contributor("leads", export=_export_leads, erase=_erase_leads),
    Contributor("messaging", export=_export_email, erase=_erase_email),
    Contributor("journeys", export=_export_journeys, erase=_erase_journeys),
    # Audiences export nothing of their own: memberships follow from the profile.
    Contributor("audiences", erase=_forget_audiences),
    # Suppressions stay, as hashes: an erased person must not start receiving messages.
    Contributor("reach", erase=_hash_suppressions),
    # Last, once every other context has let go of the profile.
    Contributor("profiles", export=_export_profile, erase=_delete_profile),
    # Consent ledger records are kept as they are: the proof of consent the law requires.
    Contributor("consent", export=_export_consent),
)
