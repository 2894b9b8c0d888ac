"""What every `accord` command shares: the state store, `--business`, exit codes, output."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from accord.accounts.models import SourceRef
from accord.accounts.service import get_business, internal_source, source_for_write_key
from accord.core.errors import AccordError, NotFound, UnknownWriteKey
from accord.core.settings import Settings
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

# The exit codes of every command besides 0 (docs/cli.md). Click exits with USAGE on its
# own for unknown options and bad values; a command exits with it when it cannot start.
FAILED = 1  # the command ran and the answer is no: a domain error, rejected rows, a failed check
USAGE = 2  # the command could not run as asked: bad arguments, unknown business, missing setup

# Messages and tables for people go to stderr; stdout carries what scripts read.
console = Console(stderr=True)

Business = Annotated[
    str,
    typer.Option("--business", help="The business: its id, or a write key of one of its sources"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]
Engine = Annotated[str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")]

# Spellings of `--business` before it was one option everywhere; still accepted, not shown.
_OLD_OPTION_NAMES = {"business-id": "business", "write-key": "business"}


def old_option_names(name: str) -> str:
    """Click's `token_normalize_func`: reads an old option name as today's."""
    return _OLD_OPTION_NAMES.get(name, name)


def fail(message: str, *, code: int = FAILED) -> typer.Exit:
    """Print `error: message` and give the exit to raise."""
    # Not markup: a message may quote brackets; not wrapped: scripts grep it.
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


def usage(message: str) -> typer.Exit:
    return fail(message, code=USAGE)


@contextmanager
def state_store(settings: Settings | None = None) -> Iterator[Store]:
    """The state store, its schema brought up to date; a domain error inside exits FAILED."""
    settings = settings or Settings()
    url = settings.resolved_database_url()
    upgrade(url)
    store = open_store(url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        yield store
    except AccordError as exc:
        raise fail(str(exc)) from None
    finally:
        store.dispose()


@contextmanager
def business_store(business: str, settings: Settings | None = None) -> Iterator[tuple[Store, str]]:
    """`state_store()` with the id of the business `--business` names."""
    with state_store(settings) as store:
        yield store, business_id_of(store, business)


def business_id_of(store: Store, business: str) -> str:
    """The business named by its id or by a write key of one of its sources."""
    try:
        with store.read() as conn:
            return get_business(conn, business_id=business).id
    except NotFound:
        pass
    try:
        return source_for_write_key(store, business).business_id
    except UnknownWriteKey:
        raise usage(
            "--business: no business has that id, and no enabled source has that write key"
        ) from None


def some_business_id(store: Store, business: str | None) -> str | None:
    """The business an optional `--business` names, or None when it is left out."""
    return None if business is None else business_id_of(store, business)


def source_of(store: Store, business: str) -> SourceRef:
    """The source imported events come from: the one a write key names, or else the
    business's own `import` source (created on first use)."""
    try:
        return source_for_write_key(store, business)
    except UnknownWriteKey:
        business_id = business_id_of(store, business)
    with store.write() as conn:
        return internal_source(conn, business_id=business_id, kind="import", name="import")


def echo_json(value: Any, *, indent: bool = False) -> None:
    """Print a value (models, dataclasses, dates included) as JSON on stdout."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    typer.echo(orjson.dumps(value, default=_plain, option=option).decode())


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def print_table(
    *columns: str, rows: Sequence[Sequence[object]], title: str | None = None, err: bool = False
) -> None:
    """A table on stdout (a summary for people on stderr with `err`); None is an empty cell."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    # A console made now reads the terminal's width now (`COLUMNS` included), where the
    # module's console keeps the width it saw when it was made.
    Console(stderr=err).print(table)


def report_rejected(rejected: Sequence[dict[str, Any]], errors: Path | None) -> None:
    """Write the rejected rows to `errors` (JSON Lines) and name the first twenty."""
    if errors is not None:
        errors.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rejected))
    for problem in rejected[:20]:
        console.print(f"line {problem['line']}: {problem['field']}: {problem['reason']}")
    if len(rejected) > 20:
        console.print(f"… {len(rejected) - 20} more" + (f" in {errors}" if errors else ""))


def progress() -> Progress:
    """A progress bar on stderr for long work."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or Ctrl-C, for the loops that run until told to stop."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    return stopping
