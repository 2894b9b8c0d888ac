"""The `accord` command: serve, work the inbox, bootstrap, seed the demo, import, report."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from accord.accounts.service import bootstrap as bootstrap_business
from accord.accounts.service import source_for_write_key
from accord.analytics.service import volume
from accord.audiences.cli import audiences_app
from accord.cli_leads import email_app, leads_app
from accord.collect.importer import RawRow, read_events
from accord.collect.service import ImportReport, import_rows, limits_from
from accord.consent.gate import LedgerGate
from accord.core.errors import InvalidInput, UnknownWriteKey
from accord.core.settings import Settings
from accord.experiments.cli import app as experiments_app
from accord.identity.cli import identity_app
from accord.journeys.cli import journeys_app
from accord.predict.cli import predict_app
from accord.process.cli import jobs_app
from accord.process.worker import drain, pending_count
from accord.process.worker import run as run_worker_loop
from accord.profiles.cli import profiles_app
from accord.rights.cli import register as register_rights
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

app = typer.Typer(
    help="Accord: consent-first customer data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
report_app = typer.Typer(help="Reports computed on the engine.", no_args_is_help=True)
app.add_typer(report_app, name="report")
app.add_typer(identity_app, name="identity")
app.add_typer(journeys_app, name="journeys")
app.add_typer(profiles_app, name="profiles")
register_rights(profiles_app)
app.add_typer(email_app, name="email")
app.add_typer(leads_app, name="leads")
app.add_typer(experiments_app, name="experiments")
console = Console(stderr=True)
app.add_typer(audiences_app, name="audiences")
app.add_typer(predict_app, name="predict")
app.add_typer(jobs_app, name="jobs")

DEMO_BUSINESS = "Accord Demo Outfitters"


def _store(settings: Settings) -> Store:
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command()
def migrate() -> None:
    """Bring the state store's schema up to date."""
    settings = Settings()
    upgrade(settings.resolved_database_url())
    console.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    worker: Annotated[bool, typer.Option(help="Run an inbox worker process beside")] = True,
    workers: Annotated[int, typer.Option(min=1, help="HTTP server processes")] = 1,
) -> None:
    """Serve the API, with one worker process beside it (inbox, journeys, scheduled jobs)
    unless --no-worker."""
    import uvicorn

    from accord.process.worker import start_process, stop_process
    from accord.web.app import create_app

    settings = Settings()
    upgrade(settings.resolved_database_url())
    inbox_worker = start_process(settings) if worker and settings.worker_inline else None
    try:
        bind_host, bind_port = host or settings.host, port or settings.port
        if workers == 1:
            uvicorn.run(
                create_app(settings),
                host=bind_host,
                port=bind_port,
                log_level="info",
                access_log=False,
            )
        else:
            # Each process builds its app from the same ACCORD_* environment.
            uvicorn.run(
                "accord.web.app:create_app",
                factory=True,
                workers=workers,
                host=bind_host,
                port=bind_port,
                log_level="info",
                access_log=False,
            )
    finally:
        if inbox_worker is not None:
            stop_process(inbox_worker)


@app.command("worker")
def run_worker(
    once: Annotated[bool, typer.Option(help="Drain the inbox once and exit")] = False,
) -> None:
    """Process the inbox, run journeys and scheduled jobs; run several on PostgreSQL."""
    logging.basicConfig(level=logging.INFO)
    settings = Settings()
    upgrade(settings.resolved_database_url())
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    run_worker_loop(
        settings,
        should_stop=stopping.is_set,
        on_processed=lambda n: console.print(f"processed {n} events"),
        once=once,
    )


