"""`accord audiences …`: define, preview, refresh and export audiences from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.audiences import service
from accord.audiences.exports import Destination
from accord.audiences.models import AudienceIn
from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.engine.connection import connect
from accord.process.journeys import on_audience_changes
from accord.reach import service as reach
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

audiences_app = typer.Typer(help="Audiences, suppression and exports.", no_args_is_help=True)
console = Console(stderr=True)

Business = Annotated[
    str, typer.Option("--business-id", help="The business (see `accord bootstrap`)")
]
Engine = Annotated[str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")]


def _store(settings: Settings) -> Store:
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _fail(exc: AccordError) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(code=2)


@audiences_app.command("list")
def list_audiences(business_id: Business) -> None:
    """Every audience with its size after the last refresh."""
    store = _store(Settings())
    with store.write() as conn:
        service.ensure_predefined(conn, business_id=business_id)
        views = service.list_audiences(conn, business_id=business_id)
    table = Table("slug", "size", "realtime", "definition")
    for view in views:
        size = "" if view.size is None else str(view.size)
        table.add_row(view.slug, size, "yes" if view.realtime else "", view.text)
    Console().print(table)


@audiences_app.command("validate")
def validate(text: str, business_id: Business) -> None:
    """Check a definition in the text form; print its canonical text and its JSON."""
    store = _store(Settings())
    try:
        with store.read() as conn:
            result = service.validate_definition(
                conn,
                business_id=business_id,
                definition=None,
                text=text,
                consent=service.LEDGER_CONSENT,
            )
    except AccordError as exc:
        raise _fail(exc) from None
    typer.echo(result.text)
    typer.echo(orjson.dumps(result.definition, option=orjson.OPT_INDENT_2).decode())


@audiences_app.command("create")
def create(
    slug: str,
    text: str,
    business_id: Business,
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug)")] = None,
    suppression: Annotated[bool, typer.Option(help="Leave members out of activations")] = False,
) -> None:
    """Define an audience in the text form."""
    store = _store(Settings())
    try:
        with store.write() as conn:
            view = service.create_audience(
                conn,
                business_id=business_id,
                audience=AudienceIn(
                    name=name or slug, slug=slug, text=text, suppression=suppression
                ),
                consent=service.LEDGER_CONSENT,
            )
    except AccordError as exc:
        raise _fail(exc) from None
    typer.echo(view.id)


@audiences_app.command("preview")
def preview(text: str, business_id: Business, engine: Engine = None) -> None:
    """How many people a definition selects now."""
    settings = Settings()
    try:
        result = service.preview(
            _store(settings),
            business_id=business_id,
            definition=service.definition_from(None, text),
            backend=connect(engine or settings.engine_url),
            lake_url=settings.resolved_lake_url(),
            consent=service.LEDGER_CONSENT,
        )
    except AccordError as exc:
        raise _fail(exc) from None
    typer.echo(f"{result.size} people")
    for member in result.sample:
        typer.echo(f"  {member.profile_id} {orjson.dumps(member.traits).decode()}")


@audiences_app.command("refresh")
def refresh(
    business_id: Business,
    audiences: Annotated[list[str] | None, typer.Argument(help="Slugs (default: all)")] = None,
    engine: Engine = None,
) -> None:
    """Recompute audiences on the engine; record entries and exits."""
    settings = Settings()
    results = service.refresh(
        _store(settings),
        business_id=business_id,
        backend=connect(engine or settings.engine_url),
        lake_url=settings.resolved_lake_url(),
        consent=service.LEDGER_CONSENT,
        only=audiences or None,
        on_changes=on_audience_changes(),
    )
    table = Table("audience", "size", "entered", "exited")
    for result in results:
        table.add_row(result.audience_id, str(result.size), str(result.entered), str(result.exited))
    Console().print(table)


@audiences_app.command("export")
def export(
    audience: str,
    destination: Destination,
    business_id: Business,
    output: Annotated[Path, typer.Option(help="Write the file here")],
    purpose: Annotated[str | None, typer.Option(help="Consent purpose to require")] = None,
) -> None:
    """Members as CSV or a Meta / Google Ads customer list (consent and suppression applied)."""
    store = _store(Settings())
    if destination == "interest_groups":
        console.print("interest groups need the buyer's URLs: use the API")
        raise typer.Exit(code=2)
    with store.read() as conn:
        result = service.export_audience(
            conn,
            business_id=business_id,
            audience=audience,
            destination=destination,
            purpose=purpose,
        )
    output.write_bytes(result.body)
    typer.echo(f"{result.included} people written to {output}")
    for reason, count in result.left_out.items():
        typer.echo(f"  left out, {reason}: {count}")


@audiences_app.command("suppress")
def suppress(
    kind: str,
    value: str,
    business_id: Business,
    reason: Annotated[str, typer.Option(help="manual, unsubscribe, complaint, …")] = "manual",
) -> None:
    """Leave an email, phone, user id, anonymous id or profile out of every activation."""
    store = _store(Settings())
    with store.write() as conn:
        reach.suppress(
            conn, business_id=business_id, kind=kind, value=value, reason=reason, source="cli"
        )
