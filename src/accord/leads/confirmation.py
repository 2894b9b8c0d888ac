"""Double opt-in: the confirmation email, and what confirming records and hands out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, select, update
from starlette.concurrency import run_in_threadpool

from accord.core.clock import iso, utcnow
from accord.core.errors import Conflict, NotFound
from accord.core.signing import Signer
from accord.leads.forms import Form, get_form
from accord.leads.i18n import localised, text
from accord.leads.identify import lead_traits
from accord.leads.magnets import assign_coupon
from accord.leads.models import (
    lead_consents,
    leads,
)
from accord.messaging.lists import add_member
from accord.messaging.mailer import Mailer, send_transactional
from accord.messaging.models import MemberIn
from accord.messaging.ports import Wiring
from accord.messaging.templates import CompiledTemplate, compile_template
from accord.store.db import Store


def confirmation_template(lang: str) -> CompiledTemplate:
    return compile_template(
        subject=text("confirm_subject", lang),
        html=(
            "<html><body><p>{{ intro }}:</p>"
            '<p><a href="{{ link }}">{{ link }}</a></p><p>{{ ignore }}</p></body></html>'
        ),
        text="{{ intro }}:\n\n{{ link }}\n\n{{ ignore }}\n",
    )


async def send_confirmation(
    store: Store,
    *,
    form: Form,
    lead_id: str,
    email: str,
    lang: str,
    mailer: Mailer,
) -> str:
    """Email the signed confirmation link; the message id is kept as proof it was sent."""
    token = mailer.signer.dumps_timed("confirm", [lead_id, lang])
    message_id, outcome = await send_transactional(
        store,
        business_id=form.business_id,
        kind="confirmation",
        to=email,
        from_address=form.spec.from_address,
        template=confirmation_template(lang),
        context={
            "link": f"{mailer.base_url}/l/confirm/{token}",
            "intro": text("confirm_body", lang),
            "ignore": text("confirm_ignore", lang),
        },
        mailer=mailer,
    )
    await run_in_threadpool(_keep_message_id, store, lead_id, message_id)
    if not outcome.ok:
        raise Conflict(f"the confirmation email could not be sent: {outcome.error}")
    return message_id


def _keep_message_id(store: Store, lead_id: str, message_id: str) -> None:
    with store.write() as conn:
        conn.execute(
            update(lead_consents)
            .where(lead_consents.c.lead_id == lead_id, lead_consents.c.status == "pending")
            .values(confirmation_message_id=message_id)
        )


@dataclass
class Confirmed:
    lead_id: str
    business_id: str
    form: Form | None
    coupon: str | None = None
    download_token: str | None = None
    lang: str = "en"
    purposes: list[str] = field(default_factory=list)


def confirm(
    conn: Connection,
    *,
    lead_id: str,
    ip: str | None,
    wiring: Wiring,
    signer: Signer,
    lang: str = "en",
    now: datetime | None = None,
) -> Confirmed:
    """Follow the confirmation link: the lead becomes mailable for the purposes it ticked,
    the consent (with its proof) goes to the ledger, the lead joins the form's list and
    gets its lead magnet. `lang` is the language the form was shown in (the link keeps
    it), recorded with the consent along with the checkbox's text in that language."""
    now = now or utcnow()
    lead = conn.execute(select(leads).where(leads.c.id == lead_id)).first()
    if lead is None:
        raise NotFound(f"lead {lead_id}")
    business_id = lead.business_id
    if lead.status != "confirmed":
        conn.execute(
            update(leads)
            .where(leads.c.id == lead_id)
            .values(status="confirmed", confirmed_at=now, confirm_ip=ip)
        )
    pending = conn.execute(
        select(lead_consents).where(
            lead_consents.c.lead_id == lead_id, lead_consents.c.status == "pending"
        )
    ).all()
    if pending:
        conn.execute(
            update(lead_consents)
            .where(lead_consents.c.lead_id == lead_id, lead_consents.c.status == "pending")
            .values(status="recorded", confirmed_at=now, confirm_ip=ip)
        )
    form = (
        get_form(conn, business_id=business_id, form_id=lead.form_id)
        if lead.form_id is not None
        else None
    )
    labels = {c.purpose: c.label for c in form.spec.consents} if form is not None else {}
    if wiring.record_consent is not None:
        for consent in pending:
            wiring.record_consent(
                conn,
                business_id=business_id,
                anonymous_id=lead.anonymous_id,
                user_id=None,
                purposes={consent.purpose: True},
                source=f"form:{consent.form_id}",
                evidence={
                    "form_id": consent.form_id,
                    "form_version": consent.form_version,
                    "given_at": iso(consent.given_at),
                    "ip": consent.ip,
                    "user_agent": consent.user_agent,
                    "language": lang,
                    "checkbox_text": localised(labels[consent.purpose], lang)
                    if consent.purpose in labels
                    else None,
                    "double_opt_in": {
                        "confirmation_message_id": consent.confirmation_message_id,
                        "confirmed_at": iso(now),
                        "ip": ip,
                    }
                    if consent.confirmation_message_id
                    else None,
                },
            )
    result = Confirmed(lead_id=lead_id, business_id=business_id, form=None)
    result.purposes = sorted({c.purpose for c in pending})
    if form is not None:
        result.form = form
        if form.spec.list_id is not None:
            add_member(
                conn,
                business_id=business_id,
                list_id=form.spec.list_id,
                member=MemberIn(
                    email=lead.email,
                    anonymous_id=lead.anonymous_id,
                    traits=lead_traits({"name": lead.name, "company": lead.company}),
                ),
            )
        if form.spec.coupon_pool_id is not None:
            result.coupon = assign_coupon(
                conn, business_id=business_id, pool_id=form.spec.coupon_pool_id, lead_id=lead_id
            )
        if form.spec.download_name is not None:
            result.download_token = signer.dumps_timed(
                "download", [lead_id, form.id, form.spec.download_name]
            )
    return result
