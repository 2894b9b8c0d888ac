"""Messaging's view of the other contexts: decisions recorded in the consent ledger,
audiences from the audiences context, engagement that scores leads. The worker's jobs,
the journeys' email channel and the HTTP handlers all send email through this wiring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from accord.audiences import service as audiences
from accord.consent import config
from accord.consent import service as consent_service
from accord.consent.models import PropertyIn, PurposeIn, PurposeText
from accord.core.clock import parse_instant
from accord.core.errors import NotFound
from accord.leads.service import score_email_engagement
from accord.messaging.ports import Recipient
from accord.messaging.service import Wiring

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
    """Append a form confirmation or an unsubscribe to the consent ledger.

    Decisions are recorded under the business's `lead-forms` property; a purpose a form
    asks for that the business has not configured yet is added as a custom purpose, so
    the ledger never refuses a decision a person really made.
    """
    config.ensure_default_purposes(conn, business_id=business_id)
    try:
        config.get_property(conn, business_id=business_id, key=FORMS_PROPERTY)
    except NotFound:
        config.create_property(
            conn,
            business_id=business_id,
            spec=PropertyIn(key=FORMS_PROPERTY, name="Lead forms and email"),
        )
    known = config.purpose_keys(conn, business_id=business_id)
    for key in purposes:
        if key not in known:
            config.save_purpose(
                conn,
                business_id=business_id,
                spec=PurposeIn(key=key, texts={"en": PurposeText(name=key.replace("_", " "))}),
            )
    at = evidence.get("at")
    consent_service.record_consent(
        conn,
        business_id=business_id,
        property_key=FORMS_PROPERTY,
        purposes=dict(purposes),
        # `form:<id>` is a confirmed form; `email_unsubscribe:<how>` is the person's own
        # request through Accord's links.
        source="form" if source.startswith("form") else "api",
        anonymous_id=anonymous_id,
        user_id=user_id,
        ip=evidence.get("ip"),
        user_agent=evidence.get("user_agent"),
        recorded_at=parse_instant(at) if isinstance(at, str) else None,
    )


def audience_recipients(conn: Connection, *, business_id: str, audience_id: str) -> list[Recipient]:
    """An audience's members who have an email address, as campaign recipients."""
    ids = audiences.member_ids(conn, business_id=business_id, audience=audience_id)
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
