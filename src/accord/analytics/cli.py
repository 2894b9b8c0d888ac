"""`accord report …` and `accord analytics …`: reports computed on the engine."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from accord.analytics.attribution import AttributionSpec
from accord.analytics.service import attribution, volume
from accord.cli_common import (
    AsJson,
    Engine,
    business_id_of,
    business_store,
    echo_json,
    print_table,
    state_store,
    usage,
)
from accord.core.settings import Settings
from accord.engine.connection import connect

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


analytics_app = typer.Typer(help="Customer analytics on the engine.", no_args_is_help=True)


@analytics_app.command("attribution")
def attribution_command(
    business: Annotated[str, typer.Option("--business", help="The business (id or write key)")],
    since: Annotated[str, typer.Option("--from", help="First UTC day of conversions")],
    until: Annotated[str, typer.Option("--to", help="Last UTC day of conversions, included")],
    model: Annotated[str, typer.Option(help="first_touch, last_touch or linear")] = "last_touch",
    event: Annotated[str, typer.Option(help="The conversion event")] = "Order Completed",
    lookback_days: Annotated[int, typer.Option(help="Touches at most this many days before")] = 30,
    engine: Engine = None,
    as_json: AsJson = False,
) -> None:
    """Conversions, new customers, revenue, spend and cost per acquired customer per
    channel and campaign (the same report as POST /api/analytics/attribution)."""
    try:
        spec = AttributionSpec.model_validate(
            {
                "model": model,
                "conversion_event": event,
                "lookback_days": lookback_days,
                "from": since,
                "to": until,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = {"from": "--from", "to": "--to", "lookback_days": "--lookback-days"}.get(
            str(first["loc"][0]), f"--{first['loc'][0]}"
        )
        raise usage(f"{field}: {first['msg']}") from None
    settings = Settings()
    with business_store(business, settings) as (store, business_id), store.read() as conn:
        report = attribution(
            conn,
            backend=connect(engine or settings.engine_url),
            lake_url=settings.resolved_lake_url(),
            business_id=business_id,
            spec=spec,
        )
    if as_json:
        echo_json(report)
        return
    print_table(
        "channel",
        "campaign",
        "conversions",
        "new customers",
        "revenue",
        "spend",
        "cost per acquisition",
        rows=[
            (
                r["channel"],
                r["campaign"],
                f"{r['conversions']:.2f}",
                f"{r['new_customers']:.2f}",
                f"{r['revenue']:.2f}",
                "" if r["spend"] is None else f"{r['spend']:.2f}",
                "" if r["cost_per_acquisition"] is None else f"{r['cost_per_acquisition']:.2f}",
            )
            for r in report["rows"]
        ],
    )
