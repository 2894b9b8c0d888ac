"""Mapped CSV imports: read a file's rows, map them (`mapping.py`), check them as collection
does, record the consent they state, store the events once; saved mappings and reports."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, Any

import orjson
from sqlalchemy import Connection, delete, select, update

from accord.accounts.models import SourceRef
from accord.collect.consent_gate import ConsentGate
from accord.collect.mapping import ConsentRow, Mapped, Mapping, map_rows, parse_mapping
from accord.collect.models import event_imports, import_mappings, import_uploads
from accord.collect.service import append
from accord.collect.validation import EventProblems, Limits, normalise_event
from accord.core.clock import utcnow
from accord.core.csvfile import csv_text
from accord.core.errors import FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.store.db import Store

# Records the consent decisions a chunk of rows states; per decision True (recorded),
# False (already in the ledger from an earlier import) or the problem that refused it.
ConsentRecorder = Callable[[Sequence[ConsentRow]], list[bool | FieldProblem]]
PREVIEW_ROWS = 10
UPLOAD_HOURS = 24
MAPPING_NAME_MAX = 100
REPORT_ROWS_KEPT = 10_000


# --- Reading ---------------------------------------------------------------------------


def decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with its BOM, as spreadsheets save CSV."""
    encoding = "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            [FieldProblem("file", f"is not UTF-8 or UTF-16 text (byte {exc.start})")]
        ) from None


@dataclass
class CsvFile:
    header: list[str]
    rows: Iterator[tuple[int, dict[str, str]]]


def read_csv(handle: IO[str]) -> CsvFile:
    """The header and the numbered rows (the header is row 1) of CSV text; the delimiter
    (comma, semicolon or tab) is the one the header uses most."""
    first = handle.readline()
    if not first.strip():
        raise InvalidInput([FieldProblem("file", "is empty: the first row must name the columns")])
    delimiter = max((",", ";", "\t"), key=first.count)
    rest = csv.reader(io.StringIO(first), delimiter=delimiter)
    header = [name.strip() for name in next(rest)]
    if len(set(header)) != len(header) or not all(header):
        raise InvalidInput([FieldProblem("file", "the header row has empty or repeated names")])
    reader = csv.reader(handle, delimiter=delimiter)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        line = 1
        for cells in reader:
            line += 1
            if not any(c.strip() for c in cells):
                continue
            yield line, dict(zip(header, cells, strict=False))

    return CsvFile(header=header, rows=rows())


def read_csv_bytes(raw: bytes) -> CsvFile:
    return read_csv(io.StringIO(decode(raw), newline=""))


# --- Checking and storing --------------------------------------------------------------


@dataclass
class MappedReport:
    rows_read: int = 0
    events_read: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped_by_consent: int = 0
    consents_recorded: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Events that passed every check: stored now, or stored by an earlier import."""
        return self.stored + self.duplicates

    @property
    def rejected_rows(self) -> int:
        return len({r["row"] for r in self.rejected})


def _reject(report: MappedReport, mapped: Mapped, problems: Iterable[FieldProblem]) -> None:
    for problem in problems:
        report.rejected.append(
            {"row": mapped.line, "field": problem.field, "reason": problem.reason}
        )


def checked(mapped: Mapped, limits: Limits) -> Mapped:
    """The mapped event as collection stores it, or the collection's problems with it."""
    if mapped.event is None:
        return mapped
    try:
        event = normalise_event(
            mapped.event,
            path="",
            implied_type=None,
            received_at=utcnow(),
            batch_sent_at=None,
            limits=limits,
        )
    except EventProblems as exc:
        return Mapped(line=mapped.line, event=None, problems=exc.problems, lines=mapped.lines)
    return Mapped(line=mapped.line, event=event, consent=mapped.consent, lines=mapped.lines)


def preview(
    rows: Iterable[tuple[int, dict[str, str]]], mapping: Mapping, limits: Limits
) -> list[Mapped]:
    """The first events of a file as they would be stored, and the rows that would not be."""
    out: list[Mapped] = []
    for mapped in map_rows(rows, mapping):
        out.append(checked(mapped, limits))
        if len(out) >= PREVIEW_ROWS:
            break
    return out


