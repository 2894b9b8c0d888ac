"""The demo's newsletter: a template, a list, a campaign sent through Accord's sending path
to a mail server that discards everything, then opens, clicks and bounces.

The recipients are made up, so what they do with the message is made up too: opens and
clicks are recorded by the functions the open pixel and the click redirect call, bounces
by the one the bounce webhook calls, each with the message's own signed token or id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from random import Random

from accord.accounts import service as accounts
from accord.accounts.models import Actor
from accord.demo.generator import SHOP_URL
from accord.demo.mail_sink import discarding_smtp
from accord.demo.seen import Customer
from accord.messaging import campaigns, lists, sending, service, templates, tracking
from accord.messaging.bounces import DeliveryReport, apply_delivery_reports
from accord.messaging.mailer import Mailer
from accord.messaging.models import CampaignIn, ListIn, MemberIn, TemplateIn
from accord.messaging.ports import Wiring
from accord.store.db import Store

CAMPAIGN = "Autumn layers (demo newsletter)"
FROM_ADDRESS = "news@shop.example.com"
POSTAL_ADDRESS = "Demo Outdoor Shop, 12 Example Street, 1000 Brussels, Belgium"
_ACTOR = Actor(kind="system", label="accord demo")
TEMPLATE = TemplateIn(
    name="Autumn layers",
    subject="{{ first_name | default('Hello') }}, layer up: new jackets just landed",
    html=(
        "<html><body><h1>New in: autumn layers</h1>"
        "<p>Hi {{ first_name | default('there') }}, the Stormshell and the Nordic parka"
        " are back.</p>"
        f'<p><a href="{SHOP_URL}/c/jackets">Shop jackets</a></p>'
        "</body></html>"
    ),
    text="New in: autumn layers. Shop jackets: " + SHOP_URL + "/c/jackets",
)
MAIL_APP = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)


@dataclass(frozen=True)
class Sent:
    campaign_id: str
    sent: int
    skipped: dict[str, int]
    finished_at: float  # time.monotonic() when the last message left


def prepare_newsletter(
    store: Store, *, business_id: str, customers: Sequence[Customer]
) -> str | None:
    """Create the demo template, list and campaign once; the campaign's id, or None when
    it exists already."""
    checked = templates.check_template(TEMPLATE)
    with store.write() as conn:
        existing = campaigns.list_campaigns(conn, business_id=business_id, limit=1000)
        if any(row.name == CAMPAIGN for row in existing):
            return None
        # Marketing email must show the sender's postal address (the campaign footer).
        if not campaigns.has_postal_address(conn, business_id=business_id):
            accounts.set_postal_address(
                conn, business_id=business_id, address=POSTAL_ADDRESS, actor=_ACTOR
            )
        template_id = templates.create_template(conn, business_id=business_id, checked=checked)
        list_id = lists.create_list(conn, business_id=business_id, data=ListIn(name="Newsletter"))
        for customer in customers:
            first_name = customer.name.split(" ", 1)[0]
            lists.add_member(
                conn,
                business_id=business_id,
                list_id=list_id,
                member=MemberIn(
                    email=customer.email,
                    anonymous_id=customer.anonymous_ids[0] if customer.anonymous_ids else None,
                    user_id=customer.user_id,
                    traits={"first_name": first_name},
                ),
            )
        return campaigns.create_campaign(
            conn,
            business_id=business_id,
            data=CampaignIn(
                name=CAMPAIGN, template_id=template_id, list_id=list_id, from_address=FROM_ADDRESS
            ),
        )


async def send_newsletter(
    store: Store, *, business_id: str, campaign_id: str, mailer: Mailer, wiring: Wiring
) -> Sent:
    """Send the campaign through the campaign sender to the discarding SMTP server."""
    async with discarding_smtp() as smtp:
        report = await sending.send_campaign(
            store,
            business_id=business_id,
            campaign_id=campaign_id,
            mailer=replace(mailer, smtp=smtp),
            wiring=wiring,
        )
    return Sent(campaign_id, report.sent, dict(report.skipped), time.monotonic())


def record_engagement(
    store: Store, *, business_id: str, sent: Sent, mailer: Mailer, wiring: Wiring, seed: int
) -> dict[str, int]:
    """Opens (about 40 %), clicks (a third of those) and hard bounces (about 3 %)."""
    # An open sooner than this after delivery counts as a machine's, as it should.
    wait = mailer.min_human_delay.total_seconds() + 1 - (time.monotonic() - sent.finished_at)
    if wait > 0:
        time.sleep(wait)
    rng = Random(f"accord-demo/{seed}/engagement")
    counts = {"opens": 0, "clicks": 0, "bounces": 0}
    with store.write() as conn:
        messages = service.sent_messages(
            conn, business_id=business_id, campaign_id=sent.campaign_id
        )
        for message_id, email in messages:
            r = rng.random()
            ip = f"198.51.100.{1 + int(rng.random() * 254)}"
            if r < 0.03:
                report = DeliveryReport(
                    email=email,
                    kind="bounce",
                    hard=True,
                    status="5.1.1",
                    diagnostic="smtp; 550 5.1.1 mailbox unavailable",
                    message_id=message_id,
                )
                apply_delivery_reports(conn, business_id=business_id, reports=[report])
                counts["bounces"] += 1
            elif r < 0.43:
                tracking.record_open(
                    conn,
                    mailer=mailer,
                    token=mailer.signer.dumps("open", message_id),
                    user_agent=MAIL_APP,
                    ip=ip,
                    wiring=wiring,
                )
                counts["opens"] += 1
                if rng.random() < 0.33:
                    tracking.record_click(
                        conn,
                        mailer=mailer,
                        token=mailer.signer.dumps("click", [message_id, 0]),
                        user_agent=MAIL_APP,
                        ip=ip,
                        wiring=wiring,
                    )
                    counts["clicks"] += 1
    return counts
