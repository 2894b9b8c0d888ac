"""`accord demo`: seed the demo business with generated behaviour and with every area's
work done through its own services, then print how to sign in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from accord.accounts.cli import DEMO_BUSINESS
from accord.accounts.service import bootstrap
from accord.cli_common import AsJson, console, echo_json, source_of, state_store
from accord.collect.cli import import_events
from accord.collect.importer import RawRow
from accord.collect.service import limits_from
from accord.consent.gate import LedgerGate
from accord.consent.service import ensure_property
from accord.core.settings import Settings
from accord.demo.seen import Seen
from accord.process.cli import drain_with_progress
from accord.process.email import default_wiring
from accord.store.db import Store


def demo(
    events: Annotated[int, typer.Option(help="How many demo events to generate")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the generator")] = 42,
    days: Annotated[int, typer.Option(help="Days of history, ending today")] = 30,
    as_json: AsJson = False,
) -> None:
    """Seed the demo business (idempotent for the same seed) and give its administrator a
    new password: consent, leads, email, journeys, experiments, predictions, product
    recommendations, saved reports, audiences."""
    from accord.demo.generator import generate_n_events
    from accord.demo.ledger import admin_sign_in, record_decisions

    settings = Settings()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days)
    seen = Seen()
    generated = generate_n_events(events, seed=seed, start=start, days=days)
    rows = (
        RawRow(line=i, event=e)
        for i, e in enumerate(seen.watch(_before(generated, today)), start=1)
    )
    with state_store(settings) as store:
        keys = bootstrap(store, name=DEMO_BUSINESS)
        business_id = keys.business_id
        # The demo site's banner: GET /v1/consent/config?writeKey=…&property=web
        ensure_property(store, business_id=business_id, key="web", name="Demo web shop")
        source = source_of(store, keys.write_key)
        summary = import_events(store, settings, source, rows, events, "seeding demo")
        console.print(f"demo events stored: {summary.stored} (already there: {summary.duplicates})")
        decided = record_decisions(store, business_id=business_id, decisions=seen.decisions)
        console.print(f"consent decisions recorded: {decided} of {len(seen.decisions)}")
        drain_with_progress(store, settings)
        _seed_areas(
            store, settings, business_id=business_id, seen=seen, seed=seed, today=today, days=days
        )
        drain_with_progress(store, settings)
        sign_in = admin_sign_in(store, settings, business_id=business_id)
    if as_json:
        echo_json({**keys.model_dump(), "sign_in": sign_in})
        return
    for key, value in keys.model_dump().items():
        typer.echo(f"{key}: {value}")
    typer.echo(
        f"Admin UI: {sign_in['url']}  email: {sign_in['email']}  password: {sign_in['password']}"
    )


def _before(events: Iterable[dict[str, Any]], end: datetime) -> Iterator[dict[str, Any]]:
    """The events of the window only: a visit near its end goes on past it (a delivery,
    an email opened the next day), and what would happen after today's midnight has not
    happened yet. Cutting there keeps every run of the same day importing the same events."""
    cut = end.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # the generator's own format
    for event in events:
        if event["timestamp"] < cut:
            yield event


def _seed_areas(
    store: Store,
    settings: Settings,
    *,
    business_id: str,
    seen: Seen,
    seed: int,
    today: datetime,
    days: int,
) -> None:
    """Leads, email, a journey, an experiment, predictions, the product catalogue and its
    recommendations, saved reports and audiences, each once."""
    from accord.demo import activation, email, leads, recommend, reports
    from accord.engine.connection import connect
    from accord.messaging.mailer import Mailer

    gate, limits = LedgerGate(store=store), limits_from(settings)
    mailer, wiring = Mailer.from_settings(settings), default_wiring()
    backend = connect(settings.engine_url)
    customers = sorted(seen.customers.values(), key=lambda c: c.user_id)
    buyers = [c for c in customers if c.orders > 0]

    def step(label: str, began: float, result: object) -> None:
        console.print(f"{label}: {result} ({time.monotonic() - began:.1f} s)")

    began = time.monotonic()
    form = leads.new_form(store, business_id=business_id)
    submitted = (
        0
        if form is None
        else asyncio.run(
            leads.submit_forms(
                store,
                form=form,
                customers=customers[: max(5, len(customers) // 8)],
                gate=gate,
                limits=limits,
                mailer=mailer,
                wiring=wiring,
                seed=seed,
            )
        )
    )
    imported = leads.import_lead_ads(
        store, business_id=business_id, gate=gate, limits=limits, seed=seed, now=today
    )
    step("leads from the form, from Lead Ads", began, (submitted, imported))
    began = time.monotonic()
    campaign_id = email.prepare_newsletter(store, business_id=business_id, customers=customers)
    sent = (
        None
        if campaign_id is None
        else asyncio.run(
            email.send_newsletter(
                store,
                business_id=business_id,
                campaign_id=campaign_id,
                mailer=mailer,
                wiring=wiring,
            )
        )
    )
    step("newsletter", began, "sent before" if sent is None else f"{sent.sent} sent")
    began = time.monotonic()
    entered = activation.run_journey(
        store, settings, business_id=business_id, customers=buyers, now=today
    )
    step("people entered into the journey", began, entered)
    began = time.monotonic()
    made = activation.finish_experiment(store, settings, business_id=business_id, today=today)
    step("experiment", began, "finished" if made else "there before")
    began = time.monotonic()
    report = activation.train_predictions(
        store, settings, business_id=business_id, backend=backend, days=days
    )
    if report is None:
        step("models", began, "trained before")
    else:
        step("model cards", began, f"{len(report.cards)} ({report.profiles_updated} profiles)")
        for name, reason in report.skipped.items():
            console.print(f"  not used: {name}: {reason}")
    began = time.monotonic()
    products = recommend.fill_catalogue(store, business_id=business_id)
    step("catalogue products", began, "there before" if products is None else products)
    began = time.monotonic()
    run = recommend.train_recommendations(
        store, business_id=business_id, backend=backend, lake_url=settings.resolved_lake_url()
    )
    step("recommendations", began, "trained before" if run is None else f"{run.model} served")
    began = time.monotonic()
    outcome = reports.save_reports(
        store,
        business_id=business_id,
        backend=backend,
        lake_url=settings.resolved_lake_url(),
        days=days,
    )
    step("saved reports", began, "saved before" if outcome is None else outcome)
    began = time.monotonic()
    sizes = activation.refresh_audiences(
        store, business_id=business_id, backend=backend, lake_url=settings.resolved_lake_url()
    )
    step("audiences", began, "made before" if sizes is None else sizes)
    if sent is not None:
        began = time.monotonic()
        counts = email.record_engagement(
            store, business_id=business_id, sent=sent, mailer=mailer, wiring=wiring, seed=seed
        )
        step("newsletter engagement", began, counts)
