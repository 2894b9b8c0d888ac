"""Stored cookie scans of a property's site: asked for, run later by a job, their findings
checked against what the banner declares, and a finding added to the declaration."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection, Row, case, func, select, update

from accord.consent import config
from accord.consent.models import (
    PurposeIn,
    VendorIn,
    consent_scan_findings,
    consent_scans,
)
from accord.consent.scanner import MAX_PAGES, ScanFailed, ScanReport, name_matches, scan
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.core.outbound import OutboundPolicy
from accord.store.db import Store

# A scan left "running" by a worker that stopped is taken again after this long.
STALE_AFTER = timedelta(minutes=15)
ERROR_CHARS = 2000

Scanner = Callable[..., ScanReport]


def _property_by_key(conn: Connection, business_id: str, key: str) -> dict[str, Any]:
    try:
        return config.get_property(conn, business_id=business_id, key=key)
    except NotFound:
        raise InvalidInput([FieldProblem("property", f"unknown property {key!r}")]) from None


def request_scan(
    conn: Connection,
    *,
    business_id: str,
    property_key: str,
    url: str,
    pages: int = 10,
    fetch_third_party: bool = True,
    requested_by: str | None = None,
    now: datetime | None = None,
    outbound: OutboundPolicy,
) -> dict[str, Any]:
    """Queue a scan of `url` for the property; the `consent.scan` job runs it. An address
    the outbound policy refuses (loopback, private, metadata...) is refused here too."""
    problems: list[FieldProblem] = []
    prop: dict[str, Any] | None = None
    try:
        prop = _property_by_key(conn, business_id, property_key)
    except InvalidInput as exc:
        problems += exc.problems
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(FieldProblem("url", "must be an http:// or https:// address"))
    elif len(url) > 2000:
        problems.append(FieldProblem("url", "must be at most 2000 characters"))
    else:
        problems += outbound.problems({"url": url.strip()})
    if not 1 <= pages <= MAX_PAGES:
        problems.append(FieldProblem("pages", f"must be between 1 and {MAX_PAGES}"))
    if problems or prop is None:
        raise InvalidInput(problems)
    scan_id = new_id("scan")
    conn.execute(
        consent_scans.insert().values(
            id=scan_id,
            business_id=business_id,
            property_id=prop["id"],
            url=url.strip(),
            max_pages=pages,
            fetch_third_party=fetch_third_party,
            status="queued",
            requested_by=requested_by,
            requested_at=now or utcnow(),
            pages="[]",
        )
    )
    return get_scan(conn, business_id=business_id, scan_id=scan_id)


def _waiting(property_id: str, now: datetime) -> Any:
    return (consent_scans.c.property_id == property_id) & (
        (consent_scans.c.status == "queued")
        | ((consent_scans.c.status == "running") & (consent_scans.c.started_at < now - STALE_AFTER))
    )


def has_waiting(conn: Connection, *, property_id: str, now: datetime) -> bool:
    """Whether the property has a scan to run (queued, or left running by a stopped worker)."""
    found = conn.execute(select(consent_scans.c.id).where(_waiting(property_id, now)).limit(1))
    return found.first() is not None


def _take(store: Store, property_id: str, now: datetime) -> list[Row[Any]]:
    with store.write() as conn:
        rows = list(
            conn.execute(
                select(consent_scans)
                .where(_waiting(property_id, now))
                .order_by(consent_scans.c.requested_at, consent_scans.c.id)
            ).all()
        )
        if rows:
            conn.execute(
                update(consent_scans)
                .where(consent_scans.c.id.in_([row.id for row in rows]))
                .values(status="running", started_at=now)
            )
    return rows


def run_waiting(
    store: Store,
    *,
    property_id: str,
    now: datetime | None = None,
    outbound: OutboundPolicy,
    scanner: Scanner = scan,
    chromium: str | None = None,
) -> dict[str, float]:
    """Run the property's waiting scans one after the other and store what each found.

    A scan that cannot be carried out (bad address, no browser, a crash) is stored as
    failed with the reason; the others still run.
    """
    now = now or utcnow()
    counts = {"scans": 0.0, "failed": 0.0, "findings": 0.0, "flagged": 0.0}
    for row in _take(store, property_id, now):
        counts["scans"] += 1
        try:
            report = scanner(
                row.url,
                pages=row.max_pages,
                chromium=chromium,
                fetch_third_party=row.fetch_third_party,
                outbound=outbound,
            )
        except Exception as exc:  # a failed scan is the scan's result, not the job's
            reason = str(exc) if isinstance(exc, ScanFailed) else f"{type(exc).__name__}: {exc}"
            with store.write() as conn:
                conn.execute(
                    update(consent_scans)
                    .where(consent_scans.c.id == row.id)
                    .values(status="failed", finished_at=utcnow(), error=reason[:ERROR_CHARS])
                )
            counts["failed"] += 1
            continue
        with store.write() as conn:
            _store_report(conn, row, report)
        counts["findings"] += len(report.findings)
        counts["flagged"] += len(report.flagged)
    return counts


def _store_report(conn: Connection, row: Row[Any], report: ScanReport) -> None:
    # A scan taken again after a stopped worker replaces what the first try stored.
    conn.execute(consent_scan_findings.delete().where(consent_scan_findings.c.scan_id == row.id))
    if report.findings:
        conn.execute(
            consent_scan_findings.insert(),
            [
                {
                    **{key: value for key, value in asdict(f).items() if key != "example"},
                    "name": f.name[:255],
                    "domain": f.domain[:255],
                    "page": f.page[:2000],
                    "reason": f.reason[:500],
                    "example": f.example[:500],
                    "scan_id": row.id,
                    "business_id": row.business_id,
                }
                for f in report.findings
            ],
        )
    conn.execute(
        update(consent_scans)
        .where(consent_scans.c.id == row.id)
        .values(
            status="succeeded",
            finished_at=utcnow(),
            pages=orjson.dumps(report.pages).decode(),
            consent_action=(report.consent_action or "")[:255] or None,
            error=None,
        )
    )


# --- Reading ---------------------------------------------------------------------------


def _scan_json(row: Row[Any], findings: int = 0, flagged: int = 0) -> dict[str, Any]:
    out = dict(row._mapping)
    out["pages"] = orjson.loads(row.pages)
    out["findings"] = findings
    out["flagged"] = flagged
    return out


def list_scans(
    conn: Connection, *, business_id: str, property_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest scans first, with how many findings each has and how many are flagged."""
    tally = (
        select(
            consent_scan_findings.c.scan_id,
            func.count().label("findings"),
            func.sum(case((consent_scan_findings.c.flagged, 1), else_=0)).label("flagged"),
        )
        .where(consent_scan_findings.c.business_id == business_id)
        .group_by(consent_scan_findings.c.scan_id)
        .subquery()
    )
    query = (
        select(consent_scans, tally.c.findings.label("n_findings"), tally.c.flagged)
        .outerjoin(tally, tally.c.scan_id == consent_scans.c.id)
        .where(consent_scans.c.business_id == business_id)
    )
    if property_id is not None:
        query = query.where(consent_scans.c.property_id == property_id)
    rows = conn.execute(
        query.order_by(consent_scans.c.requested_at.desc(), consent_scans.c.id).limit(limit)
    ).all()
    out = []
    for row in rows:
        item = _scan_json(row, int(row.n_findings or 0), int(row.flagged or 0))
        item.pop("n_findings", None)
        out.append(item)
    return out


