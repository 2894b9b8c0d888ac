"""Consent records from files: a CRM opt-in column, or another CMP's records, written to the
ledger through `record_consent` with source "import" and the file's own date, source and
notice kept in the record's `imported` field (hashed with it, shown in proofs)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, select

from accord.collect.mapped import ConsentRecorder
from accord.collect.mapping import ConsentRow, parse_time
from accord.consent import config
from accord.consent.models import PropertyIn, consent_records
from accord.consent.service import record_consent
from accord.core.clock import iso
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.store.db import Store

IMPORT_PROPERTY = "imports"
SUBJECT_KINDS = ("anonymous_id", "user_id")
CMP_COLUMNS = ("subject", "purposes", "time", "notice")
_YES = {"yes", "y", "true", "1", "granted", "accepted", "opt-in", "on"}
_NO = {"no", "n", "false", "0", "denied", "refused", "rejected", "opt-out", "off"}


def _property(conn: Connection, *, business_id: str, key: str) -> None:
    try:
        config.get_property(conn, business_id=business_id, key=key)
    except NotFound:
        config.create_property(
            conn,
            business_id=business_id,
            spec=PropertyIn(key=key, name="Imported consent" if key == IMPORT_PROPERTY else key),
        )


def already_imported(conn: Connection, *, business_id: str, key: str) -> bool:
    found = conn.execute(
        select(consent_records.c.id).where(
            consent_records.c.business_id == business_id, consent_records.c.import_key == key
        )
    ).first()
    return found is not None


def record_imported(
    conn: Connection,
    *,
    business_id: str,
    property_key: str,
    purposes: dict[str, bool],
    anonymous_id: str | None,
    user_id: str | None,
    recorded_at: datetime,
    origin: str,
    notice: str | None,
    key: str,
) -> bool:
    """Record one decision a file states, marked as imported; False when this import key
    is in the ledger already (the file was imported before). Raises `InvalidInput` for an
    unknown purpose, a missing subject or a date in the future, recording nothing."""
    if already_imported(conn, business_id=business_id, key=key):
        return False
    config.ensure_default_purposes(conn, business_id=business_id)
    _property(conn, business_id=business_id, key=property_key)
    record_consent(
        conn,
        business_id=business_id,
        property_key=property_key,
        purposes=purposes,
        source="import",
        anonymous_id=anonymous_id,
        user_id=user_id,
        recorded_at=recorded_at,
        imported={"from": origin, "notice": notice, "key": key},
    )
    return True


def ledger_recorder(store: Store, *, business_id: str, filename: str) -> ConsentRecorder:
    """What a mapped import calls with the decisions of each chunk of rows: one
    transaction per chunk, each decision recorded or refused on its own."""

    def record(rows: Sequence[ConsentRow]) -> list[bool | FieldProblem]:
        outcomes: list[bool | FieldProblem] = []
        with store.write() as conn:
            for row in rows:
                try:
                    outcomes.append(
                        record_imported(
                            conn,
                            business_id=business_id,
                            property_key=row.property,
                            purposes=row.purposes,
                            anonymous_id=row.anonymous_id,
                            user_id=row.user_id,
                            recorded_at=row.recorded_at,
                            origin=f"{row.stated_source} ({filename})",
                            notice=None,
                            key=row.key,
                        )
                    )
                except InvalidInput as exc:
                    problem = exc.problems[0] if exc.problems else FieldProblem("consent", str(exc))
                    outcomes.append(FieldProblem(f"consent.{problem.field}", problem.reason))
        return outcomes

    return record


# --- Another CMP's records ---------------------------------------------------------------


@dataclass
class PriorRecords:
    read: int = 0
    recorded: int = 0
    already: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def parse_purposes(text: str) -> dict[str, bool]:
    """`marketing=yes; statistics=no`, `marketing:true|ads:false`, a bare key (granted),
    or a JSON object of booleans. Raises ValueError saying what is wrong."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValueError("is not a JSON object") from None
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            raise ValueError("must map purposes to true or false")
        return {str(k).strip().lower(): v for k, v in value.items()}
    out: dict[str, bool] = {}
    for part in re.split(r"[;,|]", text):
        part = part.strip()
        if not part:
            continue
        name, sep, answer = _split(part)
        key = name.strip().lower()
        if not key:
            raise ValueError(f"{part!r} names no purpose")
        if not sep or answer.strip().lower() in _YES:
            out[key] = True
        elif answer.strip().lower() in _NO:
            out[key] = False
        else:
            raise ValueError(f"{answer.strip()!r} for {key} is neither yes nor no")
    if not out:
        raise ValueError("is empty")
    return out


def _split(part: str) -> tuple[str, str, str]:
    match = re.match(r"^([^=:]*)([=:]?)(.*)$", part)
    assert match is not None
    return match.group(1), match.group(2), match.group(3)


def import_prior_records(
    store: Store,
    *,
    business_id: str,
    rows: Iterable[tuple[int, dict[str, str]]],
    origin: str,
    subject_kind: str = "anonymous_id",
    property_key: str = IMPORT_PROPERTY,
    timezone: str = "UTC",
) -> PriorRecords:
    """Record another CMP's records (columns subject, purposes, time, notice), each marked
    as imported from `origin`; bad rows are reported (row, field, reason), the rest kept.
    Importing the same file again records nothing twice."""
    if subject_kind not in SUBJECT_KINDS:
        raise InvalidInput([FieldProblem("subject_kind", f"use {' or '.join(SUBJECT_KINDS)}")])
    zone = ZoneInfo(timezone)
    report = PriorRecords()
    with store.write() as conn:
        for line, record in rows:
            report.read += 1
            problems: list[FieldProblem] = []
            subject = (record.get("subject") or "").strip()
            if not subject:
                problems.append(FieldProblem("subject", "is empty"))
            purposes: dict[str, bool] = {}
            try:
                purposes = parse_purposes(record.get("purposes") or "")
            except ValueError as exc:
                problems.append(FieldProblem("purposes", str(exc)))
            when: datetime | None = None
            try:
                when = parse_time((record.get("time") or "").strip(), "iso", zone)
            except ValueError as exc:
                problems.append(FieldProblem("time", str(exc)))
            notice = (record.get("notice") or "").strip() or None
            if problems or when is None:
                report.rejected += [
                    {"row": line, "field": p.field, "reason": p.reason} for p in problems
                ]
                continue
            key = "cmp-" + _key(subject_kind, subject, purposes, iso(when), notice or "", origin)
            try:
                fresh = record_imported(
                    conn,
                    business_id=business_id,
                    property_key=property_key,
                    purposes=purposes,
                    anonymous_id=subject if subject_kind == "anonymous_id" else None,
                    user_id=subject if subject_kind == "user_id" else None,
                    recorded_at=when,
                    origin=origin,
                    notice=notice,
                    key=key,
                )
            except InvalidInput as exc:
                report.rejected += [
                    {"row": line, "field": p.field, "reason": p.reason} for p in exc.problems
                ]
                continue
            if fresh:
                report.recorded += 1
            else:
                report.already += 1
    return report


def _key(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:36]
