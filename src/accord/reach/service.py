"""The suppression list, and reach decisions for many people at once (consent from the ledger)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from accord.consent import service as consent_service
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.identity.rules import normalise
from accord.identity.service import get_rules
from accord.profiles.service import identifier_rows, owners
from accord.reach.decide import CHANNEL_ADDRESS, QuietHours, Reach, decide
from accord.reach.models import SUPPRESSION_KINDS, suppressions

HASHED_PREFIX = "sha256:"
_CHUNK = 500
# Suppression lists that are not identifiers (members of a suppression audience): the
# audiences context answers profile id → reason for the profiles it is asked about.
ListedProfiles = Callable[[Connection, str, Sequence[str]], Mapping[str, str]]


@dataclass(frozen=True)
class Addressee:
    """A person as reach needs to know them: the caller's key and every identifier."""

    key: str
    profile_ids: tuple[str, ...] = ()
    anonymous_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    def identifiers(self) -> list[tuple[str, str]]:
        found = [("profile", v) for v in self.profile_ids]
        found += [("anonymous_id", v) for v in self.anonymous_ids]
        found += [("user_id", v) for v in self.user_ids]
        found += [("email", v) for v in self.emails]
        found += [("phone", v) for v in self.phones]
        return found


def phone_region(conn: Connection, *, business_id: str) -> str | None:
    """The region national phone numbers of this business are read in (identity rules)."""
    return get_rules(conn, business_id=business_id).default_phone_region


def normalised(kind: str, value: str, *, region: str | None) -> str | None:
    """A suppression's value as stored: emails and phones through `identity.rules`, other
    identifiers trimmed; None when an email or phone is not one."""
    if kind in ("email", "phone"):
        return normalise(kind, value, phone_region=region)
    return value.strip() or None


def suppression_hash(business_id: str, kind: str, value: str) -> str:
    """How an erased person's suppression is kept: salted with the business id so the
    same value hashes differently per business; `value` is normalised."""
    digest = hashlib.sha256(f"{business_id}\x1f{kind}\x1f{value}".encode())
    return HASHED_PREFIX + digest.hexdigest()


def _stored_value(conn: Connection, business_id: str, kind: str, value: str) -> str:
    if kind not in SUPPRESSION_KINDS:
        raise InvalidInput([FieldProblem("kind", f"must be one of {', '.join(SUPPRESSION_KINDS)}")])
    found = normalised(kind, value, region=phone_region(conn, business_id=business_id))
    if found is None:
        raise InvalidInput([FieldProblem("value", f"{value!r} is not a valid {kind}")])
    return found


def _key(business_id: str, kind: str, values: Sequence[str]) -> Any:
    return and_(
        suppressions.c.business_id == business_id,
        suppressions.c.kind == kind,
        suppressions.c.value.in_(values),
    )


def suppress(
    conn: Connection,
    *,
    business_id: str,
    kind: str,
    value: str,
    reason: str = "manual",
    source: str = "api",
    channel: str | None = None,
) -> bool:
    """Leave this identifier out of `channel` (None: every channel and export) from now
    on; False when it was suppressed that widely already (the first reason stays)."""
    stored = _stored_value(conn, business_id, kind, value)
    hashed = suppression_hash(business_id, kind, stored)
    key = _key(business_id, kind, [stored, hashed])
    found = conn.execute(select(suppressions.c.channel).where(key)).first()
    if found is not None:
        if found.channel is None or found.channel == channel:
            return False
        # A suppression of one channel widens to every channel.
        conn.execute(update(suppressions).where(key).values(channel=None, reason=reason))
        return True
    conn.execute(
        insert(suppressions).values(
            business_id=business_id,
            kind=kind,
            value=stored,
            reason=reason,
            source=source,
            channel=channel,
            created_at=utcnow(),
        )
    )
    return True


def unsuppress(conn: Connection, *, business_id: str, kind: str, value: str) -> bool:
    stored = _stored_value(conn, business_id, kind, value)
    hashed = suppression_hash(business_id, kind, stored)
    result = conn.execute(delete(suppressions).where(_key(business_id, kind, [stored, hashed])))
    return bool(result.rowcount)


def suppressed(
    conn: Connection, *, business_id: str, kind: str, values: Sequence[str], channel: str
) -> dict[str, str]:
    """Value → reason, for those of these values that may not be used on `channel`."""
    people = [Addressee(key=v, **{_FIELDS[kind]: (v,)}) for v in values]
    found = suppression_reasons(conn, business_id=business_id, people=people, channel=channel)
    return {value: reasons[0] for value, reasons in found.items()}


