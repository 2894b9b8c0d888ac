"""`accord profiles export|erase`: subject-rights export and erasure from the command line."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from sqlalchemy import Connection

from accord.accounts.models import Actor
from accord.cli_common import Business, business_store, echo_json
from accord.core.settings import Settings
from accord.identity import service as identity
from accord.profiles import service as profiles
from accord.rights import service

Subject = Annotated[
    str, typer.Argument(help="A profile id, or an identifier as kind:value (email:ann@…)")
]


def _profile_id(conn: Connection, business_id: str, subject: str) -> str:
    if ":" not in subject:
        return subject
    kind, value = subject.split(":", 1)
    key = identity.lookup_key(conn, business_id=business_id, kind=kind, value=value)
    return profiles.find_profile_id(conn, business_id=business_id, kind=key[0], value=key[1])


def export(subject: Subject, business: Business) -> None:
    """Print everything held about a person as JSON (profile, identifiers, events, merges,
    consent ledger records, leads, email history, journey runs)."""
    with business_store(business) as (store, business_id), store.read() as conn:
        exported = service.export_subject(
            conn,
            business_id=business_id,
            profile_id=_profile_id(conn, business_id, subject),
        )
    echo_json(exported, indent=True)


def erase(
    subject: Subject,
    business: Business,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase a person from the state store, the inbox and the lake; print the report."""
    settings = Settings()
    with business_store(business, settings) as (store, business_id):
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
    echo_json(report, indent=True)


def register(app: typer.Typer) -> None:
    """Add `export` and `erase` to a command group (`accord profiles`)."""
    app.command("export")(export)
    app.command("erase")(erase)
