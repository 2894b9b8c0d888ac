"""Email campaigns: creating, changing and scheduling them, their A/B variants, the listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Connection, select, update

from accord.accounts.models import Actor
from accord.accounts.service import audit, get_business
from accord.core.clock import utcnow
from accord.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.messaging.lists import require_list
from accord.messaging.mailer import Footer
from accord.messaging.models import AbTestIn, CampaignIn, CampaignPatch, email_campaigns
from accord.messaging.templates import CompiledTemplate, compile_template, load_template

# A campaign can be changed until it starts sending; after that it is what was sent.
EDITABLE_STATUSES = ("draft", "scheduled")


def _check(conn: Connection, *, business_id: str, data: CampaignIn) -> None:
    """What creating and changing a campaign both check: one target, templates and list
    of this business, a variant B that differs. Each problem names its field."""
    if (data.list_id is None) == (data.audience_id is None):
        raise InvalidInput([FieldProblem("list_id", "give exactly one of list_id, audience_id")])
    references: list[tuple[str, Any]] = [
        (
            "template_id",
            lambda: load_template(conn, business_id=business_id, template_id=data.template_id),
        )
    ]
    if data.list_id is not None:
        list_id = data.list_id
        references.append(
            ("list_id", lambda: require_list(conn, business_id=business_id, list_id=list_id))
        )
    if data.ab_test is not None:
        if data.ab_test.template_id is None and data.ab_test.subject is None:
            raise InvalidInput(
                [FieldProblem("ab_test", "variant B needs a subject or a template_id")]
            )
        if data.ab_test.subject is not None:
            try:
                compile_template(subject=data.ab_test.subject, html="", text="")
            except InvalidInput as exc:
                reasons = "; ".join(p.reason for p in exc.problems)
                raise InvalidInput([FieldProblem("ab_test.subject", reasons)]) from exc
        b_template = data.ab_test.template_id
        if b_template is not None:
            references.append(
                (
                    "ab_test.template_id",
                    lambda: load_template(conn, business_id=business_id, template_id=b_template),
                )
            )
    problems: list[FieldProblem] = []
    for field, look_up in references:
        try:
            look_up()
        except NotFound as exc:
            problems.append(FieldProblem(field, str(exc)))
    if problems:
        raise InvalidInput(problems)


def create_campaign(conn: Connection, *, business_id: str, data: CampaignIn) -> str:
    _check(conn, business_id=business_id, data=data)
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


def campaign_input(campaign: Any) -> CampaignIn:
    """A stored campaign as the input that would make it: what an edit starts from."""
    return CampaignIn(
        name=campaign.name,
        template_id=campaign.template_id,
        list_id=campaign.list_id,
        audience_id=campaign.audience_id,
        from_address=campaign.from_address,
        due_at=campaign.due_at,
        ab_test=AbTestIn.model_validate_json(campaign.ab_test) if campaign.ab_test else None,
        spend=campaign.spend,
    )


def update_campaign(
    conn: Connection,
    *,
    business_id: str,
    campaign_id: str,
    data: CampaignIn,
    actor: Actor,
    ip: str | None,
) -> None:
    """Replace what a draft or scheduled campaign will send, to whom, from whom and when.

    Once it is sending (or tested, or sent) it is refused with `Conflict`: the campaign
    is then the record of what was sent. With `due_at` it is scheduled, without a draft.
    """
    row = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
    if row.status not in EDITABLE_STATUSES:
        raise Conflict(
            f"campaign {campaign_id} is {row.status}; only draft and scheduled campaigns "
            "can be changed"
        )
    _check(conn, business_id=business_id, data=data)
    before = campaign_input(row).model_dump(mode="json")
    values = {
        "name": data.name,
        "template_id": data.template_id,
        "list_id": data.list_id,
        "audience_id": data.audience_id,
        "from_address": str(data.from_address),
        "status": "scheduled" if data.due_at else "draft",
        "due_at": data.due_at,
        "ab_test": data.ab_test.model_dump_json() if data.ab_test else None,
        "spend": data.spend,
    }
    # Conditional on the status, so a sender that took the campaign meanwhile wins.
    changed = conn.execute(
        update(email_campaigns)
        .where(
            email_campaigns.c.id == campaign_id,
            email_campaigns.c.business_id == business_id,
            email_campaigns.c.status.in_(EDITABLE_STATUSES),
        )
        .values(**values)
    ).rowcount
    if not changed:
        raise Conflict(f"campaign {campaign_id} started sending; it can no longer be changed")
    after = data.model_dump(mode="json")
    audit(
        conn,
        business_id=business_id,
        actor=actor,
        action="email_campaign.update",
        asset=("email_campaign", campaign_id),
        before={k: v for k, v in before.items() if after[k] != v},
        after={k: v for k, v in after.items() if before[k] != v},
        ip=ip,
    )


def patch_campaign(
    conn: Connection,
    *,
    business_id: str,
    campaign_id: str,
    patch: CampaignPatch,
    actor: Actor,
    ip: str | None,
) -> CampaignIn:
    """`update_campaign` with the fields `patch` sets over the stored ones; the result."""
    row = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
    if row.status not in EDITABLE_STATUSES:
        raise Conflict(
            f"campaign {campaign_id} is {row.status}; only draft and scheduled campaigns "
            "can be changed"
        )
    merged = {**campaign_input(row).model_dump(), **patch.model_dump(exclude_unset=True)}
    try:
        data = CampaignIn.model_validate(merged)
    except ValidationError as exc:
        raise InvalidInput(
            [FieldProblem(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        ) from exc
    update_campaign(
        conn, business_id=business_id, campaign_id=campaign_id, data=data, actor=actor, ip=ip
    )
    return data


def schedule_campaign(
    conn: Connection, *, business_id: str, campaign_id: str, due_at: datetime
) -> None:
    row = campaign_row(conn, business_id=business_id, campaign_id=campaign_id)
    if row.status not in ("draft", "scheduled"):
        raise Conflict(f"campaign {campaign_id} is {row.status}; only drafts can be scheduled")
    sender_footer(conn, business_id=business_id)  # refused now rather than when due
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


# Where the setting lives, for the error and the campaign page.
POSTAL_ADDRESS_SETTING = "business.address"
NO_POSTAL_ADDRESS = (
    "the business has no postal address, which every marketing email must show (CAN-SPAM); "
    "set it under Business settings (/business/settings, field Address) or with "
    'PUT /api/business {"address": ...}'
)


def sender_footer(conn: Connection, *, business_id: str) -> Footer:
    """The footer of this business's marketing email: its name and postal address.
    Without a postal address there is no lawful footer, so nothing may be sent."""
    business = get_business(conn, business_id=business_id)
    if not (business.address or "").strip():
        raise InvalidInput([FieldProblem(POSTAL_ADDRESS_SETTING, NO_POSTAL_ADDRESS)])
    return Footer(sender=business.name, postal_address=business.address)


def has_postal_address(conn: Connection, *, business_id: str) -> bool:
    return bool((get_business(conn, business_id=business_id).address or "").strip())


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
        if subjects["B"]:
            # Variant B's subject is a template too, rendered for each recipient.
            templates["B"] = templates["B"].with_subject(subjects["B"])
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
