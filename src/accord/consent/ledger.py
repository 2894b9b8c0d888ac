"""The consent ledger: append-only records, hash-chained per business, and their verification.

Hashing: each record's `hash` is the SHA-256 (hex) of the canonical JSON of every
field in `HASHED_FIELDS` (which includes `position` and `prev_hash`): keys sorted,
no spaces, UTF-8, datetimes as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, JSON columns as the
objects they hold; a record imported from a file adds its `imported` object (records
made through Accord have none, so their hashes are as before), and a record of a form's
consent adds its `evidence` object the same way (double opt-in: form and version, language,
checkbox text, confirmation message id; older records have none and verify as they did).
The first record of a
business has `prev_hash` = 64 zeros. The business's chain head (`consent_chain_heads`)
holds the length and the last hash, so removing records from the end is detected too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accord.consent.models import GENESIS_HASH, consent_chain_heads, consent_records
from accord.core.ids import new_id

JSON_FIELDS = ("purposes", "vendors", "special_features", "legitimate_interest")
HASHED_FIELDS = (
    "id",
    "business_id",
    "position",
    "property_id",
    "anonymous_id",
    "user_id",
    "notice_id",
    "notice_version",
    "variant",
    "text_hash",
    "language",
    "regime",
    "country",
    "purposes",
    "vendors",
    "special_features",
    "legitimate_interest",
    "gpc",
    "sale_opt_out",
    "source",
    "recorded_at",
    "received_at",
    "ip",
    "user_agent",
    "device",
    "tc_string",
    "prev_hash",
)


# JSON objects hashed with a record only when it has them, so records without them keep
# the hashes they were written with.
OPTIONAL_HASHED = ("imported", "evidence")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes every hash in consent is taken over."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def instant_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(fields: dict[str, Any]) -> str:
    """The SHA-256 hex of a record's canonical form (JSON columns given as objects)."""
    canonical: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = fields.get(name)
        if isinstance(value, datetime):
            value = instant_text(value)
        canonical[name] = value
    for optional in OPTIONAL_HASHED:
        if fields.get(optional) is not None:
            canonical[optional] = fields[optional]
    return hashlib.sha256(canonical_json(canonical)).hexdigest()


def _stored_fields(row: Row[Any] | dict[str, Any]) -> dict[str, Any]:
    mapping = dict(row._mapping) if isinstance(row, Row) else dict(row)
    for name in JSON_FIELDS:
        mapping[name] = orjson.loads(mapping[name])
    for optional in OPTIONAL_HASHED:
        if mapping.get(optional) is not None:
            mapping[optional] = orjson.loads(mapping[optional])
    return mapping


@dataclass(frozen=True)
class Appended:
    record_id: str
    position: int
    hash: str


def _ensure_head(conn: Connection, business_id: str, now: datetime) -> None:
    values = {
        "business_id": business_id,
        "length": 0,
        "head_hash": GENESIS_HASH,
        "updated_at": now,
    }
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(consent_chain_heads).values(values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(consent_chain_heads).values(values).on_conflict_do_nothing())


def append(conn: Connection, *, business_id: str, fields: dict[str, Any]) -> Appended:
    """Add one record at the end of the business's chain, in the caller's transaction.

    `fields` holds every hashed field except id, business_id, position and prev_hash;
    JSON columns as objects; `imported` ({"from", "notice", "key"}) only for a record
    imported from a file. The chain head row is locked for the rest of the
    transaction (SELECT ... FOR UPDATE on PostgreSQL; SQLite transactions here begin
    IMMEDIATE, which already serialises writers), so concurrent appends queue.
    """
    now = fields["received_at"]
    head_query = select(consent_chain_heads.c.length, consent_chain_heads.c.head_hash).where(
        consent_chain_heads.c.business_id == business_id
    )
    if conn.dialect.name == "postgresql":
        head_query = head_query.with_for_update()
    head = conn.execute(head_query).first()
    if head is None:
        # The business's first record: create its head (once, even when two race).
        _ensure_head(conn, business_id, now)
        head = conn.execute(head_query).one()
    record = dict(fields)
    record.update(
        id=new_id("cr"),
        business_id=business_id,
        position=head.length + 1,
        prev_hash=head.head_hash,
    )
    record["hash"] = record_hash(record)
    row = dict(record)
    for name in JSON_FIELDS:
        row[name] = canonical_json(record[name]).decode()
    imported = record.get("imported")
    if imported is not None:
        row["imported"] = canonical_json(imported).decode()
        row["import_key"] = imported["key"]
    if record.get("evidence") is not None:
        row["evidence"] = canonical_json(record["evidence"]).decode()
    conn.execute(consent_records.insert().values(row))
    conn.execute(
        update(consent_chain_heads)
        .where(consent_chain_heads.c.business_id == business_id)
        .values(length=record["position"], head_hash=record["hash"], updated_at=now)
    )
    return Appended(record_id=record["id"], position=record["position"], hash=record["hash"])


