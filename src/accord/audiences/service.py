"""Who audiences may reach: who each profile is, what they granted, whether suppressed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, select

from accord.audiences.exports import Person
from accord.audiences.models import audience_members, audiences
from accord.consent import config as consent_config
from accord.consent.models import STANDARD_PURPOSES
from accord.profiles.service import identifier_rows, profile_rows
from accord.reach import service as reach

# Consent, read from the ledger -----------------------------------------------------------


def known_purposes(conn: Connection, *, business_id: str) -> frozenset[str]:
    """The purposes a consent condition may name: the business's and the standard ones."""
    return frozenset(consent_config.purpose_keys(conn, business_id=business_id)) | set(
        STANDARD_PURPOSES
    )


def granted(
    conn: Connection, *, business_id: str, people: Iterable[Person]
) -> dict[str, frozenset[str]]:
    """The purposes each person has granted, per the ledger's newest decision per purpose
    across their identifiers; a person with no record has granted nothing."""
    choices = reach.granted(
        conn,
        business_id=business_id,
        people=[
            reach.Addressee(key=p.profile_id, anonymous_ids=p.anonymous_ids, user_ids=p.user_ids)
            for p in people
        ],
    )
    return {key: frozenset(p for p, yes in c.items() if yes) for key, c in choices.items()}


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
            phones=tuple(sorted(known.get("phone", []))),
            traits=row.traits,
        )
    return out


# Suppression -----------------------------------------------------------------------------


def suppression_lists(
    conn: Connection, business_id: str, profile_ids: Sequence[str]
) -> dict[str, str]:
    """Profile id → the suppression audience it is a member of, for those in one (reach
    counts these as suppressions)."""
    lists = conn.execute(
        select(audiences.c.id, audiences.c.slug).where(
            audiences.c.business_id == business_id, audiences.c.suppression.is_(True)
        )
    ).all()
    found: dict[str, str] = {}
    ids = sorted(set(profile_ids))
    for audience_id, slug in lists:
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(audience_members.c.profile_id).where(
                    audience_members.c.audience_id == audience_id,
                    audience_members.c.profile_id.in_(ids[start : start + 500]),
                )
            ).scalars()
            for profile_id in rows:
                found.setdefault(profile_id, f"in audience {slug}")
    return found


def _addressee(person: Person) -> reach.Addressee:
    email, phone = person.traits.get("email"), person.traits.get("phone")
    return reach.Addressee(
        key=person.profile_id,
        profile_ids=(person.profile_id,),
        anonymous_ids=person.anonymous_ids,
        user_ids=person.user_ids,
        emails=(*person.emails, *([email] if isinstance(email, str) else [])),
        phones=(*person.phones, *([phone] if isinstance(phone, str) else [])),
    )


def _reachable(
    conn: Connection, *, business_id: str, profile_ids: list[str], purpose: str
) -> tuple[list[Person], Counter[str]]:
    """Members reach allows for the purpose (consent in the ledger, not suppressed), and
    how many were left out for each reason."""
    found = people(conn, business_id=business_id, profile_ids=profile_ids)
    left_out: Counter[str] = Counter()
    left_out["profile no longer exists"] += len(set(profile_ids) - set(found))
    decided = reach.decisions(
        conn,
        business_id=business_id,
        people=[_addressee(found[pid]) for pid in sorted(found)],
        channel="ads",
        purpose=purpose,
        lists=suppression_lists,
    )
    kept = []
    for profile_id, decision in decided.items():
        if decision.allowed:
            kept.append(found[profile_id])
        elif decision.reason == "no_consent":
            left_out[decision.detail] += 1
        else:
            left_out[f"suppressed: {decision.detail}"] += 1
    return kept, +left_out
