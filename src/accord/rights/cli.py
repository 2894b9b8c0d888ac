"""`accord profiles export|erase`: subject-rights export and erasure from the command line."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Connection

from accord.accounts.models import Actor
from accord.consent import service as consent
from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.identity import service as identity
from accord.profiles import service as profiles
from accord.rights import service
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

console = Console(stderr=True)

Business = Annotated[str, typer.Option("--business-id", help="The business")]
Subject = Annotated[
    str, typer.Argument(help="A profile id, or an identifier as kind:value (email:ann@…)")
]


def _store(settings: Settings) -> Store:
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _profile_id(conn: Connection, business_id: str, subject: str) -> str:
    if ":" not in subject:
        return subject
    kind, value = subject.split(":", 1)
    key = identity.lookup_key(conn, business_id=business_id, kind=kind, value=value)
    return profiles.find_profile_id(conn, business_id=business_id, kind=key[0], value=key[1])


def export(subject: Subject, business_id: Business) -> None:
    """Print everything held about a person as JSON (profile, identifiers, events, merges,
    consent ledger records, leads, email history, journey runs)."""
    store = _store(Settings())
    try:
        with store.read() as conn:
            pid = _profile_id(conn, business_id, subject)
            exported = service.export_subject(
                conn,
                business_id=business_id,
                profile_id=pid,
                consent_records=consent.records_of_person,
            )
    except AccordError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from exc
    finally:
        store.dispose()
    typer.echo(exported.model_dump_json(indent=2))


def erase(
    subject: Subject,
    business_id: Business,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase a person from the state store, the inbox and the lake; print the report."""
    settings = Settings()
    store = _store(settings)
    try:
        with store.read() as conn:
            pid = _profile_id(conn, business_id, subject)
        if not yes:
            typer.confirm(f"Erase profile {pid} and all its events for good?", abort=True)
        report = service.erase_subject(
            store,
            business_id=business_id,
            profile_id=pid,
            lake_url=settings.resolved_lake_url(),
            actor=Actor(kind="system", label=f"accord profiles erase (by {getpass.getuser()})"),
        )
    except AccordError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from exc
    finally:
        store.dispose()
    typer.echo(report.model_dump_json(indent=2))


def register(app: typer.Typer) -> None:
    """Add `export` and `erase` to a command group (`accord profiles`)."""
    app.command("export")(export)
    app.command("erase")(erase)
