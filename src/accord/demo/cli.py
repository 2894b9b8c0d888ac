"""`accord demo`: seed the demo business with generated behaviour, then process it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from accord.accounts.cli import DEMO_BUSINESS, print_keys
from accord.accounts.service import bootstrap
from accord.cli_common import AsJson, console, source_of, state_store
from accord.collect.cli import import_events
from accord.collect.importer import RawRow
from accord.consent.service import ensure_property
from accord.core.settings import Settings
from accord.process.cli import drain_with_progress


def demo(
    events: Annotated[int, typer.Option(help="How many demo events to generate")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the generator")] = 42,
    days: Annotated[int, typer.Option(help="Days of history, ending today")] = 30,
    as_json: AsJson = False,
) -> None:
    """Seed the demo business with generated behaviour (idempotent for the same seed)."""
    from accord.demo.generator import generate_n_events

    settings = Settings()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days)
    rows = (
        RawRow(line=i, event=e)
        for i, e in enumerate(generate_n_events(events, seed=seed, start=start, days=days), start=1)
    )
    with state_store(settings) as store:
        keys = bootstrap(store, name=DEMO_BUSINESS)
        # The demo site's banner: GET /v1/consent/config?writeKey=…&property=web
        ensure_property(store, business_id=keys.business_id, key="web", name="Demo web shop")
        source = source_of(store, keys.write_key)
        summary = import_events(store, settings, source, rows, events, "seeding demo")
        drain_with_progress(store, settings)
    console.print(f"demo events stored: {summary.stored} (already there: {summary.duplicates})")
    print_keys(keys, as_json=as_json)
