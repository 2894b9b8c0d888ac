"""`accord report …` and `accord analytics funnel|paths|retention|attribution`: reports
computed on the engine (funnel, paths and retention take the API's JSON body as their spec;
attribution takes options)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError

from accord.analytics.attribution import AttributionSpec
from accord.analytics.service import attribution, run_report, volume
from accord.cli_common import (
    AsJson,
    Business,
    Engine,
    business_id_of,
    business_store,
    echo_json,
    print_table,
    state_store,
    usage,
)
from accord.core.errors import InvalidInput
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


analytics_app = typer.Typer(
    help="Funnels, paths, retention (the spec is the API's JSON body) and attribution.",
    no_args_is_help=True,
)
Spec = Annotated[str, typer.Argument(help="A JSON file with the spec, or - for stdin")]


def _spec(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return orjson.loads(text)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise usage(f"SPEC: {exc}") from None


def _run(kind: str, business: str, spec: str, engine: str | None) -> dict[str, Any]:
    settings = Settings()
    data = _spec(spec)
    with business_store(business, settings) as (store, business_id):
        try:
            return run_report(
                kind,
                data,
                store=store,
                engine_url=engine or settings.engine_url,
                lake_url=settings.resolved_lake_url(),
                business_id=business_id,
            )
        except InvalidInput as exc:
            raise usage(f"SPEC: {exc}") from None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


@analytics_app.command("funnel")
def funnel(business: Business, spec: Spec, engine: Engine = None, as_json: AsJson = False) -> None:
    """People reaching each step of a funnel, in order, within its window."""
    result = _run("funnels", business, spec, engine)
    if as_json:
        echo_json(result)
        return
    print_table(
        "step",
        "people",
        "from previous",
        "from first",
        "median s",
        rows=[
            (
                f"{i + 1}. {s['name']}",
                s["count"],
                _pct(s["conversion_from_previous"]),
                _pct(s["conversion_from_first"]),
                "–"
                if s["median_seconds_to_convert"] is None
                else f"{s['median_seconds_to_convert']:.0f}",
            )
            for i, s in enumerate(result["steps"])
        ],
    )


@analytics_app.command("paths")
def paths(business: Business, spec: Spec, engine: Engine = None, as_json: AsJson = False) -> None:
    """The events people do next after (or before) their first event of a kind."""
    result = _run("paths", business, spec, engine)
    if as_json:
        echo_json(result)
        return
    print_table(
        "from",
        "to",
        "people",
        rows=[
            (
                f"{x['source_position']} {x['source']}",
                f"{x['target_position']} {x['target']}",
                x["people"],
            )
            for x in result["links"]
        ],
        title=f"{result['people']} people",
    )


@analytics_app.command("retention")
def retention(
    business: Business, spec: Spec, engine: Engine = None, as_json: AsJson = False
) -> None:
    """Cohorts by first period and how many come back in each later one."""
    result = _run("retention", business, spec, engine)
    if as_json:
        echo_json(result)
        return
    periods = len(result["curve"])
    print_table(
        "cohort",
        "people",
        *(f"{result['period']} {p}" for p in range(1, periods + 1)),
        rows=[
            (c["start"], c["people"], *("–" if n is None else n for n in c["returned"]))
            for c in result["cohorts"]
        ],
    )


@analytics_app.command("attribution")
def attribution_command(
    business: Business,
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
