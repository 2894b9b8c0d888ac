"""Who audiences may reach: who each profile is, what they granted, whether suppressed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, and_, delete, insert, select

from accord.audiences import exports
from accord.audiences.exports import Person
from accord.audiences.models import audience_members, audiences, suppressions
from accord.consent import config as consent_config
from accord.consent import service as consent_service
from accord.core.clock import utcnow
from accord.core.errors import InvalidInput
from accord.identity.service import lookup_key
from accord.profiles.models import Identifier
from accord.profiles.service import identifier_rows, profile_ids_for, profile_rows

# The consent context's standard purposes; a business may add its own.
STANDARD_PURPOSES = frozenset({"necessary", "preferences", "statistics", "marketing"})


# Consent, as the consent context will offer it ---------------------------------------


class ConsentSource(Protocol):
    """What audiences need from the consent context."""

    def purposes(self, conn: Connection, *, business_id: str) -> frozenset[str]: ...

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]: ...


@dataclass(frozen=True)
class NoConsentRecorded:
    """Consent-first default while no consent ledger is connected: no one has granted any
    purpose, so consent conditions select no one and exports leave everyone out."""

    known: frozenset[str] = STANDARD_PURPOSES

    def purposes(self, conn: Connection, *, business_id: str) -> frozenset[str]:
        return self.known

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]:
        return {}


NO_CONSENT_RECORDED = NoConsentRecorded()


class LedgerConsent:
    """Consent as the consent ledger holds it: the business's configured purposes, and
    each person's newest decision per purpose across their identifiers."""

    def purposes(self, conn: Connection, *, business_id: str) -> frozenset[str]:
        return frozenset(consent_config.purpose_keys(conn, business_id=business_id)) | (
            STANDARD_PURPOSES
        )

    def granted_purposes(
        self,
        conn: Connection,
        *,
        business_id: str,
        anonymous_ids: list[str],
        user_ids: list[str],
    ) -> dict[str, bool]:
        return consent_service.granted_purposes(
            conn, business_id=business_id, anonymous_ids=anonymous_ids, user_ids=user_ids
        )


LEDGER_CONSENT = LedgerConsent()


def granted(
    conn: Connection, *, business_id: str, people: Iterable[Person], consent: ConsentSource
) -> dict[str, frozenset[str]]:
    """The purposes each person has granted."""
    out = {}
    for person in people:
        answer = consent.granted_purposes(
            conn,
            business_id=business_id,
            anonymous_ids=list(person.anonymous_ids),
            user_ids=list(person.user_ids),
        )
        out[person.profile_id] = frozenset(p for p, yes in answer.items() if yes)
    return out


# Who each profile is --------------------------------------------------------------------


def people(
    conn: Connection, *, business_id: str, profile_ids: list[str] | None = None
) -> dict[str, Person]:
    """Who each profile is: its identifiers and traits."""
    ids: dict[str, dict[str, list[str]]] = {}
    for profile_id, kind, value in identifier_rows(
        conn, business_id=business_id, profile_ids=profile_ids
    ):
        ids.setdefault(profile_id, {}).setdefault(kind, []).append(value)
    out = {}
    for row in profile_rows(conn, business_id=business_id, profile_ids=profile_ids):
        known = ids.get(row.id, {})
        out[row.id] = Person(
            profile_id=row.id,
            user_ids=tuple(sorted(known.get("user_id", []))),
            anonymous_ids=tuple(sorted(known.get("anonymous_id", []))),
            emails=tuple(sorted(known.get("email", []))),
            traits=row.traits,
        )
    return out


# Suppression -----------------------------------------------------------------------------


def normalise_identifier(kind: str, value: str) -> str:
    if kind == "email":
        return value.strip().lower()
    if kind == "phone":
        return exports.e164(value) or re.sub(r"\D", "", value)
    return value.strip()


def suppress(
    conn: Connection, *, business_id: str, identifier: Identifier, reason: str = "manual"
) -> None:
    """Leave this identifier out of every activation from now on (unsubscribes, complaints…)."""
    value = normalise_identifier(identifier.kind, identifier.value)
    key = and_(
        suppressions.c.business_id == business_id,
        suppressions.c.kind == identifier.kind,
        suppressions.c.value == value,
    )
    if conn.execute(select(suppressions.c.reason).where(key)).first() is not None:
        return
    conn.execute(
        insert(suppressions).values(
            business_id=business_id,
            kind=identifier.kind,
            value=value,
            reason=reason,
            created_at=utcnow(),
        )
    )


def unsuppress(conn: Connection, *, business_id: str, identifier: Identifier) -> bool:
    value = normalise_identifier(identifier.kind, identifier.value)
    result = conn.execute(
        delete(suppressions).where(
            suppressions.c.business_id == business_id,
            suppressions.c.kind == identifier.kind,
            suppressions.c.value == value,
        )
    )
    return bool(result.rowcount)


