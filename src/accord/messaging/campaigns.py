"""Email campaigns: creating and scheduling them, their A/B variants, and the listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.messaging.lists import require_list
from accord.messaging.models import CampaignIn, email_campaigns
from accord.messaging.templates import CompiledTemplate, load_template


def create_campaign(conn: Connection, *, business_id: str, data: CampaignIn) -> str:
    if (data.list_id is None) == (data.audience_id is None):
        raise InvalidInput([FieldProblem("list_id", "give exactly one of list_id, audience_id")])
    load_template(conn, business_id=business_id, template_id=data.template_id)
    if data.list_id is not None:
        require_list(conn, business_id=business_id, list_id=data.list_id)
    if data.ab_test is not None:
        if data.ab_test.template_id is None and data.ab_test.subject is None:
            raise InvalidInput(
                [FieldProblem("ab_test", "variant B needs a subject or a template_id")]
            )
        if data.ab_test.template_id is not None:
            load_template(conn, business_id=business_id, template_id=data.ab_test.template_id)
    campaign_id = new_id("cmp")
    conn.execute(
        email_campaigns.insert().values(
            id=campaign_id,
            business_id=business_id,
            name=data.name,
            template_id=data.template_id,
            list_id=data.list_id,
            audience_id=data.audience_id,
            from_address=str(data.from_address),
            status="scheduled" if data.due_at else "draft",
            due_at=data.due_at,
            ab_test=data.ab_test.model_dump_json() if data.ab_test else None,
            spend=data.spend,
            created_at=utcnow(),
        )
    )
    return campaign_id


def schedule_campaign(
    conn: Connection, *, business_id: str, campaign_id: str, due_at: datetime
) -> None:
    row = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
    if row.status not in ("draft", "scheduled"):
        raise Conflict(f"campaign {campaign_id} is {row.status}; only drafts can be scheduled")
    conn.execute(
        update(email_campaigns)
        .where(email_campaigns.c.id == campaign_id)
        .values(status="scheduled", due_at=due_at)
    )


def campaign_row(conn: Connection, *, business_id: str, campaign_id: str) -> Any:
    row = conn.execute(
        select(email_campaigns).where(
            email_campaigns.c.id == campaign_id, email_campaigns.c.business_id == business_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"campaign {campaign_id}")
    return row


def variants(
    conn: Connection, campaign: Any
) -> tuple[dict[str, CompiledTemplate], dict[str, str | None]]:
    """Each variant's template and subject override: A, and B when A/B tested."""
    business_id = campaign.business_id
    templates = {
        "A": load_template(conn, business_id=business_id, template_id=campaign.template_id)
    }
    subjects: dict[str, str | None] = {"A": None}
    if campaign.ab_test:
        ab = orjson.loads(campaign.ab_test)
        templates["B"] = (
            load_template(conn, business_id=business_id, template_id=ab["template_id"])
            if ab.get("template_id")
            else templates["A"]
        )
        subjects["B"] = ab.get("subject")
    return templates, subjects


def list_campaigns(conn: Connection, *, business_id: str, limit: int) -> list[Any]:
    """The business's latest campaigns, newest first."""
    return list(
        conn.execute(
            select(email_campaigns)
            .where(email_campaigns.c.business_id == business_id)
            .order_by(email_campaigns.c.created_at.desc())
            .limit(limit)
        ).all()
    )