_FIELDS = {
    "profile": "profile_ids",
    "anonymous_id": "anonymous_ids",
    "user_id": "user_ids",
    "email": "emails",
    "phone": "phones",
}


def list_suppressions(
    conn: Connection, *, business_id: str, kind: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The business's suppressions (of one identifier kind when given), by kind and value."""
    query = select(suppressions).where(suppressions.c.business_id == business_id)
    if kind is not None:
        query = query.where(suppressions.c.kind == kind)
    rows = conn.execute(query.order_by(suppressions.c.kind, suppressions.c.value).limit(limit))
    return [
        {
            "kind": r.kind,
            "value": r.value,
            "reason": r.reason,
            "source": r.source,
            "channel": r.channel,
            "created_at": r.created_at,
        }
        for r in rows
    ]


def suppression_reasons(
    conn: Connection, *, business_id: str, people: Sequence[Addressee], channel: str | None
) -> dict[str, list[str]]:
    """Key → the stored reasons of the suppressions naming that person (plain or hashed)
    that stop `channel` (None: only those that stop every channel), for the suppressed
    ones only; one query per identifier kind and chunk."""
    return _reasons(conn, business_id, people, channel, phone_region(conn, business_id=business_id))


def _reasons(
    conn: Connection,
    business_id: str,
    people: Sequence[Addressee],
    channel: str | None,
    region: str | None,
) -> dict[str, list[str]]:
    wanted: dict[tuple[str, str], set[str]] = {}
    for person in people:
        for kind, raw in person.identifiers():
            value = normalised(kind, raw, region=region)
            if value is None:
                continue
            for form in (value, suppression_hash(business_id, kind, value)):
                wanted.setdefault((kind, form), set()).add(person.key)
    by_kind: dict[str, list[str]] = {}
    for kind, value in wanted:
        by_kind.setdefault(kind, []).append(value)
    found: dict[str, list[str]] = {}
    for kind, values in by_kind.items():
        values.sort()
        for start in range(0, len(values), _CHUNK):
            rows = conn.execute(
                select(suppressions.c.value, suppressions.c.reason).where(
                    _key(business_id, kind, values[start : start + _CHUNK]),
                    or_(suppressions.c.channel.is_(None), suppressions.c.channel == channel),
                )
            )
            for row in rows:
                for key in wanted[(kind, row.value)]:
                    found.setdefault(key, []).append(row.reason)
    return found


def granted(
    conn: Connection, *, business_id: str, people: Sequence[Addressee]
) -> dict[str, dict[str, bool]]:
    """Key → purpose → granted, from the consent ledger, in a few queries."""
    states = consent_service.current_states(
        conn,
        business_id=business_id,
        subjects=[(list(p.anonymous_ids), list(p.user_ids)) for p in people],
    )
    return {
        person.key: dict(state.purposes) if state is not None else {}
        for person, state in zip(people, states, strict=True)
    }


def _with_profiles(
    conn: Connection, business_id: str, people: Sequence[Addressee], region: str | None
) -> list[Addressee]:
    """Each person with every identifier of the profiles their identifiers belong to, so
    a suppression of a person's phone also stops email to their address."""
    keys: list[list[tuple[str, str]]] = []
    for person in people:
        keys.append([])
        for kind, raw in person.identifiers():
            value = normalised(kind, raw, region=region)
            if value is not None and kind != "profile":
                keys[-1].append((kind, value))
    owner = owners(conn, business_id=business_id, keys=[k for ks in keys for k in ks])
    profile_ids = [
        list(dict.fromkeys([*person.profile_ids, *(owner[k] for k in ks if k in owner)]))
        for person, ks in zip(people, keys, strict=True)
    ]
    found = addressees(
        conn, business_id=business_id, profile_ids={p for ps in profile_ids for p in ps}
    )
    out = []
    for person, mine in zip(people, profile_ids, strict=True):
        more = [found[p] for p in mine]
        out.append(
            replace(
                person,
                profile_ids=tuple(mine),
                anonymous_ids=_union(person.anonymous_ids, *(m.anonymous_ids for m in more)),
                user_ids=_union(person.user_ids, *(m.user_ids for m in more)),
                emails=_union(person.emails, *(m.emails for m in more)),
                phones=_union(person.phones, *(m.phones for m in more)),
            )
        )
    return out


def profile_of(conn: Connection, *, business_id: str, person: Addressee) -> str | None:
    """The profile the person's identifiers belong to, if any."""
    region = phone_region(conn, business_id=business_id)
    [found] = _with_profiles(conn, business_id, [person], region)
    return found.profile_ids[0] if found.profile_ids else None


def _union(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for group in groups for v in group))


