"""`accord journeys …`: list, create from a file, activate, report, and run the loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from accord.cli_common import (
    Business,
    business_store,
    echo_json,
    print_table,
    stop_on_signals,
)
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.journeys import analytics, service
from accord.process import journeys as journey_wiring

journeys_app = typer.Typer(
    help="Journeys: definitions, status, reports and the runner.", no_args_is_help=True
)


@journeys_app.command("list")
def list_journeys(business: Business) -> None:
    """The business's journeys with their status and people."""
    rows = []
    with business_store(business) as (store, business_id), store.read() as conn:
        for view in service.list_journeys(conn, business_id=business_id):
            s = analytics.summary(conn, journey_id=view.id)
            rows.append(
                (
                    view.key,
                    view.name,
                    view.status,
                    view.current_version,
                    s.entered,
                    s.active,
                    s.converted,
                )
            )
    print_table("key", "name", "status", "version", "entered", "inside", "converted", rows=rows)


@journeys_app.command("create")
def create(
    business: Business,
    key: Annotated[str, typer.Argument(help="lower-case key")],
    definition: Annotated[Path, typer.Argument(help="JSON file, see docs/journeys.md")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    activate: Annotated[bool, typer.Option(help="activate at once")] = False,
) -> None:
    """Create a journey from a JSON definition (problems are named by node)."""
    with business_store(business) as (store, business_id), store.write() as conn:
        view = service.create_journey(
            conn,
            business_id=business_id,
            key=key,
            name=name or key,
            definition=json.loads(definition.read_text()),
            now=utcnow(),
            outbound=Settings().outbound_policy(),
        )
        if activate:
            view = service.set_status(
                conn, business_id=business_id, key=key, status="active", now=utcnow()
            )
    typer.echo(f"{view.key}: version {view.current_version}, {view.status}")


@journeys_app.command("report")
def report(business: Business, key: str) -> None:
    """People per node and conversions, as JSON."""
    with business_store(business) as (store, business_id), store.read() as conn:
        view = service.get_journey(conn, business_id=business_id, key=key)
        out = {
            "summary": analytics.summary(conn, journey_id=view.id),
            "nodes": analytics.node_counts(conn, journey_id=view.id),
        }
    echo_json(out, indent=True)


@journeys_app.command("run")
def run() -> None:
    """Run the journey loop in the foreground (timers, deliveries) until Ctrl-C.

    `accord serve` and `accord worker` already run it; use this for a separate process.
    """
    stop = stop_on_signals()
    thread = journey_wiring.start(Settings(), stop)
    while thread.is_alive():
        thread.join(0.5)
