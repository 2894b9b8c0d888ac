"""`accord bootstrap`: create (or find again) a business with its first source."""

from __future__ import annotations

from typing import Annotated

import typer

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap as bootstrap_business
from accord.cli_common import AsJson, echo_json, state_store

DEMO_BUSINESS = "Accord Demo Outfitters"


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
