"""Connections to the state store: SQLite (WAL, immediate write locks) or PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import cycle, repeat
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import Insert

from accord.core.errors import FieldProblem, InvalidInput

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Let people write postgresql:// and still get the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def ensure_sqlite_folder(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)


_NUL = "\x00"
# Bind names get a number when one statement binds a column twice ("key_1"), and each
# row's number in an insert of many rows batched into one statement ("key__3").
_BIND_SUFFIX = re.compile(r"__?\d+$")


def _bound_rows(parameters: Any, executemany: bool) -> Iterable[Any]:
    """The rows of values bound to one cursor call.

    `executemany` is not enough to tell: an insert of many rows sent as one multi-row
    statement ("insertmanyvalues") arrives with it set, yet as one row, a dict of
    numbered names on PostgreSQL, one flat tuple of every row's values on SQLite."""
    if isinstance(parameters, Mapping):
        return (parameters,)
    if executemany and all(isinstance(row, Mapping | list | tuple) for row in parameters):
        return parameters  # type: ignore[no-any-return]
    return (parameters,)


def _refuse_nul(
    _conn: Connection,
    _cursor: Any,
    _statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    """Refuse text holding a NUL character before it reaches the database, naming the column.

    PostgreSQL cannot store NUL in text (its driver raises, which was a 500) and SQLite
    would keep it, so one rule for both: every value bound to a statement, whichever
    route, page or command sent it, is checked here, the one door to the store."""
    compiled = getattr(context, "compiled", None)
    names = getattr(compiled, "positiontup", None)
    for row in _bound_rows(parameters, executemany):
        if isinstance(row, Mapping):
            pairs: Iterable[tuple[Any, Any]] = row.items()
        else:
            # A flat batch holds several rows' values in bind order, so the names repeat.
            pairs = zip(cycle(names) if names else repeat("value"), row or (), strict=False)
        for name, value in pairs:
            if isinstance(value, str) and _NUL in value:
                field = _BIND_SUFFIX.sub("", str(name).removeprefix("param_")) or "value"
                raise InvalidInput([FieldProblem(field, "must not contain the NUL character")])


def _guarded(engine: Engine) -> Engine:
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def _sqlite_engine(
    url: str, *, synchronous: str, immediate: bool, busy_timeout_ms: int = 60_000
) -> Engine:
    ensure_sqlite_folder(url)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY
        # without waiting; taking the write lock up front makes writers queue.
        # Straight to the driver: through SQLAlchemy's statement machinery this cost
        # about a tenth of a single collection call's CPU.
        # The driver's own error is raised as SQLAlchemy's, as a statement's would be:
        # callers (the group commit's retry while locked, the full-disk answer) read it.
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(statement)
        except sqlite3.Error as exc:
            raise OperationalError(statement, None, exc) from exc
        finally:
            cursor.close()

    return _guarded(engine)


@dataclass
class Store:
    """The state store: a writer engine and a reader engine (the same on PostgreSQL)."""

    url: str
    writer: Engine
    reader: Engine
    # On SQLite, a writer that fails at once when the lock is taken, for callers that
    # retry on their own with short waits (SQLite's own waits grow to 100 ms).
    eager_writer: Engine | None = None

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.writer.begin() as conn:
            yield conn

    def write_soon(self, work: Callable[[Connection], T], *, timeout: float = 60.0) -> T:
        """Run `work` in a write transaction, retrying every half millisecond while locked.

        A waiter that polls this often starts within a millisecond of the lock's release,
        where SQLite's busy handler may still be asleep for tens of milliseconds.
        """
        if self.eager_writer is None:
            with self.write() as conn:
                return work(conn)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.eager_writer.begin() as conn:
                    return work(conn)
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.connect() as conn:
            yield conn

    def insert_ignoring_conflicts(self, table: Table) -> Insert:
        """An INSERT that silently skips rows violating a unique constraint."""
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    def dispose(self) -> None:
        if self.eager_writer is not None:
            self.eager_writer.dispose()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def open_store(url: str, *, sqlite_synchronous: str = "FULL") -> Store:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        writer = _sqlite_engine(url, synchronous=sqlite_synchronous, immediate=True)
        reader = _sqlite_engine(url, synchronous=sqlite_synchronous, immediate=False)
        eager = _sqlite_engine(
            url, synchronous=sqlite_synchronous, immediate=True, busy_timeout_ms=0
        )
        return Store(url=url, writer=writer, reader=reader, eager_writer=eager)
    engine = _guarded(create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True))
    return Store(url=url, writer=engine, reader=engine)
