"""CSV files Accord writes: one writer, every cell safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Plain numbers (a negative lift, an E.164 phone) start with - or + yet are no formula.
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")

Row = Sequence[Any] | Mapping[str, Any]


def safe_cell(value: Any) -> str:
    """The cell as text, with a leading `'` when a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_lines(
    columns: Sequence[str], rows: Iterable[Row], *, delimiter: str = ","
) -> Iterator[str]:
    """CSV text line by line (header first), for streaming responses.

    A row is a sequence in column order or a mapping by column name (missing keys are empty).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")

    def line(cells: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([safe_cell(cell) for cell in cells])
        return buffer.getvalue()

    yield line(columns)
    for row in rows:
        yield line([row.get(c) for c in columns] if isinstance(row, Mapping) else row)


def csv_text(columns: Sequence[str], rows: Iterable[Row], *, delimiter: str = ",") -> str:
    """The whole CSV file as text."""
    return "".join(csv_lines(columns, rows, delimiter=delimiter))
