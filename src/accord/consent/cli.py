"""`accord consent …`: the ledger's hash chain, proofs, grant exports, opt-in reports, scans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from accord.accounts.audit import cli_actor, record_action
from accord.cli_common import (
    FAILED,
    AsJson,
    business_id_of,
    console,
    echo_json,
    fail,
    print_table,
    state_store,
    usage,
)
from accord.consent import service
from accord.core.settings import Settings
from accord.leads.subjects import anonymous_ids_of_email
from accord.store.db import Store

consent_app = typer.Typer(help="Consent: ledger, proofs, cookie scanner.", no_args_is_help=True)

SomeBusiness = Annotated[
    str | None,
    typer.Option(
        "--business", help="The business (id or write key); needed when there are several"
    ),
]


def _business_id(store: Store, business: str | None) -> str:
    """The business a consent command acts on: the one given, or the only one there is."""
    if business:
        return business_id_of(store, business)
    known = service.businesses(store)
    if len(known) != 1:
        raise usage("several businesses: name one with --business")
    return known[0]


@consent_app.command("scan")
def scan(
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
    from accord.consent.scanner import ScanFailed
    from accord.consent.scanner import scan as scan_site

    try:
        report = scan_site(
            url,
            pages=pages,
            chromium=chromium,
            accept_selector=accept_selector,
            fetch_third_party=fetch_third_party,
        )
    except ScanFailed as exc:
        raise usage(f"scan failed: {exc}") from None
    if as_json:
        echo_json(report.to_dict(), indent=True)
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
        raise typer.Exit(FAILED)


@consent_app.command("verify")
def verify(
    business: Annotated[
        str | None, typer.Option("--business", help="Only this business (id or write key)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check every business's ledger hash chain; exit 1 naming the first bad record."""
    with state_store() as store:
        chosen = [business_id_of(store, business)] if business else service.businesses(store)
        results = [service.verify_ledger(store, business_id=b) for b in chosen]
    if as_json:
        echo_json([r.to_json() for r in results])
    else:
        for result in results:
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
        raise typer.Exit(FAILED)


@consent_app.command("proof")
def proof(
    subject: Annotated[str, typer.Argument(help="anonymousId, userId or a lead's email")],
    business: SomeBusiness = None,
    fmt: Annotated[str, typer.Option("--format", help="json or html")] = "json",
    out: Annotated[Path | None, typer.Option(help="Write to this file")] = None,
) -> None:
    """Export a subject's consent history with the texts shown, as JSON or an HTML page."""
    if fmt not in ("json", "html"):
        raise usage("--format is json or html")
    with state_store() as store:
        business_id = _business_id(store, business)
        document = service.proof_of(
            store, business_id=business_id, subject=subject, html=fmt == "html"
        )
        if document is None and "@" in subject:
            # A lead's consent is in the ledger under the anonymous id its form gave it.
            with store.read() as conn:
                found = anonymous_ids_of_email(conn, business_id=business_id, email=subject)
            for anonymous_id in found:
                document = service.proof_of(
                    store, business_id=business_id, subject=anonymous_id, html=fmt == "html"
                )
                if document is not None:
                    break
    if document is None:
        raise fail(f"no consent record of {subject!r}")
    if out is not None:
        out.write_text(document, encoding="utf-8")
    else:
        typer.echo(document)


@consent_app.command("export")
def export(
    purpose: Annotated[str, typer.Option(help="Purpose key, e.g. marketing")],
    business: SomeBusiness = None,
    out: Annotated[Path | None, typer.Option(help="Write the CSV here")] = None,
) -> None:
    """CSV of the identifiers whose current choice grants a purpose."""
    with state_store() as store:
        business_id = _business_id(store, business)
        lines = service.export_granted(store, business_id=business_id, purpose=purpose)
        with store.write() as conn:
            record_action(
                conn,
                business_id=business_id,
                actor=cli_actor("consent export"),
                action="consent.export",
                purpose=purpose,
                rows=len(lines) - 1,  # the header is the first line
            )
    if out is not None:
        out.write_text("".join(lines), encoding="utf-8")
    else:
        typer.echo("".join(lines), nl=False)


@consent_app.command("report")
def report(
    by: Annotated[
        str,
        typer.Option(
            help="purpose, notice_version, variant, country, device, day, regime, source or choice"
        ),
    ] = "purpose",
    business: SomeBusiness = None,
    as_json: AsJson = False,
) -> None:
    """Opt-in rate per purpose and a dimension, computed on the engine."""
    from accord.consent.analytics import DIMENSIONS

    if by not in DIMENSIONS:
        raise usage(f"--by is one of {', '.join(DIMENSIONS)}")
    settings = Settings()
    with state_store(settings) as store:
        business_id = _business_id(store, business)
        rows = service.opt_in_report(
            store, business_id=business_id, by=by, engine_url=settings.engine_url
        )
    if as_json:
        echo_json(rows)
        return
    keys = ["purpose"] if by == "purpose" else ["purpose", by]
    print_table(
        *keys,
        "decisions",
        "granted",
        "opt-in rate",
        rows=[
            (*(row[k] for k in keys), row["decisions"], row["granted"], f"{row['opt_in_rate']:.1%}")
            for row in rows
        ],
    )
