"""Consent as other contexts use it: record a decision, read a person's current consent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Row, Select, bindparam, or_, select

from accord.consent import config, ledger
from accord.consent.geo import device_of, regime_for, truncate_ip
from accord.consent.models import (
    OPT_IN_REGIMES,
    REGIMES,
    SOURCES,
    ConsentState,
    LegitimateInterest,
    PropertyIn,
    PurposeIn,
    PurposeText,
    Subject,
    consent_properties,
    consent_records,
    consent_vendors,
)
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.store.db import Store

# Raises `InvalidInput` (naming field `tcString`) when a TC string is malformed.
TcValidator = Callable[[str], None]
# Clients' clocks drift; a choice dated further ahead than this is refused.
MAX_FUTURE = timedelta(minutes=10)


def validate_tc_string(tc_string: str) -> None:
    """Decode with the TCF codec; strings from before TCF v2.3 need no disclosed vendors."""
    from accord.consent import tcf

    tcf.decode(tc_string, require_disclosed_vendors=False)


@dataclass(frozen=True)
class Recorded:
    record_id: str
    hash: str
    state: ConsentState


def record_consent(
    conn: Connection,
    *,
    business_id: str,
    property_key: str,
    purposes: dict[str, bool],
    source: str,
    anonymous_id: str | None = None,
    user_id: str | None = None,
    language: str = "en",
    regime: str | None = None,
    notice_id: str | None = None,
    notice_version: int | None = None,
    variant: str | None = None,
    text_hash: str | None = None,
    vendors: dict[str, bool] | None = None,
    special_features: dict[str, bool] | None = None,
    legitimate_interest: dict[str, dict[str, bool]] | None = None,
    gpc: bool = False,
    tc_string: str | None = None,
    recorded_at: datetime | None = None,
    country: str | None = None,
    region: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    tc_validator: TcValidator = validate_tc_string,
    imported: dict[str, str | None] | None = None,
    evidence: dict[str, Any] | None = None,
) -> Recorded:
    """Append one consent decision to the business's ledger and return the new state.

    Used by `POST /v1/consent` (banner, preference centre, API) and by forms and
    imports (`source` "form" / "import"). Runs in the caller's transaction.

    - `purposes` are the subject's choices; keys must be purposes the business has,
      "necessary" is always recorded as granted and cannot be refused.
    - Without `regime`, the geo rules decide from `country` / `region`; a given
      opt-out regime is refused where the visitor's country calls for opt-in.
    - `ip` is stored truncated (IPv4 /24, IPv6 /48); the user agent is kept (cut to
      512 characters) with its device class.
    - A withdrawal is simply a record with the purpose set to false.
    - `imported` ({"from", "notice", "key"}) marks a decision taken from a file (source
      "import"): where the file says it was given, the notice it names, the import's key.
    - `evidence` is what a form's consent was given on (form and version, language,
      checkbox text, the double opt-in message id); hashed with the record.
    - Raises `InvalidInput` naming each bad field: no subject, unknown property,
      purpose or vendor, a notice or text hash that was never published, a malformed
      TC string, an unknown source or regime, a timestamp in the future.
    """
    now = utcnow()
    problems: list[FieldProblem] = []
    if not anonymous_id and not user_id:
        problems.append(FieldProblem("anonymousId", "anonymousId or userId is required"))
    if source not in SOURCES:
        problems.append(FieldProblem("source", f"must be one of {', '.join(SOURCES)}"))
    if regime is not None and regime not in REGIMES:
        problems.append(FieldProblem("regime", f"must be one of {', '.join(REGIMES)}"))
    try:
        prop = config.get_property(conn, business_id=business_id, key=property_key)
    except NotFound:
        raise InvalidInput(
            [*problems, FieldProblem("property", f"unknown property {property_key!r}")]
        ) from None
    known = config.purpose_keys(conn, business_id=business_id)
    for key, granted in purposes.items():
        if key not in known:
            problems.append(FieldProblem(f"purposes.{key}", "unknown purpose"))
        elif key == "necessary" and granted is not True:
            problems.append(FieldProblem("purposes.necessary", "cannot be refused"))
    vendors = dict(vendors or {})
    configured_vendors = (
        set(
            conn.execute(
                select(consent_vendors.c.key).where(consent_vendors.c.business_id == business_id)
            ).scalars()
        )
        if vendors
        else set()
    )
    for key in vendors:
        if key not in configured_vendors and not (key.isdigit() and 0 < int(key) < 65536):
            problems.append(FieldProblem(f"vendors.{key}", "unknown vendor (nor an IAB vendor id)"))
    if notice_id is not None:
        notice = config.notice_by_id(conn, business_id=business_id, notice_id=notice_id)
        if notice is None or notice["property_id"] != prop["id"]:
            problems.append(FieldProblem("notice.id", "is not a notice of this property"))
        else:
            if notice_version is not None and notice_version != notice["version"]:
                problems.append(FieldProblem("notice.version", "does not match notice.id"))
            notice_version, variant = notice["version"], notice["variant"]
            hashes: dict[str, str] = notice["text_hashes"]
            if text_hash is not None and hashes.get(language) != text_hash:
                shown_in = [lang for lang, value in hashes.items() if value == text_hash]
                problems.append(
                    FieldProblem(
                        "notice.text_hash",
                        f"is the hash of the {shown_in[0]!r} text, not of {language!r}"
                        if shown_in
                        else "matches no published text of the notice",
                    )
                )
            if text_hash is None:
                text_hash = notice["text_hashes"].get(language)
    elif text_hash is not None:
        problems.append(FieldProblem("notice.id", "is required with a text hash"))
    if tc_string is not None:
        try:
            tc_validator(tc_string)
        except InvalidInput as exc:
            problems += exc.problems or [FieldProblem("tcString", "malformed TC string")]
    when = recorded_at or now
    if when > now + MAX_FUTURE:
        problems.append(FieldProblem("timestamp", "is in the future"))
    located = (
        regime_for(country, region, config.geo_rules(conn, business_id=business_id))
        if country or regime is None
        else None
    )
    if regime is not None and located in OPT_IN_REGIMES and regime not in OPT_IN_REGIMES:
        # A client may not record a laxer regime than the visitor's place calls for:
        # collection reads the regime back from the ledger.
        problems.append(
            FieldProblem("regime", f"is {regime}, but the visitor in {country} is under {located}")
        )
    if problems:
        raise InvalidInput(problems)

    choices = {"necessary": True, **purposes} if "necessary" in known else dict(purposes)
    applied_regime = regime or located or "default"
    # An explicit choice about marketing beats GPC; without one, GPC opts out.
    sale_opt_out = not choices["marketing"] if "marketing" in purposes else gpc
    lint = legitimate_interest or {}
    fields: dict[str, Any] = {
        "property_id": prop["id"],
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "notice_id": notice_id,
        "notice_version": notice_version,
        "variant": variant,
        "text_hash": text_hash,
        "language": language,
        "regime": applied_regime,
        "country": country,
        "purposes": choices,
        "vendors": vendors,
        "special_features": dict(special_features or {}),
        "legitimate_interest": {
            "purposes": dict(lint.get("purposes", {})),
            "vendors": dict(lint.get("vendors", {})),
        },
        "gpc": gpc,
        "sale_opt_out": sale_opt_out,
        "source": source,
        "recorded_at": when,
        "received_at": now,
        "ip": truncate_ip(ip),
        "user_agent": user_agent[:512] if user_agent else None,
        "device": device_of(user_agent),
        "tc_string": tc_string,
        "imported": imported,
        "evidence": evidence,
    }
    appended = ledger.append(conn, business_id=business_id, fields=fields)
    state = current_state(
        conn,
        business_id=business_id,
        anonymous_ids=[anonymous_id] if anonymous_id else [],
        user_ids=[user_id] if user_id else [],
    )
    assert state is not None  # the record just appended belongs to the subject
    return Recorded(record_id=appended.record_id, hash=appended.hash, state=state)


def _records_statement(anonymous: bool, users: bool) -> Select[Any]:
    matches = []
    if anonymous:
        matches.append(consent_records.c.anonymous_id.in_(bindparam("anonymous", expanding=True)))
    if users:
        matches.append(consent_records.c.user_id.in_(bindparam("users", expanding=True)))
    return (
        select(consent_records)
        .where(consent_records.c.business_id == bindparam("business_id"), or_(*matches))
        .order_by(consent_records.c.recorded_at, consent_records.c.position)
    )


# Built once: collection reads the ledger on every call, and building the statement
# anew cost more than running it.
_RECORDS_OF = {
    (anonymous, users): _records_statement(anonymous, users)
    for anonymous in (True, False)
    for users in (True, False)
    if anonymous or users
}


def _records_of(
    conn: Connection, business_id: str, anonymous_ids: Iterable[str], user_ids: Iterable[str]
) -> list[Row[Any]]:
    anonymous, users = list(anonymous_ids), list(user_ids)
    if not anonymous and not users:
        return []
    statement = _RECORDS_OF[(bool(anonymous), bool(users))]
    parameters: dict[str, Any] = {"business_id": business_id}
    if anonymous:
        parameters["anonymous"] = anonymous
    if users:
        parameters["users"] = users
    return list(conn.execute(statement, parameters).all())


def _fold(rows: list[Row[Any]], column: str) -> dict[str, bool]:
    merged: dict[str, bool] = {}
    for row in rows:  # oldest first, so newer choices overwrite older ones
        merged.update(orjson.loads(getattr(row, column)))
    return merged


def granted_purposes(
    conn: Connection,
    *,
    business_id: str,
    anonymous_ids: Iterable[str] = (),
    user_ids: Iterable[str] = (),
) -> dict[str, bool]:
    """The current choice per purpose of one person known by several identifiers.

    Reads every ledger record of any of the identifiers; per purpose the newest record
    that mentions it wins (ordered by the decision's time, then chain position). A
    purpose absent from the result has no recorded choice: the caller applies the
    regime's default (opt-in regimes: not granted). Reads the ledger directly, so a
    withdrawal counts from the moment its record is committed. Activation calls this
    at send time.
    """
    return _fold(_records_of(conn, business_id, anonymous_ids, user_ids), "purposes")


def current_state(
    conn: Connection,
    *,
    business_id: str,
    anonymous_ids: Iterable[str] = (),
    user_ids: Iterable[str] = (),
) -> ConsentState | None:
    """The canonical state from the ledger (None when nothing was ever recorded)."""
    return _state_from(_records_of(conn, business_id, anonymous_ids, user_ids))


def current_states(
    conn: Connection,
    *,
    business_id: str,
    subjects: list[tuple[list[str], list[str]]],
    chunk: int = 400,
) -> list[ConsentState | None]:
    """`current_state` for many subjects (anonymousIds, userIds) with few queries.

    Collection asks this once per request instead of once per event.
    """
    anonymous = sorted({a for ids, _ in subjects for a in ids})
    users = sorted({u for _, ids in subjects for u in ids})
    rows: dict[int, Row[Any]] = {}
    for start in range(0, max(len(anonymous), len(users)), chunk):
        for row in _records_of(
            conn, business_id, anonymous[start : start + chunk], users[start : start + chunk]
        ):
            rows[row.position] = row
    ordered = sorted(rows.values(), key=lambda r: (r.recorded_at, r.position))
    by_anonymous: dict[str, list[Row[Any]]] = {}
    by_user: dict[str, list[Row[Any]]] = {}
    for row in ordered:
        if row.anonymous_id:
            by_anonymous.setdefault(row.anonymous_id, []).append(row)
        if row.user_id:
            by_user.setdefault(row.user_id, []).append(row)
    states: list[ConsentState | None] = []
    for anonymous_ids, user_ids in subjects:
        mine = {r.position: r for a in anonymous_ids for r in by_anonymous.get(a, [])}
        mine.update({r.position: r for u in user_ids for r in by_user.get(u, [])})
        states.append(_state_from(sorted(mine.values(), key=lambda r: (r.recorded_at, r.position))))
    return states


def _state_from(rows: list[Row[Any]]) -> ConsentState | None:
    """Fold a subject's records (oldest first) into its current state."""
    if not rows:
        return None
    latest = rows[-1]
    anonymous = next((r.anonymous_id for r in reversed(rows) if r.anonymous_id), None)
    user = next((r.user_id for r in reversed(rows) if r.user_id), None)
    interest: dict[str, dict[str, bool]] = {"purposes": {}, "vendors": {}}
    for row in rows:
        stored = orjson.loads(row.legitimate_interest)
        interest["purposes"].update(stored.get("purposes", {}))
        interest["vendors"].update(stored.get("vendors", {}))
    return ConsentState(
        subject=Subject(anonymous_id=anonymous, user_id=user),
        property_id=latest.property_id,
        regime=latest.regime,
        purposes=_fold(rows, "purposes"),
        vendors=_fold(rows, "vendors"),
        special_features=_fold(rows, "special_features"),
        legitimate_interest=LegitimateInterest(
            purposes=interest["purposes"], vendors=interest["vendors"]
        ),
        gpc=latest.gpc,
        sale_opt_out=latest.sale_opt_out,
        notice_version=latest.notice_version or 0,
        text_hash=latest.text_hash or "",
        language=latest.language,
        updated_at=latest.recorded_at,
        tc_string=next((r.tc_string for r in reversed(rows) if r.tc_string), None),
        granted_with_gpc=_granted_with_gpc(rows),
    )


def _granted_with_gpc(rows: list[Row[Any]]) -> frozenset[str]:
    """Purposes whose newest decision (rows oldest first) was a grant recorded with GPC on."""
    found: dict[str, bool] = {}
    for row in rows:
        for key, granted in orjson.loads(row.purposes).items():
            found[key] = bool(granted) and bool(row.gpc)
    return frozenset(key for key, yes in found.items() if yes)


def subject_state(conn: Connection, *, business_id: str, subject: str) -> ConsentState | None:
    """State of a subject named by one identifier, taken as anonymousId or userId."""
    return current_state(conn, business_id=business_id, anonymous_ids=[subject], user_ids=[subject])


def history(conn: Connection, *, business_id: str, subject: str) -> list[dict[str, Any]]:
    """Every ledger record of a subject (as anonymousId or userId), in chain order."""
    rows = _records_of(conn, business_id, [subject], [subject])
    return [ledger.record_json(row) for row in sorted(rows, key=lambda r: r.position)]


def records_of_person(
    conn: Connection, *, business_id: str, anonymous_ids: list[str], user_ids: list[str]
) -> list[dict[str, Any]]:
    """Every ledger record of a person known by several ids, once each, in chain order
    (for subject-rights exports)."""
    rows = _records_of(conn, business_id, anonymous_ids, user_ids)
    unique = {row.position: row for row in rows}
    return [ledger.record_json(unique[p]) for p in sorted(unique)]


# --- Whole-store entry points for the CLI ------------------------------------------------


def businesses(store: Store) -> list[str]:
    """Businesses that have consent configuration or records."""
    with store.read() as conn:
        configured = set(conn.execute(select(consent_properties.c.business_id)).scalars())
        return sorted(configured | set(ledger.businesses_with_records(conn)))


def verify_ledger(store: Store, *, business_id: str) -> ledger.Verification:
    with store.read() as conn:
        return ledger.verify(conn, business_id=business_id)


def proof_of(store: Store, *, business_id: str, subject: str, html: bool) -> str | None:
    """A subject's proof as JSON text or an HTML page; None without any record."""
    from accord.consent import proof

    with store.read() as conn:
        built = proof.build(conn, business_id=business_id, subject=subject)
    if not built["records"]:
        return None
    if html:
        return proof.render_html(built)
    return orjson.dumps(built, option=orjson.OPT_INDENT_2).decode()


def export_granted(store: Store, *, business_id: str, purpose: str) -> list[str]:
    """CSV lines (header first) of the identifiers whose choice grants `purpose`."""
    from accord.consent import export

    with store.read() as conn:
        rows = export.subjects_granting(conn, business_id=business_id, purpose=purpose)
    return list(export.to_csv(rows))


def opt_in_report(
    store: Store, *, business_id: str, by: str, engine_url: str
) -> list[dict[str, Any]]:
    """Opt-in rates per purpose and `by`, computed on the engine at `engine_url`."""
    from accord.consent import analytics
    from accord.engine.connection import connect

    if by not in analytics.DIMENSIONS:
        raise InvalidInput(
            [FieldProblem("by", f"must be one of {', '.join(analytics.DIMENSIONS)}")]
        )
    with store.read() as conn:
        table = analytics.decisions(conn, business_id=business_id)
    return analytics.opt_in_rates(connect(engine_url), table, by=by)


def ensure_property(store: Store, *, business_id: str, key: str, name: str) -> dict[str, Any]:
    """The property `key`, created (with default purposes and notice) if it is missing."""
    with store.write() as conn:
        return _property_made(conn, business_id=business_id, key=key, name=name)


def _property_made(conn: Connection, *, business_id: str, key: str, name: str) -> dict[str, Any]:
    try:
        return config.get_property(conn, business_id=business_id, key=key)
    except NotFound:
        return config.create_property(
            conn, business_id=business_id, spec=PropertyIn(key=key, name=name)
        )


def record_outside_banner(
    conn: Connection,
    *,
    business_id: str,
    property_key: str,
    property_name: str,
    purposes: dict[str, bool],
    source: str,
    anonymous_id: str | None,
    user_id: str | None,
    ip: str | None = None,
    user_agent: str | None = None,
    recorded_at: datetime | None = None,
    language: str = "en",
    evidence: dict[str, Any] | None = None,
) -> None:
    """Record a decision made outside a banner (a confirmed form, an unsubscribe link),
    in the `language` the person was shown it in.

    The property is made if missing, and a purpose the business has not configured yet
    is added as a custom purpose, so the ledger never refuses a decision a person
    really made.
    """
    config.ensure_default_purposes(conn, business_id=business_id)
    _property_made(conn, business_id=business_id, key=property_key, name=property_name)
    known = config.purpose_keys(conn, business_id=business_id)
    for key in purposes:
        if key not in known:
            config.save_purpose(
                conn,
                business_id=business_id,
                spec=PurposeIn(key=key, texts={"en": PurposeText(name=key.replace("_", " "))}),
            )
    record_consent(
        conn,
        business_id=business_id,
        property_key=property_key,
        purposes=purposes,
        source=source,
        anonymous_id=anonymous_id,
        user_id=user_id,
        ip=ip,
        user_agent=user_agent,
        recorded_at=recorded_at,
        language=language,
        evidence=evidence,
    )