def decisions(
    conn: Connection,
    *,
    business_id: str,
    people: Sequence[Addressee],
    channel: str,
    purpose: str | None = None,
    lists: ListedProfiles | None = None,
    quiet_hours: QuietHours | None = None,
    local_times: Mapping[str, datetime] | None = None,
) -> dict[str, Reach]:
    """Key → the decision for each person on `channel` now.

    Each person counts with every identifier of their profile; `lists` adds the
    suppressions that are not identifiers (suppression audiences); `local_times` are the
    people's clocks for quiet hours. Consent is the ledger's, read at this moment."""
    # The business's phone region is read once: both steps normalise with it.
    region = phone_region(conn, business_id=business_id)
    people = _with_profiles(conn, business_id, people, region)
    hits = _reasons(conn, business_id, people, channel, region)
    if lists is not None:
        listed = lists(conn, business_id, sorted({p for a in people for p in a.profile_ids}))
        for person in people:
            for profile_id in person.profile_ids:
                if profile_id in listed:
                    hits.setdefault(person.key, []).append(listed[profile_id])
    consent = granted(conn, business_id=business_id, people=people)
    address = CHANNEL_ADDRESS.get(channel)
    out = {}
    for person in people:
        local = (local_times or {}).get(person.key)
        out[person.key] = decide(
            channel=channel,
            consent=consent[person.key],
            suppressions=hits.get(person.key, ()),
            purpose=purpose,
            has_address=address is None or any(k == address for k, _ in person.identifiers()),
            quiet_hours=quiet_hours,
            local_time=local.time() if local is not None else None,
        )
    return out


def addressees(
    conn: Connection, *, business_id: str, profile_ids: Iterable[str]
) -> dict[str, Addressee]:
    """Profile id → the person with every identifier the identity graph holds for them."""
    ids: dict[str, dict[str, list[str]]] = {pid: {} for pid in profile_ids}
    for profile_id, kind, value in identifier_rows(
        conn, business_id=business_id, profile_ids=sorted(ids)
    ):
        ids.setdefault(profile_id, {}).setdefault(kind, []).append(value)
    return {
        pid: Addressee(
            key=pid,
            profile_ids=(pid,),
            anonymous_ids=tuple(found.get("anonymous_id", ())),
            user_ids=tuple(found.get("user_id", ())),
            emails=tuple(found.get("email", ())),
            phones=tuple(found.get("phone", ())),
        )
        for pid, found in ids.items()
    }


def entries(
    conn: Connection, *, business_id: str, identifiers: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The suppressions naming these identifiers as stored (for a subject's export)."""
    region = phone_region(conn, business_id=business_id)
    by_kind: dict[str, set[str]] = {}
    for kind, raw in identifiers:
        value = normalised(kind, raw, region=region)
        if value is not None:
            by_kind.setdefault(kind, set()).add(value)
    found = []
    for kind, values in sorted(by_kind.items()):
        rows = conn.execute(
            select(suppressions)
            .where(_key(business_id, kind, sorted(values)))
            .order_by(suppressions.c.value)
        )
        found += [dict(row._mapping) for row in rows]
    return found


def erase(conn: Connection, *, business_id: str, identifiers: Iterable[tuple[str, str]]) -> int:
    """Keep an erased person's suppressions only as hashes, so they stay suppressed and
    nothing names them; returns how many were hashed."""
    region = phone_region(conn, business_id=business_id)
    hashed = 0
    for kind, raw in identifiers:
        value = normalised(kind, raw, region=region)
        if value is None:
            continue
        plain = _key(business_id, kind, [value])
        if conn.execute(select(suppressions.c.reason).where(plain)).first() is None:
            continue
        digest = suppression_hash(business_id, kind, value)
        if conn.execute(
            select(suppressions.c.reason).where(_key(business_id, kind, [digest]))
        ).first():
            conn.execute(delete(suppressions).where(plain))  # kept as a hash already
        else:
            conn.execute(update(suppressions).where(plain).values(value=digest))
        hashed += 1
    return hashed
