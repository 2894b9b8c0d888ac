"""`accord import`: Segment-shaped events from a file, or any CSV through a column mapping,
checked row by row, stored once."""

from __future__ import annotations

import io
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import orjson
import typer

from accord.accounts.models import SourceRef
from accord.cli_common import (
    FAILED,
    Business,
    console,
    print_table,
    progress,
    report_rejected,
    source_of,
    state_store,
    usage,
)
from accord.collect import mapped
from accord.collect.importer import RawRow, read_events
from accord.collect.mapping import Mapping, check_columns, fit_preset, parse_mapping
from accord.collect.service import ImportReport, import_rows, limits_from
from accord.consent.gate import LedgerGate
from accord.consent.imports import ledger_recorder
from accord.core.errors import InvalidInput, NotFound
from accord.core.settings import Settings
from accord.process.cli import drain_with_progress
from accord.store.db import Store


def import_events(
    store: Store,
    settings: Settings,
    source: SourceRef,
    rows: Iterable[RawRow],
    total: int | None,
    label: str,
) -> ImportReport:
    """Import rows as events of a source, with a progress bar."""
    with progress() as bar:
        task = bar.add_task(label, total=total)
        return import_rows(
            store,
            source=source,
            rows=rows,
            gate=LedgerGate(store=store),
            limits=limits_from(settings),
            on_progress=lambda n: bar.advance(task, n),
        )


def import_file(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl/.ndjson/.csv (.gz)")
    ],
    business: Business,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by name)")
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option(help="Write rejected rows here: JSON Lines, or CSV with a mapping"),
    ] = None,
    process: Annotated[bool, typer.Option(help="Process the inbox after importing")] = True,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping", exists=True, dir_okay=False, help="A column mapping (.json or .toml)"
        ),
    ] = None,
    saved: Annotated[
        str | None, typer.Option("--saved", help="A mapping saved on the Imports page")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="crm_contacts, ecommerce_orders or pos_receipts, fitted to the file"),
    ] = None,
) -> None:
    """Import Segment-shaped events; bad rows are reported, good rows are stored exactly once.

    The events come from the source whose write key is given as --business; given a
    business id, from the business's own `import` source. With --mapping, --saved or
    --preset, any CSV file: each row (or receipt) becomes the identify or track call the
    mapping describes, and the rejected rows go to a CSV report (row, field, reason).
    """
    settings = Settings()
    if sum(x is not None for x in (mapping, saved, preset)) > 1:
        raise usage("give one of --mapping, --saved and --preset")
    if mapping is not None or saved is not None or preset is not None:
        import_with_mapping(path, business, settings, mapping, saved, preset, errors, process)
        return
    with path.open("rb") as handle:
        total = sum(1 for _ in handle) if not path.name.endswith(".gz") else None
    if total is not None and (fmt == "csv" or path.name.endswith(".csv")):
        total -= 1
    with state_store(settings) as store:
        source = source_of(store, business)
        summary = import_events(store, settings, source, read_events(path, fmt), total, "importing")
        if process:
            drain_with_progress(store, settings)
    rejected = summary.rejected
    print_table(
        "read",
        "stored",
        "duplicates",
        "dropped by consent",
        "anonymised by consent",
        "rejected rows",
        rows=[
            (
                summary.read,
                summary.stored,
                summary.duplicates,
                summary.dropped_by_consent,
                summary.anonymised_by_consent,
                len({r["line"] for r in rejected}),
            )
        ],
        err=True,
    )
    report_rejected(rejected, errors)
    if rejected:
        raise typer.Exit(FAILED)


def _mapping_file(path: Path) -> Mapping:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else orjson.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, orjson.JSONDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise usage(f"--mapping: {path} is not valid {kind}: {exc}") from None
    try:
        return parse_mapping(data)
    except InvalidInput as exc:
        raise usage(f"--mapping: {exc}") from None


def import_with_mapping(
    path: Path,
    business: str,
    settings: Settings,
    mapping_path: Path | None,
    saved: str | None,
    preset: str | None,
    errors: Path | None,
    process: bool,
) -> None:
    """`accord import --mapping|--saved|--preset`: a CSV through a column mapping."""
    chosen = _mapping_file(mapping_path) if mapping_path is not None else None
    with path.open("rb") as raw:
        head = raw.read(4)
    opened = path.open("rb")
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    with io.TextIOWrapper(opened, encoding=encoding, newline="") as text:
        try:
            csv_file = mapped.read_csv(text)
        except (InvalidInput, UnicodeDecodeError) as exc:
            raise usage(f"{path}: {exc}") from None
        with state_store(settings) as store:
            source = source_of(store, business)
            if saved is not None:
                try:
                    with store.read() as conn:
                        chosen = mapped.saved_mapping(
                            conn, business_id=source.business_id, name=saved
                        )
                except NotFound as exc:
                    raise usage(f"--saved: {exc}") from None
            try:
                if preset is not None:
                    chosen = fit_preset(preset, csv_file.header)
                assert chosen is not None
                check_columns(chosen, csv_file.header)
            except InvalidInput as exc:
                raise usage(f"mapping: {exc}") from None
            with progress() as bar:
                task = bar.add_task("importing", total=None)
                report = mapped.import_mapped(
                    store,
                    source=source,
                    rows=csv_file.rows,
                    mapping=chosen,
                    gate=LedgerGate(store=store),
                    limits=limits_from(settings),
                    record_consents=ledger_recorder(
                        store, business_id=source.business_id, filename=path.name
                    ),
                    on_progress=lambda n: bar.advance(task, n),
                )
            with store.write() as conn:
                mapped.save_report(
                    conn,
                    business_id=source.business_id,
                    filename=path.name,
                    mapping_name=saved or preset or (mapping_path.name if mapping_path else ""),
                    report=report,
                )
            if process:
                drain_with_progress(store, settings)
    print_table(
        "rows read",
        "events",
        "accepted",
        "stored now",
        "dropped by consent",
        "consents recorded",
        "rejected rows",
        rows=[
            (
                report.rows_read,
                report.events_read,
                report.accepted,
                report.stored,
                report.dropped_by_consent,
                report.consents_recorded,
                report.rejected_rows,
            )
        ],
        err=True,
    )
    if report.rejected:
        target = errors or path.with_name(path.name + ".rejected.csv")
        target.write_text(mapped.rejected_csv(report.rejected), encoding="utf-8")
        for problem in report.rejected[:20]:
            console.print(f"row {problem['row']}: {problem['field']}: {problem['reason']}")
        console.print(f"the rejected rows are in {target}")
        raise typer.Exit(FAILED)
