"""`accord journeys …`: list, create from a file, activate, report, and run the loop."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.core.clock import utcnow
from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.journeys import analytics, service
from accord.process import journeys as journey_wiring
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

journeys_app = typer.Typer(
    help="Journeys: definitions, status, reports and the runner.", no_args_is_help=True
)
console = Console(stderr=True)
Business = Annotated[str, typer.Option("--business-id", help="The business")]


def _store() -> Store:
    settings = Settings()
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _fail(exc: AccordError) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(code=1)


@journeys_app.command("list")
def list_journeys(business_id: Business) -> None:
    """The business's journeys with their status and people."""
    store = _store()
    table = Table("key", "name", "status", "version", "entered", "inside", "converted")
    with store.read() as conn:
        for view in service.list_journeys(conn, business_id=business_id):
            s = analytics.summary(conn, journey_id=view.id)
            table.add_row(
                view.key,
                view.name,
                view.status,
                str(view.current_version),
                str(s.entered),
                str(s.active),
                str(s.converted),
            )
    Console().print(table)


@journeys_app.command("create")
def create(
    business_id: Business,
    key: Annotated[str, typer.Argument(help="lower-case key")],
    definition: Annotated[Path, typer.Argument(help="JSON file, see docs/journeys.md")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    activate: Annotated[bool, typer.Option(help="activate at once")] = False,
) -> None:
    """Create a journey from a JSON definition (problems are named by node)."""
    store = _store()
    try:
        with store.write() as conn:
            view = service.create_journey(
                conn,
                business_id=business_id,
                key=key,
                name=name or key,
                definition=json.loads(definition.read_text()),
                now=utcnow(),
            )
            if activate:
                view = service.set_status(
                    conn, business_id=business_id, key=key, status="active", now=utcnow()
                )
    except AccordError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{view.key}: version {view.current_version}, {view.status}")


@journeys_app.command("report")
def report(business_id: Business, key: str) -> None:
    """People per node and conversions, as JSON."""
    store = _store()
    try:
        with store.read() as conn:
            view = service.get_journey(conn, business_id=business_id, key=key)
            out = {
                "summary": analytics.summary(conn, journey_id=view.id).__dict__,
                "nodes": [c.__dict__ for c in analytics.node_counts(conn, journey_id=view.id)],
            }
    except AccordError as exc:
        raise _fail(exc) from exc
    typer.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


@journeys_app.command("run")
def run() -> None:
    """Run the journey loop in the foreground (timers, deliveries) until Ctrl-C.

    `accord serve` and `accord worker` already run it; use this for a separate process.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    thread = journey_wiring.start(Settings(), stop)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        stop.set()
        thread.join()