def get_scan(conn: Connection, *, business_id: str, scan_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(consent_scans).where(
            consent_scans.c.business_id == business_id, consent_scans.c.id == scan_id
        )
    ).first()
    if row is None:
        raise NotFound(f"scan {scan_id!r}")
    found = findings(conn, business_id=business_id, scan_id=scan_id)
    return _scan_json(row, len(found), sum(1 for f in found if f["flagged"]))


def _matches(pattern: str, name: str) -> bool:
    try:
        return name_matches(pattern, name)
    except re.error:  # a purpose's pattern that is not a valid expression matches nothing
        return False


def declared_purpose(purposes: list[dict[str, Any]], name: str) -> str | None:
    """The purpose whose cookie list names `name` (the banner deletes it on withdrawal)."""
    return next(
        (p["key"] for p in purposes if any(_matches(pattern, name) for pattern in p["cookies"])),
        None,
    )


def declared_vendor(vendors: list[dict[str, Any]], vendor: str | None) -> dict[str, Any] | None:
    """The configured vendor a finding's vendor is, by name or key (case does not matter)."""
    if not vendor:
        return None
    wanted = {vendor.strip().lower(), vendor_key(vendor).lower()}
    return next(
        (v for v in vendors if v["name"].lower() in wanted or str(v["id"]).lower() in wanted),
        None,
    )


