"""`accord import`: Segment-shaped events from a file, checked row by row, stored once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from accord.accounts.models import SourceRef
from accord.cli_common import (
    FAILED,
    Business,
    print_table,
    progress,
    report_rejected,
    source_of,
    state_store,
)
from accord.collect.importer import RawRow, read_events
from accord.collect.service import ImportReport, import_rows, limits_from
from accord.consent.gate import LedgerGate
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
        Path | None, typer.Option(help="Write rejected rows here as JSON Lines")
    ] = None,
    process: Annotated[bool, typer.Option(help="Process the inbox after importing")] = True,
) -> None:
    """Import Segment-shaped events; bad rows are reported, good rows are stored exactly once.

    The events come from the source whose write key is given as --business; given a
    business id, from the business's own `import` source.
    """
    settings = Settings()
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
        "rejected rows",
        rows=[
            (summary.read, summary.stored, summary.duplicates, len({r["line"] for r in rejected}))
        ],
        err=True,
    )
    report_rejected(rejected, errors)
    if rejected:
        raise typer.Exit(FAILED)