def import_mapped(
    store: Store,
    *,
    source: SourceRef,
    rows: Iterable[tuple[int, dict[str, str]]],
    mapping: Mapping,
    gate: ConsentGate,
    limits: Limits,
    record_consents: ConsentRecorder,
    chunk_size: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> MappedReport:
    """Import a file's rows through collection: each event checked on its own, the
    consent its row states recorded first (so the gate sees it), then the consent gate
    and the inbox, where a messageId already stored is skipped. A row whose consent is
    refused is rejected whole: nothing of it is stored."""
    report = MappedReport()
    counted: set[int] = set()
    chunk: list[Mapped] = []

    def flush() -> None:
        consents = [m for m in chunk if m.consent is not None]
        outcomes = record_consents([m.consent for m in consents if m.consent]) if consents else []
        refused: set[int] = set()
        for mapped, outcome in zip(consents, outcomes, strict=True):
            if isinstance(outcome, FieldProblem):
                _reject(report, mapped, [outcome])
                refused.add(id(mapped))
            elif outcome:
                report.consents_recorded += 1
        events = [m.event for m in chunk if m.event is not None and id(m) not in refused]
        if events:
            accepted = append(store, source=source, events=events, gate=gate, received_at=utcnow())
            report.stored += accepted.stored
            report.dropped_by_consent += accepted.dropped_by_consent
            report.duplicates += accepted.received - accepted.dropped_by_consent - accepted.stored
        if on_progress is not None:
            on_progress(len(chunk))
        chunk.clear()

    def numbered() -> Iterator[tuple[int, dict[str, str]]]:
        for line, record in rows:
            counted.add(line)
            yield line, record

    for mapped in map_rows(numbered(), mapping):
        report.events_read += 1
        mapped = checked(mapped, limits)
        if mapped.event is None:
            _reject(report, mapped, mapped.problems)
            continue
        chunk.append(mapped)
        if len(chunk) >= chunk_size:
            flush()
    flush()
    report.rows_read = len(counted)
    report.rejected.sort(key=lambda r: r["row"])
    return report


def rejected_csv(rejected: Iterable[dict[str, Any]]) -> str:
    """The rejected-rows report as CSV: row, field, reason."""
    return csv_text(("row", "field", "reason"), rejected)


# --- Saved mappings --------------------------------------------------------------------


def save_mapping(conn: Connection, *, business_id: str, name: str, mapping: Mapping) -> None:
    """Save a mapping under a name; saving a name again replaces it."""
    name = name.strip()
    if not name or len(name) > MAPPING_NAME_MAX:
        reason = f"give the mapping a name of 1 to {MAPPING_NAME_MAX} characters"
        raise InvalidInput([FieldProblem("name", reason)])
    spec = mapping.model_dump_json(exclude_defaults=True)
    now = utcnow()
    found = conn.execute(
        select(import_mappings.c.id).where(
            import_mappings.c.business_id == business_id, import_mappings.c.name == name
        )
    ).scalar()
    if found is None:
        conn.execute(
            import_mappings.insert().values(
                id=new_id("map"),
                business_id=business_id,
                name=name,
                spec=spec,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        conn.execute(
            update(import_mappings)
            .where(import_mappings.c.id == found)
            .values(spec=spec, updated_at=now)
        )


def saved_mappings(conn: Connection, *, business_id: str) -> dict[str, Mapping]:
    rows = conn.execute(
        select(import_mappings.c.name, import_mappings.c.spec)
        .where(import_mappings.c.business_id == business_id)
        .order_by(import_mappings.c.name)
    ).all()
    return {row.name: Mapping.model_validate_json(row.spec) for row in rows}


def saved_mapping(conn: Connection, *, business_id: str, name: str) -> Mapping:
    spec = conn.execute(
        select(import_mappings.c.spec).where(
            import_mappings.c.business_id == business_id, import_mappings.c.name == name
        )
    ).scalar()
    if spec is None:
        raise NotFound(f"saved mapping {name!r}")
    return parse_mapping(orjson.loads(spec))


def delete_mapping(conn: Connection, *, business_id: str, name: str) -> None:
    result = conn.execute(
        delete(import_mappings).where(
            import_mappings.c.business_id == business_id, import_mappings.c.name == name
        )
    )
    if not result.rowcount:
        raise NotFound(f"saved mapping {name!r}")


# --- Uploads between preview and import ------------------------------------------------


def stage_upload(conn: Connection, *, business_id: str, filename: str, content: bytes) -> str:
    """Keep an uploaded file until it is imported (a day at most)."""
    now = utcnow()
    conn.execute(
        delete(import_uploads).where(
            import_uploads.c.created_at < now - timedelta(hours=UPLOAD_HOURS)
        )
    )
    upload_id = new_id("upl")
    conn.execute(
        import_uploads.insert().values(
            id=upload_id,
            business_id=business_id,
            filename=filename[:255],
            content=content,
            created_at=now,
        )
    )
    return upload_id


def staged_upload(conn: Connection, *, business_id: str, upload_id: str) -> tuple[str, bytes]:
    row = conn.execute(
        select(import_uploads.c.filename, import_uploads.c.content).where(
            import_uploads.c.business_id == business_id, import_uploads.c.id == upload_id
        )
    ).first()
    if row is None:
        raise NotFound("uploaded file (uploads are kept a day; upload it again)")
    return row.filename, bytes(row.content)


def drop_upload(conn: Connection, *, business_id: str, upload_id: str) -> None:
    conn.execute(
        delete(import_uploads).where(
            import_uploads.c.business_id == business_id, import_uploads.c.id == upload_id
        )
    )


# --- Reports ---------------------------------------------------------------------------


def save_report(
    conn: Connection, *, business_id: str, filename: str, mapping_name: str, report: MappedReport
) -> str:
    report_id = new_id("imp")
    conn.execute(
        event_imports.insert().values(
            id=report_id,
            business_id=business_id,
            filename=filename[:255],
            mapping=mapping_name[:100],
            rows_read=report.rows_read,
            events_read=report.events_read,
            stored=report.stored,
            duplicates=report.duplicates,
            dropped_by_consent=report.dropped_by_consent,
            consents_recorded=report.consents_recorded,
            rejected=orjson.dumps(report.rejected[:REPORT_ROWS_KEPT]).decode(),
            created_at=utcnow(),
        )
    )
    return report_id


def _report_of(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    out["rejected"] = orjson.loads(row.rejected)
    out["rejected_rows"] = len({r["row"] for r in out["rejected"]})
    out["accepted"] = row.stored + row.duplicates
    return out


def get_report(conn: Connection, *, business_id: str, report_id: str) -> dict[str, Any]:
    row = conn.execute(
        select(event_imports).where(
            event_imports.c.business_id == business_id, event_imports.c.id == report_id
        )
    ).first()
    if row is None:
        raise NotFound("import")
    return _report_of(row)


def list_reports(conn: Connection, *, business_id: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(event_imports)
        .where(event_imports.c.business_id == business_id)
        .order_by(event_imports.c.created_at.desc())
        .limit(limit)
    ).all()
    return [_report_of(row) for row in rows]
