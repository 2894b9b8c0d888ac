"""`accord bootstrap` and `accord people`: businesses, their first source, their members."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from accord.accounts import membership, permissions
from accord.accounts.models import Actor, Bootstrap
from accord.accounts.service import bootstrap as bootstrap_business
from accord.cli_common import (
    AsJson,
    Business,
    business_store,
    console,
    echo_json,
    fail,
    state_store,
)

DEMO_BUSINESS = "Accord Demo Outfitters"

people_app = typer.Typer(help="People: members of a business.", no_args_is_help=True)


def print_keys(keys: Bootstrap, *, as_json: bool) -> None:
    """A business's keys as JSON, or as `key: value` lines."""
    if as_json:
        echo_json(keys)
        return
    for key, value in keys.model_dump().items():
        typer.echo(f"{key}: {value}")


def bootstrap(
    name: Annotated[str, typer.Option(help="Business name")] = DEMO_BUSINESS,
    as_json: AsJson = False,
) -> None:
    """Create (or find again) a business with one source; print its keys and a new admin token."""
    with state_store() as store:
        keys = bootstrap_business(store, name=name)
    print_keys(keys, as_json=as_json)


@people_app.command("create")
def create_person(
    business: Business,
    email: Annotated[str, typer.Option(help="The person's email, their sign-in name")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(permissions.ROLES)}")],
    name: Annotated[
        str | None, typer.Option(help="Their name (default: the email's local part)")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="Their password for a new account (default: a generated one, printed once)"
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Make a person a member of the business, creating their account if there is none."""
    if role not in permissions.ROLES:
        raise fail(f"role: one of {', '.join(permissions.ROLES)}")
    actor = Actor(kind="system", label=f"accord people create (by {getpass.getuser()})")
    with business_store(business) as (store, business_id), store.write() as conn:
        added = membership.add_person(
            conn,
            business_id=business_id,
            email=email,
            role=role,
            actor=actor,
            name=name,
            password=password,
        )
    member = added.member
    if as_json:
        echo_json(
            {
                "person_id": member.person_id,
                "email": member.email,
                "role": member.role,
                "created": added.created,
                "password": added.password,
            }
        )
        return
    what = "created and added" if added.created else "existing account added"
    console.print(f"{member.email}: {what} as {member.role}")
    if added.password is not None:
        typer.echo(f"password: {added.password}")
        console.print("The password is shown this once; it is stored only as a hash.")
