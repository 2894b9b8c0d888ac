"""Lead imports: Lead Ads exports and mapped CSV files, each row checked and reported."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from accord.accounts.models import SourceRef
from accord.accounts.service import create_source
from accord.analytics import spend as spend_model
from accord.collect.consent_gate import ConsentGate
from accord.collect.validation import Limits
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.identity.rules import phone_e164
from accord.leads.identify import join_identity, lead_traits
from accord.leads.lead_ads import LeadRow
from accord.leads.models import (
    lead_imports,
    leads,
)
from accord.leads.validation import normalise_email_address
from accord.store.db import Store


def _import_source(conn: Connection, *, business_id: str, kind: str) -> SourceRef:
    found = conn.execute(
        select(lead_imports.c.source_id)
        .where(lead_imports.c.business_id == business_id, lead_imports.c.kind == kind)
        .limit(1)
    ).scalar()
    if found is not None:
        return SourceRef(business_id=business_id, source_id=found)
    return create_source(conn, business_id=business_id, name=f"{kind} imports", kind="import")


@dataclass
class LeadImport:
    id: str
    read: int = 0
    added: int = 0
    updated: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def import_leads(
    store: Store,
    *,
    business_id: str,
    rows: Iterable[LeadRow],
    kind: str,
    name: str,
    spend: float | None,
    gate: ConsentGate,
    limits: Limits,
    phone_region: str | None = None,
) -> LeadImport:
    """Add imported leads (not mailable: an export carries no email consent) and send each
    into the identity graph; rows that cannot be used are reported with the reason."""
    report = LeadImport(id=new_id("imp"))
    identities: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []
    with store.write() as conn:
        source = _import_source(conn, business_id=business_id, kind=kind)
        for row in rows:
            report.read += 1
            problems: list[tuple[str, str]] = []
            email = row.fields.get("email", "")
            try:
                email = normalise_email_address(email, check_deliverability=False)
            except ValueError as exc:
                problems.append(("email", str(exc) if email else "is missing"))
            phone = row.fields.get("phone")
            if phone:
                try:
                    phone = phone_e164(phone, phone_region)
                except ValueError as exc:
                    problems.append(("phone", str(exc)))
            if problems:
                report.rejected.extend(
                    {"line": row.line, "field": f, "reason": r} for f, r in problems
                )
                continue
            existing = conn.execute(
                select(leads.c.id, leads.c.anonymous_id).where(
                    leads.c.business_id == business_id, leads.c.email == email
                )
            ).first()
            answers = {**row.answers, **{k: v for k, v in row.ad.items()}}
            if existing is None:
                anonymous_id = f"lead-{uuid.uuid4().hex}"
                conn.execute(
                    leads.insert().values(
                        id=new_id("lead"),
                        business_id=business_id,
                        email=email,
                        anonymous_id=anonymous_id,
                        name=row.fields.get("name"),
                        phone=phone,
                        company=row.fields.get("company"),
                        answers=orjson.dumps(answers).decode(),
                        utm=orjson.dumps(
                            {"utm_campaign": row.ad["campaign_name"]}
                            if row.ad.get("campaign_name")
                            else {}
                        ).decode(),
                        source=kind,
                        import_id=report.id,
                        status="imported",
                        created_at=utcnow(),
                    )
                )
                report.added += 1
            else:
                anonymous_id = existing.anonymous_id
                report.updated += 1
            traits = lead_traits(
                {
                    "email": email,
                    "name": row.fields.get("name"),
                    "phone": phone,
                    "company": row.fields.get("company"),
                }
            )
            lead_key = str(row.ad.get("lead_id") or f"{report.id}-{row.line}")
            identities.append(
                (f"{kind}-{lead_key}", anonymous_id, traits, {"source": {"import": report.id}})
            )
        conn.execute(
            lead_imports.insert().values(
                id=report.id,
                business_id=business_id,
                kind=kind,
                name=name,
                source_id=source.source_id,
                spend=spend,
                rows_read=report.read,
                leads_added=report.added,
                rejected=orjson.dumps(report.rejected).decode(),
                created_at=utcnow(),
            )
        )
        if spend is not None:
            spend_model.record_import(
                conn,
                business_id=business_id,
                import_id=report.id,
                kind=kind,
                name=name,
                amount=spend,
            )
    for start in range(0, len(identities), 1000):
        join_identity(
            store,
            source=source,
            leads_traits=identities[start : start + 1000],
            gate=gate,
            limits=limits,
        )
    return report


def list_imports(conn: Connection, *, business_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(lead_imports)
        .where(lead_imports.c.business_id == business_id)
        .order_by(lead_imports.c.created_at.desc())
        .limit(limit)
    ).all()
    return [{**row._mapping, "rejected": orjson.loads(row.rejected)} for row in rows]