@dataclass(frozen=True)
class Problem:
    position: int
    record_id: str | None
    reason: str


@dataclass(frozen=True)
class Verification:
    business_id: str
    records: int
    head_hash: str
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "business_id": self.business_id,
            "ok": self.ok,
            "records": self.records,
            "head_hash": self.head_hash,
            "first_bad_record": None
            if self.problem is None
            else {
                "position": self.problem.position,
                "record_id": self.problem.record_id,
                "reason": self.problem.reason,
            },
        }


def _rows(conn: Connection, business_id: str, chunk: int = 2000) -> Iterator[Row[Any]]:
    last = 0
    while True:
        rows = conn.execute(
            select(consent_records)
            .where(consent_records.c.business_id == business_id, consent_records.c.position > last)
            .order_by(consent_records.c.position)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].position


def verify(conn: Connection, *, business_id: str) -> Verification:
    """Walk the chain in order and name the first record that breaks it.

    Detects a changed field (hash mismatch), a removed record (gap in positions, or a
    chain shorter than its head), an inserted record (duplicate position or a
    predecessor hash that does not match), and reordered rows (storage order that
    disagrees with chain order, or a position changed under its hash).
    """
    expected_prev = GENESIS_HASH
    expected_position = 1
    last_seq = 0
    count = 0

    def fail(position: int, record_id: str | None, reason: str) -> Verification:
        return Verification(business_id, count, expected_prev, Problem(position, record_id, reason))

    for row in _rows(conn, business_id):
        fields = _stored_fields(row)
        if row.position != expected_position:
            if row.position > expected_position:
                return fail(
                    expected_position,
                    row.id,
                    f"record at position {expected_position} is missing "
                    f"(next record found is at {row.position})",
                )
            return fail(row.position, row.id, "position appears twice")
        if row.prev_hash != expected_prev:
            return fail(row.position, row.id, "previous-record hash does not match the chain")
        if record_hash(fields) != row.hash:
            return fail(row.position, row.id, "content does not match its hash (altered)")
        if row.seq <= last_seq:
            return fail(row.position, row.id, "stored out of chain order (reordered)")
        last_seq = row.seq
        expected_prev = row.hash
        expected_position += 1
        count += 1

    head = conn.execute(
        select(consent_chain_heads.c.length, consent_chain_heads.c.head_hash).where(
            consent_chain_heads.c.business_id == business_id
        )
    ).first()
    head_length = head.length if head is not None else 0
    head_hash = head.head_hash if head is not None else GENESIS_HASH
    if head_length != count or head_hash != expected_prev:
        return fail(
            count + 1,
            None,
            f"chain head says {head_length} records ending in {head_hash[:12]}…, "
            f"the ledger holds {count} ending in {expected_prev[:12]}… (records removed "
            "from the end, or the head altered)",
        )
    return Verification(business_id, count, expected_prev, None)


def businesses_with_records(conn: Connection) -> list[str]:
    heads = set(conn.execute(select(consent_chain_heads.c.business_id)).scalars())
    records = set(conn.execute(select(consent_records.c.business_id).distinct()).scalars())
    return sorted(heads | records)


def record_json(row: Row[Any]) -> dict[str, Any]:
    """A stored record as JSON, exactly the hashed fields plus its hash."""
    fields = _stored_fields(row)
    out = {name: fields[name] for name in HASHED_FIELDS}
    for name in ("recorded_at", "received_at"):
        out[name] = instant_text(fields[name])
    for optional in OPTIONAL_HASHED:
        if fields.get(optional) is not None:
            out[optional] = fields[optional]
    out["hash"] = fields["hash"]
    return out
