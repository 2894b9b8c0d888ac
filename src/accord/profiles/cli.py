"""`accord profiles …`: profile batch jobs (RFM scores); `rights.cli` adds export and erase."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import orjson
import typer

from accord.core.settings import Settings
from accord.profiles import service
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

profiles_app = typer.Typer(help="Profiles and subject rights.", no_args_is_help=True)


def _store(settings: Settings) -> Store:
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


@profiles_app.command("rfm")
def rfm(
    business_id: Annotated[
        str | None, typer.Option("--business-id", help="One business (default: every one)")
    ] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="Engine URL (default: ACCORD_ENGINE_URL)")
    ] = None,
) -> None:
    """Score every customer's recency, frequency and monetary value in quintiles (1–5),
    store the boundaries, and set the scores as traits; print a summary per business."""
    settings = Settings()
    store = _store(settings)
    try:
        if business_id is None:
            with store.read() as conn:
                businesses = service.business_ids(conn)
        else:
            businesses = [business_id]
        runs = [
            service.run_rfm(store, business_id=b, engine_url=engine or settings.engine_url)
            for b in businesses
        ]
    finally:
        store.dispose()
    typer.echo(orjson.dumps([asdict(r) for r in runs], option=orjson.OPT_INDENT_2).decode())