def list_suppressions(conn: Connection, *, business_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(suppressions)
        .where(suppressions.c.business_id == business_id)
        .order_by(suppressions.c.kind, suppressions.c.value)
    )
    return [
        {"kind": r.kind, "value": r.value, "reason": r.reason, "created_at": r.created_at}
        for r in rows
    ]


def _keys(person: Person) -> set[tuple[str, str]]:
    keys = {("profile", person.profile_id)}
    keys |= {("user_id", v) for v in person.user_ids}
    keys |= {("anonymous_id", v) for v in person.anonymous_ids}
    emails = set(person.emails)
    if isinstance(person.traits.get("email"), str):
        emails.add(person.traits["email"])
    keys |= {("email", normalise_identifier("email", e)) for e in emails}
    if isinstance(person.traits.get("phone"), str):
        keys.add(("phone", normalise_identifier("phone", person.traits["phone"])))
    return keys


def suppression_reasons(
    conn: Connection, *, business_id: str, people: Iterable[Person]
) -> dict[str, str]:
    """profile id -> why that person is suppressed, for the suppressed ones only."""
    people = list(people)
    if not people:
        return {}
    wanted: dict[tuple[str, str], list[str]] = {}
    for person in people:
        for key in _keys(person):
            wanted.setdefault(key, []).append(person.profile_id)
    reasons: dict[str, str] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in wanted:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        values.sort()
        for start in range(0, len(values), 500):
            rows = conn.execute(
                select(suppressions.c.value, suppressions.c.reason).where(
                    suppressions.c.business_id == business_id,
                    suppressions.c.kind == kind,
                    suppressions.c.value.in_(values[start : start + 500]),
                )
            )
            for row in rows:
                for profile_id in wanted[(kind, row.value)]:
                    reasons.setdefault(profile_id, f"suppressed: {row.reason}")
    lists = conn.execute(
        select(audiences.c.id, audiences.c.slug).where(
            audiences.c.business_id == business_id, audiences.c.suppression.is_(True)
        )
    ).all()
    ids = sorted({p.profile_id for p in people} - set(reasons))
    for audience_id, slug in lists:
        for start in range(0, len(ids), 500):
            found = conn.execute(
                select(audience_members.c.profile_id).where(
                    audience_members.c.audience_id == audience_id,
                    audience_members.c.profile_id.in_(ids[start : start + 500]),
                )
            ).scalars()
            for profile_id in found:
                reasons.setdefault(profile_id, f"suppressed: in audience {slug}")
    return reasons


def is_suppressed(conn: Connection, *, business_id: str, identifiers: list[Identifier]) -> bool:
    """Whether any of these identifiers, or the profile they belong to, is suppressed."""
    direct = [Person(profile_id=f"{i.kind}:{i.value}", **_person_fields(i)) for i in identifiers]
    if suppression_reasons(conn, business_id=business_id, people=direct):
        return True
    profile_ids = {i.value for i in identifiers if i.kind == "profile"}
    canonical = []
    for i in identifiers:
        if i.kind == "profile":
            continue
        try:
            canonical.append(lookup_key(conn, business_id=business_id, kind=i.kind, value=i.value))
        except InvalidInput:
            continue  # not an identifier type or value the graph would hold
    profile_ids |= profile_ids_for(conn, business_id=business_id, identifiers=canonical)
    found = people(conn, business_id=business_id, profile_ids=sorted(profile_ids))
    return bool(suppression_reasons(conn, business_id=business_id, people=found.values()))


def _person_fields(identifier: Identifier) -> dict[str, Any]:
    if identifier.kind == "email":
        return {"emails": (identifier.value,)}
    if identifier.kind == "user_id":
        return {"user_ids": (identifier.value,)}
    if identifier.kind == "anonymous_id":
        return {"anonymous_ids": (identifier.value,)}
    if identifier.kind == "phone":
        return {"traits": {"phone": identifier.value}}
    return {}


def filter_suppressed(
    conn: Connection, *, business_id: str, people: list[Person]
) -> tuple[list[Person], dict[str, int]]:
    """The people who may be contacted, and how many were left out for each reason."""
    reasons = suppression_reasons(conn, business_id=business_id, people=people)
    kept = [p for p in people if p.profile_id not in reasons]
    return kept, dict(Counter(reasons.values()))


def _reachable(
    conn: Connection,
    *,
    business_id: str,
    profile_ids: list[str],
    purpose: str,
    consent: ConsentSource,
) -> tuple[list[Person], Counter[str]]:
    """Members whose consent covers the purpose and who are not suppressed."""
    found = people(conn, business_id=business_id, profile_ids=profile_ids)
    left_out: Counter[str] = Counter()
    left_out["profile no longer exists"] += len(set(profile_ids) - set(found))
    purposes = granted(conn, business_id=business_id, people=found.values(), consent=consent)
    allowed = []
    for profile_id in sorted(found):
        if purpose in purposes.get(profile_id, frozenset()):
            allowed.append(found[profile_id])
        else:
            left_out[f"no consent for {purpose}"] += 1
    kept, suppressed = filter_suppressed(conn, business_id=business_id, people=allowed)
    left_out.update(suppressed)
    return kept, +left_out
