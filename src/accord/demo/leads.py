"""The demo's leads: submissions of a hosted form, and an import of a Meta Lead Ads export."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from random import Random

from accord.collect.consent_gate import ConsentGate
from accord.collect.validation import Limits
from accord.demo.generator import SHOP_URL
from accord.demo.seen import Customer
from accord.leads import forms, imports, submissions
from accord.leads.lead_ads import read_lead_ads
from accord.leads.models import ConsentPurpose, FormField, FormIn
from accord.leads.spam import RateLimiter
from accord.messaging.mailer import Mailer
from accord.messaging.ports import Wiring
from accord.store.db import Store

FORM_SLUG = "demo-trail-guide"
LEAD_ADS_IMPORT = "Meta Lead Ads: autumn hiking guide (demo)"

FORM = FormIn(
    slug=FORM_SLUG,
    title={"en": "Get the free autumn trail guide"},
    welcome={"en": "Ten routes, a packing list and the layers we wear on them."},
    fields=[
        FormField(key="name", kind="name", label={"en": "Your name"}, required=True),
        FormField(key="email", kind="email", label={"en": "Email"}, required=True),
        FormField(
            key="activity",
            kind="choice",
            label={"en": "What do you do most?"},
            options=["hiking", "city walks", "trail running"],
        ),
    ],
    consents=[
        ConsentPurpose(purpose="marketing", label={"en": "Email me news and offers"}),
    ],
    privacy_policy_url=f"{SHOP_URL}/privacy",
    thank_you={"en": "Thank you! The guide is on its way."},
    double_opt_in=False,
    from_address="guides@shop.example.com",
)
_ACTIVITIES = ("hiking", "city walks", "trail running")
_BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36"
)


def new_form(store: Store, *, business_id: str) -> forms.Form | None:
    """The demo form, created; None when it exists already (it was filled in then)."""
    with store.write() as conn:
        if any(f.spec.slug == FORM_SLUG for f in forms.list_forms(conn, business_id=business_id)):
            return None
        return forms.create_form(conn, business_id=business_id, data=FORM)


async def submit_forms(
    store: Store,
    *,
    form: forms.Form,
    customers: Sequence[Customer],
    gate: ConsentGate,
    limits: Limits,
    mailer: Mailer,
    wiring: Wiring,
    seed: int,
) -> int:
    """Have the customers fill in the form as visitors do (about seven in ten tick the
    marketing box); returns how many submitted."""
    rng = Random(f"accord-demo/{seed}/leads")
    limiter = RateLimiter(limit=len(customers) + 1, window_seconds=60)
    for customer in customers:
        values = {
            "name": [customer.name],
            "email": [customer.email],
            "activity": [_ACTIVITIES[int(rng.random() * len(_ACTIVITIES))]],
            "utm_source": ["newsletter" if rng.random() < 0.5 else "instagram"],
            "utm_campaign": ["autumn_trail_guide"],
        }
        if customer.anonymous_ids:
            values["anonymous_id"] = [customer.anonymous_ids[0]]
        if rng.random() < 0.7:
            values["consent_marketing"] = ["yes"]
        await submissions.submit_form(
            store,
            form=form,
            posted=submissions.Posted(
                values=values,
                lang="en",
                ip=customer.ip or "192.0.2.1",
                user_agent=_BROWSER,
                page_url=f"{mailer.base_url}/f/{FORM_SLUG}",
            ),
            limiter=limiter,
            gate=gate,
            limits=limits,
            mailer=mailer,
            wiring=wiring,
        )
    return len(customers)


_FIRST = ("Marta", "Jonas", "Chloe", "Liam", "Elena", "Noah", "Sara", "Tomas", "Ines", "Finn")
_LAST = ("Keller", "Moreau", "Rossi", "Byrne", "Lindqvist", "Vermeer", "Ortega", "Novak")


def lead_ads_export(*, count: int, seed: int, now: datetime) -> bytes:
    """A Lead Ads export as Meta's "Download leads" gives it: UTF-16 tab-separated, ids
    with their type prefix, phone numbers with `p:`."""
    rng = Random(f"accord-demo/{seed}/lead-ads")
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(
        [
            "id",
            "created_time",
            "ad_id",
            "ad_name",
            "adset_id",
            "adset_name",
            "campaign_id",
            "campaign_name",
            "form_id",
            "form_name",
            "is_organic",
            "platform",
            "which_trail_distance_suits_you?",
            "full_name",
            "email",
            "phone_number",
        ]
    )
    for n in range(count):
        first, last = _FIRST[n % len(_FIRST)], _LAST[(n * 7 + 3) % len(_LAST)]
        created = now - timedelta(days=1 + rng.random() * 20, minutes=rng.random() * 600)
        instagram = rng.random() < 0.4
        writer.writerow(
            [
                f"l:{7100000000000000 + n}",
                created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                f"ag:{6200000000000000 + n % 3}",
                ("Trail guide, carousel", "Trail guide, video", "Trail guide, still")[n % 3],
                "as:6200000000000101",
                "Hikers 25-54, DACH and Benelux",
                "c:6200000000000001",
                "Autumn hiking guide 2026",
                "f:1500000000000001",
                "Trail guide download",
                "false",
                "ig" if instagram else "fb",
                ("under_10_km", "10_to_20_km", "over_20_km")[int(rng.random() * 3)],
                f"{first} {last}",
                f"{first}.{last}.lead{n + 1}@example.net".lower(),
                f"p:+49151{(n * 2654435761 + 17) % 10**8:08d}",
            ]
        )
    return out.getvalue().encode("utf-16")


def import_lead_ads(
    store: Store,
    *,
    business_id: str,
    gate: ConsentGate,
    limits: Limits,
    seed: int,
    now: datetime,
    count: int = 40,
) -> int:
    """Import the demo's Lead Ads export once; returns how many leads it added."""
    with store.read() as conn:
        done = imports.list_imports(conn, business_id=business_id, limit=1000)
    if any(row["name"] == LEAD_ADS_IMPORT for row in done):
        return 0
    report = imports.import_leads(
        store,
        business_id=business_id,
        rows=read_lead_ads(lead_ads_export(count=count, seed=seed, now=now)),
        kind="lead_ads",
        name=LEAD_ADS_IMPORT,
        spend=round(2.85 * count, 2),
        gate=gate,
        limits=limits,
    )
    return report.added
