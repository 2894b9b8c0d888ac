"""`accord email …`: the send loop for scheduled campaigns, and bounce files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from accord.cli_common import Business, business_store, console, state_store, stop_on_signals
from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.messaging.bounces import apply_delivery_reports, parse_report_email
from accord.messaging.mailer import Mailer
from accord.messaging.sending import run_due
from accord.process.email import default_wiring

email_app = typer.Typer(
    help="Email campaigns: the send loop and bounce files.", no_args_is_help=True
)


@email_app.command("send-due")
def send_due(
    once: Annotated[bool, typer.Option(help="Send what is due now and exit")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between looks")] = 15.0,
) -> None:
    """Send scheduled campaigns when their time comes, and A/B winners after the wait."""
    settings = Settings()
    mailer, wiring = Mailer.from_settings(settings), default_wiring()
    stopping = stop_on_signals()
    with state_store(settings) as store:
        while not stopping.is_set():
            for report in asyncio.run(run_due(store, mailer=mailer, wiring=wiring)):
                console.print(
                    f"campaign {report.campaign_id}: {report.status}, sent {report.sent}, "
                    f"failed {report.failed}, not sent {report.skipped}"
                )
            if once:
                break
            stopping.wait(interval)


@email_app.command("bounces")
def bounces(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help=".eml files")],
    business: Business,
) -> None:
    """Read bounce (RFC 3464) and complaint (ARF) emails; hard bounces are suppressed."""
    total = matched = 0
    with business_store(business) as (store, business_id):
        for path in paths:
            try:
                reports = parse_report_email(path.read_bytes())
            except AccordError as exc:
                # One unreadable file is named and skipped; the others still count.
                console.print(f"{path}: {exc}")
                continue
            total += len(reports)
            with store.write() as conn:
                matched += apply_delivery_reports(conn, business_id=business_id, reports=reports)
    console.print(f"{total} reports, {matched} about messages we sent")
