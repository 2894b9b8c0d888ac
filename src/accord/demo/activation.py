"""The demo's audiences, journey, finished experiment and predictions, made through the
services the API and the CLI use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from accord.audiences import definitions, refresh
from accord.audiences.models import AudienceIn
from accord.core.errors import NotFound
from accord.core.settings import Settings
from accord.demo.seen import Customer
from accord.experiments import adlogs
from accord.experiments import service as experiments
from accord.experiments.models import cma_three_arm
from accord.experiments.simulate import Scenario, simulate
from accord.journeys import service as journeys
from accord.journeys.runner import Runner
from accord.predict import service as predict
from accord.process.journeys import environment, on_audience_changes
from accord.profiles import service as profiles
from accord.store.db import Store

AUDIENCES = (
    AudienceIn(
        name="Jacket browsers who said yes to marketing",
        slug="demo-jacket-browsers-marketing",
        description="Viewed jackets in the last 30 days and consented to marketing.",
        text='did "Product Viewed" where category = "jackets" in the last 30 days'
        " and consent marketing",
    ),
    AudienceIn(
        name="Repeat buyers",
        slug="demo-repeat-buyers",
        description="Two orders or more in the last 30 days.",
        text='did "Order Completed" at least 2 times in the last 30 days',
    ),
)


def refresh_audiences(
    store: Store, *, business_id: str, backend: Any, lake_url: str
) -> dict[str, int] | None:
    """Create the demo audiences and compute them, once (the scheduler keeps them fresh);
    their sizes by slug, or None when they existed."""
    with store.write() as conn:
        made = 0
        for audience in AUDIENCES:
            try:
                definitions.get_audience(conn, business_id=business_id, audience=audience.slug)
            except NotFound:
                definitions.create_audience(conn, business_id=business_id, audience=audience)
                made += 1
    if not made:
        return None
    results = refresh.refresh(
        store,
        business_id=business_id,
        backend=backend,
        lake_url=lake_url,
        only=[a.slug for a in AUDIENCES],
        on_changes=on_audience_changes(),
    )
    with store.read() as conn:
        return {
            a.slug: definitions.get_audience(conn, business_id=business_id, audience=a.slug).size
            or 0
            for a in AUDIENCES
        } | {"refreshed": len(results)}


JOURNEY = "demo-thank-you-buyers"
JOURNEY_DEFINITION: dict[str, Any] = {
    "entry": {"type": "api"},
    "start": "mark",
    "nodes": {
        "mark": {"type": "update_trait", "trait": "thanked", "value": True, "next": "settle"},
        "settle": {"type": "wait", "duration": "3d", "next": "thanks"},
        "thanks": {"type": "send", "channel": "email", "message": "thanks", "next": "done"},
        "done": {"type": "exit"},
    },
    "messages": {
        "thanks": {
            "channel": "email",
            "subject": "Thank you for shopping with us, {{ first_name | default('friend') }}",
            "body": "<p>Your order is on its way. Tell us how it fits!</p>",
        }
    },
    "reentry": {"mode": "never"},
}


def run_journey(
    store: Store,
    settings: Settings,
    *,
    business_id: str,
    customers: Sequence[Customer],
    now: datetime,
) -> int:
    """The thank-you journey, active, with every buyer entered once; returns who entered."""
    with store.write() as conn:
        try:
            view = journeys.get_journey(conn, business_id=business_id, key=JOURNEY)
        except NotFound:
            view = journeys.create_journey(
                conn,
                business_id=business_id,
                key=JOURNEY,
                name="Thank you, buyers",
                definition=JOURNEY_DEFINITION,
                now=now,
                outbound=settings.outbound_policy(),
            )
        if view.status != "active":
            journeys.set_status(
                conn, business_id=business_id, key=JOURNEY, status="active", now=now
            )
    runner = Runner(environment())
    entered = 0
    with store.write() as conn:
        for customer in customers:
            try:
                profile_id = profiles.find_profile_id(
                    conn, business_id=business_id, kind="user_id", value=customer.user_id
                )
            except NotFound:
                continue
            run_id = journeys.trigger(
                conn,
                runner,
                business_id=business_id,
                key=JOURNEY,
                profile_id=profile_id,
                entry_key=f"demo-buyer-{customer.user_id}",
                context={},
                now=now,
            )
            entered += run_id is not None
    return entered


EXPERIMENT = "demo-cookieless-relevance"


def finish_experiment(
    store: Store, settings: Settings, *, business_id: str, today: datetime, users: int = 6000
) -> bool:
    """A CMA three-arm test over the last 14 days, its ad logs loaded and the test stopped;
    False when it exists already."""
    start = today - timedelta(days=15)
    with store.write() as conn:
        try:
            experiments.get_experiment(conn, business_id=business_id, key=EXPERIMENT)
            return False
        except NotFound:
            pass
        design = cma_three_arm(
            key=EXPERIMENT,
            name="Cookieless relevance (Topics) vs third-party cookies",
            primary_metrics=["ctr", "conversions_per_euro"],
            guardrail_metrics=["auction_latency", "timeout_rate"],
        )
        design.start_day = start.date().isoformat()
        experiments.create_experiment(conn, business_id=business_id, design=design, now=start)
        view = experiments.start_experiment(
            conn, business_id=business_id, key=EXPERIMENT, now=start
        )
    arms = view.design.arms
    table = simulate(
        Scenario(
            arms=[a.key for a in arms],
            weights=[a.weight for a in arms],
            users=users,
            start=start,
            effects={"treatment": 1.08, "control_2": 0.9},
            topics_arms=[a.key for a in arms if a.signals.topics],
            seed=7,
        )
    )
    adlogs.write_table(
        settings.resolved_lake_url(),
        business_id=business_id,
        experiment_key=EXPERIMENT,
        table=table,
    )
    with store.write() as conn:
        experiments.stop_experiment(
            conn, business_id=business_id, key=EXPERIMENT, now=start + timedelta(days=14)
        )
    return True


def train_predictions(
    store: Store, settings: Settings, *, business_id: str, backend: Any, days: int
) -> predict.TrainReport | None:
    """Train every model once (the scheduler retrains); None when model cards exist.

    A likelihood model learns from a window of two horizons before now, so the horizon is
    a third of the demo's history: a 30-day horizon would find no one to learn from.
    """
    models_dir = settings.data_dir / "models"
    if predict.model_cards(models_dir, business_id=business_id):
        return None
    return predict.train(
        store,
        business_id=business_id,
        backend=backend,
        lake_url=settings.resolved_lake_url(),
        models_dir=models_dir,
        horizon_days=max(7, days // 3),
    )
