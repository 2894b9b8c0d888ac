"""`accord email ...` and `accord leads ...`: the send loop, bounce files and lead imports."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.accounts.service import source_for_write_key
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import limits_from
from accord.core.errors import AccordError, UnknownWriteKey
from accord.core.settings import Settings
from accord.leads import service as leads
from accord.leads.lead_ads import read_lead_ads, read_mapped_csv
from accord.messaging import service as messaging
from accord.messaging.bounces import parse_report_email
from accord.process.email import default_wiring
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

email_app = typer.Typer(
    help="Email campaigns: the send loop and bounce files.", no_args_is_help=True
)
leads_app = typer.Typer(help="Leads: imports of lead exports.", no_args_is_help=True)
console = Console(stderr=True)


def _store(settings: Settings) -> Store:
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _business(store: Store, write_key: str) -> str:
    try:
        return source_for_write_key(store, write_key).business_id
    except UnknownWriteKey:
        console.print("[red]error:[/red] no enabled source has that write key")
        raise typer.Exit(code=2) from None


@email_app.command("send-due")
def send_due(
    once: Annotated[bool, typer.Option(help="Send what is due now and exit")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between looks")] = 15.0,
) -> None:
    """Send scheduled campaigns when their time comes, and A/B winners after the wait."""
    settings = Settings()
    store = _store(settings)
    mailer, wiring = messaging.Mailer.from_settings(settings), default_wiring()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    try:
        while not stopping.is_set():
            for report in asyncio.run(messaging.run_due(store, mailer=mailer, wiring=wiring)):
                console.print(
                    f"campaign {report.campaign_id}: {report.status}, sent {report.sent}, "
                    f"failed {report.failed}, not sent {report.skipped}"
                )
            if once:
                break
            stopping.wait(interval)
    finally:
        store.dispose()


@email_app.command("bounces")
def bounces(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help=".eml files")],
    write_key: Annotated[str, typer.Option(help="Write key of a source of the business")],
) -> None:
    """Read bounce (RFC 3464) and complaint (ARF) emails; hard bounces are suppressed."""
    settings = Settings()
    store = _store(settings)
    business_id = _business(store, write_key)
    total = matched = 0
    try:
        for path in paths:
            try:
                reports = parse_report_email(path.read_bytes())
            except AccordError as exc:
                console.print(f"{path}: {exc}")
                continue
            total += len(reports)
            with store.write() as conn:
                matched += messaging.apply_delivery_reports(
                    conn, business_id=business_id, reports=reports
                )
    finally:
        store.dispose()
    console.print(f"{total} reports, {matched} about messages we sent")


@leads_app.command("import")
def import_leads(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or TSV export")],
    write_key: Annotated[str, typer.Option(help="Write key of a source of the business")],
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
    settings = Settings()
    store = _store(settings)
    business_id = _business(store, write_key)
    raw = path.read_bytes()
    try:
        rows = list(read_mapped_csv(raw, orjson.loads(mapping)) if mapping else read_lead_ads(raw))
        report = leads.import_leads(
            store,
            business_id=business_id,
            rows=rows,
            kind="csv" if mapping else "lead_ads",
            name=name or path.name,
            spend=spend,
            gate=KeepEverything(),
            limits=limits_from(settings),
            phone_region=phone_region,
        )
    except (AccordError, orjson.JSONDecodeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    finally:
        store.dispose()
    table = Table("read", "added", "updated", "rejected rows")
    table.add_row(
        str(report.read),
        str(report.added),
        str(report.updated),
        str(len({r["line"] for r in report.rejected})),
    )
    console.print(table)
    if errors is not None:
        errors.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in report.rejected))
    for problem in report.rejected[:20]:
        console.print(f"line {problem['line']}: {problem['field']}: {problem['reason']}")
    if report.rejected:
        raise typer.Exit(code=1)
