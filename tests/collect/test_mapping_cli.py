"""`accord import --mapping|--saved|--preset` on SQLite and PostgreSQL: counts, the
rejected-rows CSV, exit codes, idempotent re-imports, consent from a CRM file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.cli_common import FAILED, USAGE
from accord.collect import mapped
from accord.collect.mapping import parse_mapping
from accord.consent.models import consent_records
from accord.store.db import Store
from tests.test_cli import Cli

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


ORDERS = (
    "id;who;mail;sum;when\n"
    "o-1;u-1;ada@example.com;42,50;01/10/2026 09:05\n"
    "o-2;u-2;bob@example.com;10;02/10/2026 09:05\n"
    "o-3;;;7;03/10/2026 09:05\n"
)
MAPPING = {
    "call": "track",
    "event": "Order Completed",
    "user_id": "who",
    "email": "mail",
    "message_id": "id",
    "properties": {"order_id": "id", "total": "sum"},
    "timestamp": "when",
    "timestamp_format": "%d/%m/%Y %H:%M",
    "timezone": "Europe/Rome",
}


def test_a_json_mapping_imports_once_and_reports_rejected_rows(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    cli = Cli(tmp_path, database_url)
    data = tmp_path / "orders.csv"
    data.write_text(ORDERS)
    spec = tmp_path / "orders.json"
    spec.write_bytes(orjson.dumps(MAPPING))
    args = ("import", str(data), "--business", keys.business_id, "--mapping", str(spec))
    first = cli(*args, "--no-process", code=FAILED)
    assert "row 4: user_id:" in first.output
    report = data.with_name("orders.csv.rejected.csv").read_text()
    assert report.splitlines()[0] == "row,field,reason"
    assert report.splitlines()[1].startswith("4,user_id,")
    events = [orjson.loads(row.payload) for row in cli.inbox()]
    assert len(events) == 2
    ada = next(e for e in events if e["userId"] == "u-1")
    assert ada["timestamp"] == "2026-10-01T07:05:00.000Z"
    assert ada["properties"] == {"order_id": "o-1", "total": "42,50"}
    assert ada["context"]["traits"] == {"email": "ada@example.com"}

    errors = tmp_path / "rejected.csv"
    cli(*args, "--no-process", "--errors", str(errors), code=FAILED)
    assert errors.read_text() == report
    assert len(cli.inbox()) == 2  # nothing twice

    toml = tmp_path / "orders.toml"
    toml.write_text('call = "identify"\nuser_id = "who"\nemail = "mail"\n[traits]\norder = "id"\n')
    cli(
        "import",
        str(data),
        "--business",
        keys.business_id,
        "--mapping",
        str(toml),
        "--no-process",
        code=FAILED,
    )
    assert len(cli.inbox()) == 4  # two identify calls more


def test_a_bad_mapping_or_a_missing_column_cannot_run(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    cli = Cli(tmp_path, database_url)
    data = tmp_path / "orders.csv"
    data.write_text(ORDERS)
    spec = tmp_path / "bad.json"
    spec.write_bytes(orjson.dumps({**MAPPING, "event": None}))
    bad = cli(
        "import", str(data), "--business", keys.business_id, "--mapping", str(spec), code=USAGE
    )
    assert "event:" in bad.output
    spec.write_bytes(orjson.dumps({**MAPPING, "email": "Email"}))
    missing = cli(
        "import", str(data), "--business", keys.business_id, "--mapping", str(spec), code=USAGE
    )
    assert "email: the file has no column 'Email'" in missing.output
    unknown = cli(
        "import", str(data), "--business", keys.business_id, "--saved", "nope", code=USAGE
    )
    assert "saved mapping 'nope' not found" in unknown.output
    assert cli.inbox() == []


def test_a_saved_mapping_and_a_crm_preset_from_the_command_line(
    tmp_path: Path, database_url: str, keys: Bootstrap, store: Store
) -> None:
    with store.write() as conn:
        mapped.save_mapping(
            conn, business_id=keys.business_id, name="orders", mapping=parse_mapping(MAPPING)
        )
    cli = Cli(tmp_path, database_url)
    data = tmp_path / "orders.csv"
    data.write_text(ORDERS)
    cli(
        "import",
        str(data),
        "--business",
        keys.business_id,
        "--saved",
        "orders",
        "--no-process",
        code=FAILED,
    )
    assert len(cli.inbox()) == 2

    crm = tmp_path / "contacts.csv"
    crm.write_text(
        "Contact ID,Email,Email Opt-In,Opt-In Date\n"
        "c-1,ada@example.com,yes,2025-03-01\n"
        "c-2,bob@example.com,,\n"
    )
    done = cli(
        "import",
        str(crm),
        "--business",
        keys.business_id,
        "--preset",
        "crm_contacts",
        "--no-process",
    )
    assert "consents recorded" in done.output
    with store.read() as conn:
        records = conn.execute(select(consent_records)).all()
    assert [(r.user_id, r.source) for r in records] == [("c-1", "import")]
    assert orjson.loads(records[0].imported)["from"] == "CRM file (contacts.csv)"
    cli(
        "import",
        str(crm),
        "--business",
        keys.business_id,
        "--preset",
        "crm_contacts",
        "--no-process",
    )
    with store.read() as conn:
        assert len(conn.execute(select(consent_records)).all()) == 1
