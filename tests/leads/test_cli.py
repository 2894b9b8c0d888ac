"""`accord leads import` on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from accord.accounts.models import Bootstrap
from tests.test_cli import Cli

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def test_lead_ads_import_reports_rejected_rows(cli: Cli, keys: Bootstrap, tmp_path: Path) -> None:
    errors = tmp_path / "rejected.jsonl"
    result = cli(
        "leads",
        "import",
        str(FIXTURES / "lead_ads_utf8_bom.csv"),
        "--business",
        keys.write_key,
        "--spend",
        "120",
        "--errors",
        str(errors),
        code=1,
    )
    assert "line 4: email" in result.output and "line 5: phone" in result.output
    rejected = [orjson.loads(line) for line in errors.read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(4, "email"), (5, "phone")]
    mapped = tmp_path / "crm.csv"
    mapped.write_text("Mail;x\nAda@Example.com,ok\n".replace(";", ","), encoding="utf-8")
    cli(
        "leads",
        "import",
        str(mapped),
        "--business",
        keys.write_key,
        "--mapping",
        '{"email": "Mail"}',
    )
    cli("leads", "import", str(mapped), "--business", "wk_nope", code=2)