def vendor_key(vendor: str) -> str:
    """A vendor key (`[A-Za-z0-9_-]{1,40}`) from a vendor's or a host's name."""
    key = re.sub(r"[^a-z0-9]+", "-", vendor.lower()).strip("-")[:40].strip("-")
    return key or "vendor"


def findings(conn: Connection, *, business_id: str, scan_id: str) -> list[dict[str, Any]]:
    """A scan's findings, each with whether the banner declares it today.

    A cookie or storage key is declared when a purpose's cookie list names it; a request
    when its vendor is one of the business's vendors.
    """
    rows = conn.execute(
        select(consent_scan_findings)
        .where(
            consent_scan_findings.c.business_id == business_id,
            consent_scan_findings.c.scan_id == scan_id,
        )
        .order_by(
            consent_scan_findings.c.flagged.desc(),
            consent_scan_findings.c.kind,
            consent_scan_findings.c.name,
        )
    ).all()
    purposes = config.list_purposes(conn, business_id=business_id)
    vendors = config.list_vendors(conn, business_id=business_id)
    out = []
    for row in rows:
        item = dict(row._mapping)
        listed_as = None if row.kind == "request" else declared_purpose(purposes, row.name)
        vendor = declared_vendor(vendors, _vendor_name(row))
        item["declared_purpose"] = listed_as
        item["vendor_declared"] = vendor is not None
        item["declared"] = vendor is not None if row.kind == "request" else listed_as is not None
        out.append(item)
    return out


# --- Declaring a finding ---------------------------------------------------------------


def _vendor_name(row: Row[Any]) -> str | None:
    """The finding's vendor; a request the catalogue does not know is its host's."""
    return row.vendor or (row.domain if row.kind == "request" else None)


def _finding(conn: Connection, business_id: str, scan_id: str | None, finding_id: int) -> Row[Any]:
    query = select(consent_scan_findings).where(
        consent_scan_findings.c.business_id == business_id,
        consent_scan_findings.c.id == finding_id,
    )
    if scan_id is not None:
        query = query.where(consent_scan_findings.c.scan_id == scan_id)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"finding {finding_id}")
    return row


def declare(
    conn: Connection,
    *,
    business_id: str,
    finding_id: int,
    purpose: str,
    scan_id: str | None = None,
) -> dict[str, Any]:
    """Add a finding to what the banner declares under `purpose`.

    A cookie or storage key joins the purpose's cookie list (the banner deletes it when
    the purpose is withdrawn); the finding's vendor (for a request without a known
    vendor, its host) becomes one of the business's vendors with that purpose. Returns
    what changed. With `scan_id`, the finding must be one of that scan's.
    """
    row = _finding(conn, business_id, scan_id, finding_id)
    purposes = config.list_purposes(conn, business_id=business_id)
    chosen = next((p for p in purposes if p["key"] == purpose), None)
    if chosen is None:
        raise InvalidInput([FieldProblem("purpose", f"unknown purpose {purpose!r}")])
    changed: dict[str, Any] = {"cookie": None, "vendor": None}
    if row.kind != "request" and not any(_matches(p, row.name) for p in chosen["cookies"]):
        try:
            fields = {key: value for key, value in chosen.items() if key != "required"}
            spec = PurposeIn.model_validate({**fields, "cookies": [*chosen["cookies"], row.name]})
        except ValidationError as exc:
            raise InvalidInput(
                [FieldProblem("purpose", f"cannot list {row.name!r} under {purpose}: {exc}")]
            ) from exc
        config.save_purpose(conn, business_id=business_id, spec=spec)
        changed["cookie"] = row.name
    vendor_name = _vendor_name(row)
    if vendor_name:
        vendors = config.list_vendors(conn, business_id=business_id)
        known = declared_vendor(vendors, vendor_name)
        if known is None:
            spec_vendor = VendorIn(
                key=vendor_key(vendor_name), name=vendor_name[:255], purposes=[purpose]
            )
        elif purpose not in known["purposes"]:
            spec_vendor = VendorIn(
                key=str(known["id"]),
                name=known["name"],
                purposes=[*known["purposes"], purpose],
                tcf_id=known["tcf_id"],
                policy_url=known["policy_url"],
            )
        else:
            spec_vendor = None
        if spec_vendor is not None:
            config.save_vendor(conn, business_id=business_id, spec=spec_vendor)
            changed["vendor"] = spec_vendor.name
    return changed
