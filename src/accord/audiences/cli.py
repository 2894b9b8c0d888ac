"""`accord audiences …`: define, preview, refresh and export audiences from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from accord.accounts.audit import cli_actor, record_action
from accord.audiences import activation, definitions
from accord.audiences import refresh as audience_refresh
from accord.audiences.exports import Destination
from accord.audiences.models import AudienceIn
from accord.cli_common import (
    Business,
    Engine,
    business_store,
    echo_json,
    print_table,
    usage,
)
from accord.core.settings import Settings
from accord.engine.connection import connect
from accord.process.journeys import on_audience_changes
from accord.reach import service as reach

audiences_app = typer.Typer(help="Audiences, suppression and exports.", no_args_is_help=True)


@audiences_app.command("list")
def list_audiences(business: Business) -> None:
    """Every audience with its size after the last refresh."""
    with business_store(business) as (store, business_id), store.write() as conn:
        definitions.ensure_predefined(conn, business_id=business_id)
        views = definitions.list_audiences(conn, business_id=business_id)
    print_table(
        "slug",
        "size",
        "realtime",
        "definition",
        rows=[(v.slug, v.size, "yes" if v.realtime else "", v.text) for v in views],
    )


@audiences_app.command("validate")
def validate(text: str, business: Business) -> None:
    """Check a definition in the text form; print its canonical text and its JSON."""
    with business_store(business) as (store, business_id), store.read() as conn:
        result = definitions.validate_definition(
            conn,
            business_id=business_id,
            definition=None,
            text=text,
        )
    typer.echo(result.text)
    echo_json(result.definition, indent=True)


@audiences_app.command("create")
def create(
    slug: str,
    text: str,
    business: Business,
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug)")] = None,
    suppression: Annotated[bool, typer.Option(help="Leave members out of activations")] = False,
) -> None:
    """Define an audience in the text form."""
    with business_store(business) as (store, business_id), store.write() as conn:
        view = definitions.create_audience(
            conn,
            business_id=business_id,
            audience=AudienceIn(name=name or slug, slug=slug, text=text, suppression=suppression),
        )
    typer.echo(view.id)


@audiences_app.command("preview")
def preview(text: str, business: Business, engine: Engine = None) -> None:
    """How many people a definition selects now."""
    settings = Settings()
    with business_store(business, settings) as (store, business_id):
        result = audience_refresh.preview(
            store,
            business_id=business_id,
            definition=definitions.definition_from(None, text),
            backend=connect(engine or settings.engine_url),
            lake_url=settings.resolved_lake_url(),
        )
    typer.echo(f"{result.size} people")
    for member in result.sample:
        typer.echo(f"  {member.profile_id} {orjson.dumps(member.traits).decode()}")


@audiences_app.command("refresh")
def refresh(
    business: Business,
    audiences: Annotated[list[str] | None, typer.Argument(help="Slugs (default: all)")] = None,
    engine: Engine = None,
) -> None:
    """Recompute audiences on the engine; record entries and exits."""
    settings = Settings()
    with business_store(business, settings) as (store, business_id):
        results = audience_refresh.refresh(
            store,
            business_id=business_id,
            backend=connect(engine or settings.engine_url),
            lake_url=settings.resolved_lake_url(),
            only=audiences or None,
            on_changes=on_audience_changes(),
        )
    print_table(
        "audience",
        "size",
        "entered",
        "exited",
        rows=[(r.audience_id, r.size, r.entered, r.exited) for r in results],
    )


@audiences_app.command("export")
def export(
    audience: str,
    destination: Destination,
    business: Business,
    output: Annotated[Path, typer.Option(help="Write the file here")],
    purpose: Annotated[str | None, typer.Option(help="Consent purpose to require")] = None,
) -> None:
    """Members as CSV or a Meta / Google Ads customer list (consent and suppression applied)."""
    if destination == "interest_groups":
        raise usage("interest groups need the buyer's URLs: use the API")
    with business_store(business) as (store, business_id):
        with store.read() as conn:
            result = activation.export_audience(
                conn,
                business_id=business_id,
                audience=audience,
                destination=destination,
                purpose=purpose,
            )
        output.write_bytes(result.body)
        with store.write() as conn:
            record_action(
                conn,
                business_id=business_id,
                actor=cli_actor("audiences export"),
                action="audience.export",
                asset=("audience", audience),
                destination=destination,
                purpose=purpose,
                included=result.included,
                left_out=result.left_out,
            )
    typer.echo(f"{result.included} people written to {output}")
    for reason, count in result.left_out.items():
        typer.echo(f"  left out, {reason}: {count}")


@audiences_app.command("suppress")
def suppress(
    kind: str,
    value: str,
    business: Business,
    reason: Annotated[str, typer.Option(help="manual, unsubscribe, complaint, …")] = "manual",
) -> None:
    """Leave an email, phone, user id, anonymous id or profile out of every activation."""
    with business_store(business) as (store, business_id), store.write() as conn:
        reach.suppress(
            conn, business_id=business_id, kind=kind, value=value, reason=reason, source="cli"
        )
        record_action(
            conn,
            business_id=business_id,
            actor=cli_actor("audiences suppress"),
            action="suppression.add",
            kind=kind,
            value=value,
            reason=reason,
        )
