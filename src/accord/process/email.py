"""Messaging's view of the other contexts: decisions recorded in the consent ledger,
audiences from the audiences context, engagement that scores leads. The worker's jobs,
the journeys' email channel and the HTTP handlers all send email through this wiring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from accord.audiences import service as audiences
from accord.audiences.membership import member_ids
from accord.consent import service as consent_service
from accord.core.clock import parse_instant
from accord.leads.service import score_email_engagement
from accord.messaging.ports import Recipient, Wiring

# The consent property that form confirmations and unsubscribes are recorded under.
FORMS_PROPERTY = "lead-forms"


def record_in_ledger(
    conn: Connection,
    *,
    business_id: str,
    anonymous_id: str | None,
    user_id: str | None,
    purposes: Mapping[str, bool],
    source: str,
    evidence: Mapping[str, Any],
) -> None:
    """Append a form confirmation or an unsubscribe to the consent ledger, under the
    business's `lead-forms` property."""
    at = evidence.get("at")
    consent_service.record_outside_banner(
        conn,
        business_id=business_id,
        property_key=FORMS_PROPERTY,
        property_name="Lead forms and email",
        purposes=dict(purposes),
        # `form:<id>` is a confirmed form; `email_unsubscribe:<how>` is the person's own
        # request through Accord's links.
        source="form" if source.startswith("form") else "api",
        anonymous_id=anonymous_id,
        user_id=user_id,
        ip=evidence.get("ip"),
        user_agent=evidence.get("user_agent"),
        language=str(evidence.get("language") or "en"),
        recorded_at=parse_instant(at) if isinstance(at, str) else None,
        evidence=ledger_evidence(evidence) if source.startswith("form") else None,
    )


def ledger_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a form's consent: what the person saw and confirmed. The
    addresses are left out; the record has the truncated IP and the user agent already."""
    double_opt_in = evidence.get("double_opt_in") or {}
    return {
        "form_id": evidence.get("form_id"),
        "form_version": evidence.get("form_version"),
        "language": evidence.get("language"),
        "checkbox_text": evidence.get("checkbox_text"),
        "given_at": evidence.get("given_at"),
        "confirmation_message_id": double_opt_in.get("confirmation_message_id"),
        "confirmed_at": double_opt_in.get("confirmed_at"),
    }


def audience_recipients(conn: Connection, *, business_id: str, audience_id: str) -> list[Recipient]:
    """An audience's members who have an email address, as campaign recipients."""
    ids = member_ids(conn, business_id=business_id, audience=audience_id)
    people = audiences.people(conn, business_id=business_id, profile_ids=ids)
    return [
        Recipient(
            email=person.emails[0],
            anonymous_ids=person.anonymous_ids,
            user_ids=person.user_ids,
            traits=person.traits,
        )
        for person in people.values()
        if person.emails
    ]


def default_wiring() -> Wiring:
    """Decisions recorded in the consent ledger; audiences from the audiences context;
    human opens and clicks score leads."""
    return Wiring(
        record_consent=record_in_ledger,
        audience_members=audience_recipients,
        on_engagement=score_email_engagement,
    )
