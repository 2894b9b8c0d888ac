"""`accord leads …`: imports of lead exports (Lead Ads, or any CSV with a mapping)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from accord.cli_common import (
    FAILED,
    Business,
    business_store,
    print_table,
    report_rejected,
    usage,
)
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import limits_from
from accord.core.settings import Settings
from accord.leads import imports
from accord.leads.lead_ads import read_lead_ads, read_mapped_csv

leads_app = typer.Typer(help="Leads: imports of lead exports.", no_args_is_help=True)


@leads_app.command("import")
def import_leads(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or TSV export")],
    business: Business,
    name: Annotated[str | None, typer.Option(help="Name of this import")] = None,
    mapping: Annotated[
        str | None,
        typer.Option(help='Generic CSV: JSON {"email": "column", "name": ...}; default: Lead Ads'),
    ] = None,
    spend: Annotated[float | None, typer.Option(help="What these leads cost")] = None,
    phone_region: Annotated[
        str | None, typer.Option(help="Region of national phone numbers")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option(help="Write rejected rows here as JSON Lines")
    ] = None,
) -> None:
    """Import a Facebook / Instagram Lead Ads export, or any CSV with --mapping."""
    try:
        columns = orjson.loads(mapping) if mapping else None
    except orjson.JSONDecodeError as exc:
        raise usage(f"--mapping is not JSON: {exc}") from None
    settings = Settings()
    raw = path.read_bytes()
    with business_store(business, settings) as (store, business_id):
        rows = list(read_mapped_csv(raw, columns) if columns else read_lead_ads(raw))
        report = imports.import_leads(
            store,
            business_id=business_id,
            rows=rows,
            kind="csv" if columns else "lead_ads",
            name=name or path.name,
            spend=spend,
            gate=KeepEverything(),
            limits=limits_from(settings),
            phone_region=phone_region,
        )
    print_table(
        "read",
        "added",
        "updated",
        "rejected rows",
        rows=[
            (report.read, report.added, report.updated, len({r["line"] for r in report.rejected}))
        ],
        err=True,
    )
    report_rejected(report.rejected, errors)
    if report.rejected:
        raise typer.Exit(FAILED)