@app.command()
def bootstrap(
    name: Annotated[str, typer.Option(help="Business name")] = DEMO_BUSINESS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create (or find again) a business with one source; print its keys and a new admin token."""
    store = _store(Settings())
    result = bootstrap_business(store, name=name)
    store.dispose()
    if as_json:
        typer.echo(result.model_dump_json())
    else:
        for key, value in result.model_dump().items():
            typer.echo(f"{key}: {value}")


def _import(
    store: Store,
    settings: Settings,
    write_key: str,
    rows: Iterable[RawRow],
    total: int | None,
    label: str,
) -> ImportReport:
    try:
        source = source_for_write_key(store, write_key)
    except UnknownWriteKey:
        console.print("[red]error:[/red] no enabled source has that write key")
        raise typer.Exit(code=2) from None
    with _progress() as progress:
        task = progress.add_task(label, total=total)
        return import_rows(
            store,
            source=source,
            rows=rows,
            gate=LedgerGate(store=store),
            limits=limits_from(settings),
            on_progress=lambda n: progress.advance(task, n),
        )


def _drain_with_progress(store: Store, settings: Settings) -> int:
    total = pending_count(store)
    if not total:
        return 0
    with _progress() as progress:
        task = progress.add_task("processing", total=total)
        return drain(
            store,
            lake_url=settings.resolved_lake_url(),
            batch_size=settings.worker_batch_size,
            lease=timedelta(seconds=settings.worker_lease_seconds),
            take_over_all=store.dialect == "sqlite",
            on_batch=lambda n: progress.advance(task, n),
        )


@app.command("import")
def import_file(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl/.ndjson/.csv (.gz)")
    ],
    write_key: Annotated[str, typer.Option(help="Write key of the source the events come from")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by name)")
    ] = None,
    errors: Annotated[
        Path | None, typer.Option(help="Write rejected rows here as JSON Lines")
    ] = None,
    process: Annotated[bool, typer.Option(help="Process the inbox after importing")] = True,
) -> None:
    """Import Segment-shaped events; bad rows are reported, good rows are stored exactly once."""
    settings = Settings()
    store = _store(settings)
    with path.open("rb") as handle:
        total = sum(1 for _ in handle) if not path.name.endswith(".gz") else None
    if total is not None and (fmt == "csv" or path.name.endswith(".csv")):
        total -= 1
    summary = _import(store, settings, write_key, read_events(path, fmt), total, "importing")
    if process:
        _drain_with_progress(store, settings)
    store.dispose()
    rejected = summary.rejected
    if errors is not None:
        errors.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rejected))
    table = Table("read", "stored", "duplicates", "rejected rows")
    table.add_row(
        str(summary.read),
        str(summary.stored),
        str(summary.duplicates),
        str(len({r["line"] for r in rejected})),
    )
    console.print(table)
    for problem in rejected[:20]:
        console.print(f"line {problem['line']}: {problem['field']}: {problem['reason']}")
    if len(rejected) > 20:
        console.print(f"… {len(rejected) - 20} more" + (f" in {errors}" if errors else ""))
    if rejected:
        raise typer.Exit(code=1)


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="How many demo events to generate")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the generator")] = 42,
    days: Annotated[int, typer.Option(help="Days of history, ending today")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON")] = False,
) -> None:
    """Seed the demo business with generated behaviour (idempotent for the same seed)."""
    from accord.demo.generator import generate_n_events

    settings = Settings()
    store = _store(settings)
    keys = bootstrap_business(store, name=DEMO_BUSINESS)
    from accord.consent.service import ensure_property

    # The demo site's banner: GET /v1/consent/config?writeKey=…&property=web
    ensure_property(store, business_id=keys.business_id, key="web", name="Demo web shop")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days)
    rows = (
        RawRow(line=i, event=e)
        for i, e in enumerate(generate_n_events(events, seed=seed, start=start, days=days), start=1)
    )
    summary = _import(store, settings, keys.write_key, rows, events, "seeding demo")
    _drain_with_progress(store, settings)
    store.dispose()
    console.print(f"demo events stored: {summary.stored} (already there: {summary.duplicates})")
    if as_json:
        typer.echo(keys.model_dump_json())
    else:
        for key, value in keys.model_dump().items():
            typer.echo(f"{key}: {value}")


@report_app.command("volume")
def report_volume(
    business_id: Annotated[str | None, typer.Option(help="Only this business")] = None,
    engine: Annotated[
        str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Events per day, source and type, computed on DuckDB or Spark."""
    settings = Settings()
    rows = volume(
        engine_url=engine or settings.engine_url,
        lake_url=settings.resolved_lake_url(),
        business_id=business_id,
    )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table("business", "day", "source", "type", "events")
    for row in rows:
        table.add_row(
            row["business_id"], row["day"], row["source_id"], row["type"], str(row["events"])
        )
    Console().print(table)


consent_app = typer.Typer(help="Consent: ledger, proofs, cookie scanner.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")


@consent_app.command("scan")
def consent_scan(
    url: Annotated[str, typer.Argument(help="First page of the site, http(s)")],
    pages: Annotated[int, typer.Option(min=1, max=200, help="Same-origin pages to visit")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    accept_selector: Annotated[
        str | None, typer.Option(help="CSS selector of the site's accept-all control")
    ] = None,
    fetch_third_party: Annotated[
        bool, typer.Option(help="Let third-party requests through (else record and abort)")
    ] = True,
    chromium: Annotated[str | None, typer.Option(help="Chromium binary")] = None,
) -> None:
    """Crawl a site before and after accept-all; list and classify cookies, storage, requests.

    Exits 1 when something is set or called before consent (see docs/cmp.md).
    """
    from accord.consent.scanner import ScanFailed, scan

    try:
        report = scan(
            url,
            pages=pages,
            chromium=chromium,
            accept_selector=accept_selector,
            fetch_third_party=fetch_third_party,
        )
    except ScanFailed as exc:
        console.print(f"[red]scan failed:[/red] {exc}")
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table(title=f"{url}: {len(report.pages)} pages, accept: {report.consent_action}")
        for column in ("", "when", "kind", "name", "domain", "vendor", "purpose", "note"):
            table.add_column(column)
        for f in report.findings:
            table.add_row(
                "FLAG" if f.flagged else "",
                f.phase.replace("_", " "),
                f.kind,
                f.name,
                f.domain,
                f.vendor or "",
                f.purpose or "",
                f.reason,
            )
        Console(width=200).print(table)
    if report.flagged:
        raise typer.Exit(code=1)


def _consent_business(store: Store, business: str | None) -> str:
    """The business a consent command acts on: the one given, or the only one there is."""
    from accord.consent.service import businesses

    if business:
        return business
    known = businesses(store)
    if len(known) != 1:
        console.print("[red]error:[/red] several businesses: name one with --business")
        raise typer.Exit(code=2)
    return known[0]


@consent_app.command("verify")
def consent_verify(
    business: Annotated[str | None, typer.Option(help="Only this business id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check every business's ledger hash chain; exit 1 naming the first bad record."""
    from accord.consent.service import businesses, verify_ledger

    store = _store(Settings())
    results = [verify_ledger(store, business_id=b) for b in [business] if b] or [
        verify_ledger(store, business_id=b) for b in businesses(store)
    ]
    store.dispose()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results]))
    for result in results:
        if as_json:
            continue
        if result.problem is None:
            console.print(
                f"{result.business_id}: ok, {result.records} records, head {result.head_hash}"
            )
        else:
            console.print(
                f"[red]{result.business_id}: FAILED at record {result.problem.position}"
                f" ({result.problem.record_id or 'missing'}): {result.problem.reason}[/red]"
            )
    if any(r.problem is not None for r in results):
        raise typer.Exit(code=1)


@consent_app.command("proof")
def consent_proof(
    subject: Annotated[str, typer.Argument(help="anonymousId or userId")],
    business: Annotated[str | None, typer.Option(help="Business id")] = None,
    fmt: Annotated[str, typer.Option("--format", help="json or html")] = "json",
    out: Annotated[Path | None, typer.Option(help="Write to this file")] = None,
) -> None:
    """Export a subject's consent history with the texts shown, as JSON or an HTML page."""
    from accord.consent.service import proof_of

    if fmt not in ("json", "html"):
        console.print("[red]error:[/red] --format is json or html")
        raise typer.Exit(code=2)
    store = _store(Settings())
    business_id = _consent_business(store, business)
    document = proof_of(store, business_id=business_id, subject=subject, html=fmt == "html")
    store.dispose()
    if document is None:
        console.print(f"[red]error:[/red] no consent record of {subject!r}")
        raise typer.Exit(code=1)
    if out is not None:
        out.write_text(document, encoding="utf-8")
    else:
        typer.echo(document)


@consent_app.command("export")
def consent_export(
    purpose: Annotated[str, typer.Option(help="Purpose key, e.g. marketing")],
    business: Annotated[str | None, typer.Option(help="Business id")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the CSV here")] = None,
) -> None:
    """CSV of the identifiers whose current choice grants a purpose."""
    from accord.consent.service import export_granted

    store = _store(Settings())
    business_id = _consent_business(store, business)
    lines = export_granted(store, business_id=business_id, purpose=purpose)
    store.dispose()
    if out is not None:
        out.write_text("".join(lines), encoding="utf-8")
    else:
        typer.echo("".join(lines), nl=False)


@consent_app.command("report")
def consent_report(
    by: Annotated[
        str,
        typer.Option(
            help="purpose, notice_version, variant, country, device, day, regime, source or choice"
        ),
    ] = "purpose",
    business: Annotated[str | None, typer.Option(help="Business id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Opt-in rate per purpose and a dimension, computed on the engine."""
    from accord.consent.service import opt_in_report

    settings = Settings()
    store = _store(settings)
    business_id = _consent_business(store, business)
    try:
        rows = opt_in_report(store, business_id=business_id, by=by, engine_url=settings.engine_url)
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    finally:
        store.dispose()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    keys = ["purpose"] if by == "purpose" else ["purpose", by]
    table = Table(*keys, "decisions", "granted", "opt-in rate")
    for row in rows:
        table.add_row(
            *(str(row[k]) for k in keys),
            str(row["decisions"]),
            str(row["granted"]),
            f"{row['opt_in_rate']:.1%}",
        )
    Console().print(table)


if __name__ == "__main__":
    app()
