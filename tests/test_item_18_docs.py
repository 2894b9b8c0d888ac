"""Issue 19, item 18: the docs say what the code does (settings, defaults, exit codes, help)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli import app
from accord.cli_common import FAILED, USAGE
from accord.consent import scanner
from accord.core.settings import Settings
from tests.test_cli import Cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def _doc(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_item_18_every_variable_in_the_email_docs_is_a_setting() -> None:
    email = _doc("docs/email.md")
    named = set(re.findall(r"`ACCORD_([A-Z_]+)`", email))
    assert "SECRET_KEY" in named and "SIGNING_KEY" not in named
    unknown = {name for name in named if name.lower() not in Settings.model_fields}
    assert not unknown, unknown
    assert "<data dir>/secret.key" in email


def test_item_18_the_smtp_default_in_the_docs_is_the_code_default() -> None:
    row = next(line for line in _doc("docs/email.md").splitlines() if "`ACCORD_SMTP_HOST`" in line)
    default = row.split("|")[2].strip()
    assert Settings.model_fields["smtp_host"].default is None
    assert default.startswith("unset"), row


def test_item_18_readme_names_the_port_setting() -> None:
    readme = _doc("README.md")
    assert "ACCORD_PORT" in readme
    assert f"127.0.0.1:{Settings.model_fields['port'].default}" in readme


def test_item_18_serve_help_ends_its_sentences() -> None:
    shown = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).stdout
    assert "Run the worker process beside the server: inbox, journeys, jobs" in shown
    assert "beside  " not in shown and not re.search(r"beside\s*\[default", shown)


def test_item_18_scan_errors_keep_their_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise scanner.ScanFailed("the cookie scanner needs Playwright: install accord[scan]")

    monkeypatch.setattr(scanner, "scan", broken)
    result = CliRunner().invoke(
        app, ["consent", "scan", "https://shop.example"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == USAGE
    assert "install accord[scan]" in result.output


def test_item_18_import_exit_codes_are_the_documented_ones(cli: Cli, tmp_path: Path) -> None:
    text = _doc("docs/import.md")
    assert "`0` when no row was rejected and `1` otherwise" in text
    assert "ends the command with status `2`" in text
    keys = cli.json("bootstrap", "--json")
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "track", "userId": "u1", "event": "E"}\n{"type": "track"}\n')
    cli("import", str(path), "--business", keys["write_key"], code=FAILED)
    path.write_text('{"type": "track", "userId": "u1", "event": "E2"}\n')
    cli("import", str(path), "--business", keys["write_key"], code=0)
    cli("import", str(path), "--business", "wk_nobody", code=USAGE)
