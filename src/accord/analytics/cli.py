"""`accord report …`: reports computed on the engine."""

from __future__ import annotations

from typing import Annotated

import typer

from accord.analytics.service import volume
from accord.cli_common import AsJson, Engine, business_id_of, echo_json, print_table, state_store
from accord.core.settings import Settings

report_app = typer.Typer(help="Reports computed on the engine.", no_args_is_help=True)


@report_app.command("volume")
def report_volume(
    business: Annotated[
        str | None, typer.Option("--business", help="Only this business (id or write key)")
    ] = None,
    engine: Engine = None,
    as_json: AsJson = False,
) -> None:
    """Events per day, source and type, computed on DuckDB or Spark."""
    settings = Settings()
    business_id = None
    if business is not None:  # the report itself reads only the lake
        with state_store(settings) as store:
            business_id = business_id_of(store, business)
    rows = volume(
        engine_url=engine or settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=business_id,
    )
    if as_json:
        echo_json(rows)
        return
    print_table(
        "business",
        "day",
        "source",
        "type",
        "events",
        rows=[(r["business_id"], r["day"], r["source_id"], r["type"], r["events"]) for r in rows],
    )
