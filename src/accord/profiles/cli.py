"""`accord profiles …`: profile batch jobs (RFM scores); `rights.cli` adds export and erase."""

from __future__ import annotations

from typing import Annotated

import typer

from accord.cli_common import Engine, echo_json, some_business_id, state_store
from accord.core.settings import Settings
from accord.profiles import service

profiles_app = typer.Typer(help="Profiles and subject rights.", no_args_is_help=True)


@profiles_app.command("rfm")
def rfm(
    business: Annotated[
        str | None,
        typer.Option("--business", help="One business, id or write key (default: every one)"),
    ] = None,
    engine: Engine = None,
) -> None:
    """Score every customer's recency, frequency and monetary value in quintiles (1–5),
    store the boundaries, and set the scores as traits; print a summary per business."""
    settings = Settings()
    with state_store(settings) as store:
        business_id = some_business_id(store, business)
        if business_id is None:
            with store.read() as conn:
                businesses = service.business_ids(conn)
        else:
            businesses = [business_id]
        runs = [
            service.run_rfm(store, business_id=b, engine_url=engine or settings.engine_url)
            for b in businesses
        ]
    echo_json(runs, indent=True)
