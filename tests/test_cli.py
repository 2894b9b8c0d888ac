"""The `accord` command on SQLite and PostgreSQL: bootstrap, import, demo, the volume report,
and what every command shares (`--business`, exit codes)."""

from __future__ import annotations

import ast
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from accord.accounts.cli import DEMO_BUSINESS
from accord.cli import app
from accord.cli_common import FAILED, USAGE
from accord.collect.models import inbox
from accord.core.clock import iso, utcnow
from accord.demo.generator import generate_n_events
from accord.lake.service import visible_files
from accord.store.db import open_store
from tests.conftest import opt_out_where_unknown

BOOTSTRAP_KEYS = {"business_id", "source_id", "write_key", "admin_token"}


class Cli:
    """Runs `accord …` in-process against one data folder and state store."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.runner = CliRunner()
        self.database_url = database_url
        self.lake = tmp_path / "lake"
        self.env = {
            "ACCORD_DATA_DIR": str(tmp_path / "data"),
            "ACCORD_DATABASE_URL": database_url,
            "ACCORD_LAKE_URL": str(self.lake),
            "ACCORD_ENGINE_URL": "duckdb://",
            "ACCORD_SQLITE_SYNCHRONOUS": "NORMAL",
            # Wide enough that rich prints whole ids in its tables.
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, list(args), env=self.env)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def opt_out_where_unknown(self, business_id: str) -> None:
        """Set the business's rule for unknown locations (there is no command for it)."""
        store = open_store(self.database_url)
        try:
            opt_out_where_unknown(store, business_id)
        finally:
            store.dispose()

    def inbox(self) -> list[Any]:
        store = open_store(self.database_url)
        try:
            with store.read() as conn:
                return list(conn.execute(select(inbox)).all())
        finally:
            store.dispose()

    def lake_ids(self) -> list[str]:
        if not self.lake.exists():
            return []
        files = visible_files(str(self.lake))
        if not files:
            return []
        rows = duckdb.read_parquet(files).select("message_id").fetchall()
        return sorted(r[0] for r in rows)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def test_bootstrap_prints_keys_and_is_idempotent(cli: Cli) -> None:
    first = cli.json("bootstrap", "--json")
    assert set(first) == BOOTSTRAP_KEYS
    assert first["write_key"].startswith("wk_")
    assert first["admin_token"].startswith("adm_")
    second = cli.json("bootstrap", "--json")
    assert {k: second[k] for k in ("business_id", "source_id", "write_key")} == {
        k: first[k] for k in ("business_id", "source_id", "write_key")
    }
    assert second["admin_token"] != first["admin_token"]


def test_bootstrap_names_the_business(cli: Cli) -> None:
    demo = cli.json("bootstrap", "--json")
    other = cli.json("bootstrap", "--name", "Corner Café", "--json")
    assert other["business_id"] != demo["business_id"]
    assert other["write_key"] != demo["write_key"]


def test_bootstrap_prints_plain_lines_without_json(cli: Cli) -> None:
    lines = cli("bootstrap").stdout.strip().splitlines()
    assert sorted(line.split(": ")[0] for line in lines) == sorted(BOOTSTRAP_KEYS)


def jsonl(events: list[Any]) -> str:
    return "".join((e if isinstance(e, str) else orjson.dumps(e).decode()) + "\n" for e in events)


def track(n: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"u{n % 2}",
        "messageId": f"cli-{n}",
        "timestamp": iso(utcnow() - timedelta(hours=n)),
        "properties": {"product_id": f"p-{n}"},
    }


def test_import_with_an_unknown_write_key_says_so(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([track(1)]))
    result = cli("import", str(path), "--business", "wk_nobody", code=USAGE)
    assert "no enabled source has that write key" in result.output
    assert "Traceback" not in result.output


def test_import_with_a_bad_line(cli: Cli, tmp_path: Path) -> None:
    keys = cli.json("bootstrap", "--json")
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([track(1), track(2), '{"type": "track",', track(4), track(5)]))
    errors = tmp_path / "rejected.jsonl"
    result = cli(
        "import", str(path), "--business", keys["write_key"], "--errors", str(errors), code=1
    )
    assert "line 3" in result.output
    rejected = [orjson.loads(line) for line in errors.read_text().splitlines()]
    assert len(rejected) == 1
    assert rejected[0]["line"] == 3
    assert rejected[0]["field"] == "line"
    assert rejected[0]["reason"].startswith("malformed JSON")
    # The good rows are stored, once, and processed into the lake.
    stored = cli.inbox()
    assert sorted(r.message_id for r in stored) == ["cli-1", "cli-2", "cli-4", "cli-5"]
    assert all(r.processed_at is not None for r in stored)
    assert all(r.business_id == keys["business_id"] for r in stored)
    assert cli.lake_ids() == ["cli-1", "cli-2", "cli-4", "cli-5"]
    report = cli.json("report", "volume", "--json")
    assert sum(r["events"] for r in report) == 4
    assert {(r["business_id"], r["source_id"], r["type"]) for r in report} == {
        (keys["business_id"], keys["source_id"], "track")
    }

    # Importing the file again stores nothing twice and still reports the bad line.
    cli("import", str(path), "--business", keys["write_key"], "--errors", str(errors), code=1)
    assert len(cli.inbox()) == 4
    assert cli.lake_ids() == ["cli-1", "cli-2", "cli-4", "cli-5"]
    assert [orjson.loads(line)["line"] for line in errors.read_text().splitlines()] == [3]


def test_import_of_a_clean_csv_exits_zero(cli: Cli, tmp_path: Path) -> None:
    keys = cli.json("bootstrap", "--json")
    # Imported rows carry no consent and no location; this business keeps them under the
    # opt-out regime, as its rule for unknown locations ("XX") says (item 19: the default
    # there is the strictest regime, which drops the identify below).
    cli.opt_out_where_unknown(keys["business_id"])
    when = iso(utcnow() - timedelta(days=2))
    path = tmp_path / "orders.csv"
    path.write_text(
        "type,event,userId,timestamp,properties.revenue,properties.order_id\n"
        f"track,Order Completed,u1,{when},19.99,o-1\n"
        f"track,Order Completed,u2,{when},5,o-2\n"
        f"identify,,u3,{when},,\n"
    )
    errors = tmp_path / "rejected.jsonl"
    cli("import", str(path), "--business", keys["write_key"], "--errors", str(errors))
    assert errors.read_text() == ""
    assert len(cli.inbox()) == 3
    assert len(cli.lake_ids()) == 3
    day = when[:10]
    assert cli.json("report", "volume", "--json") == [
        {
            "business_id": keys["business_id"],
            "day": day,
            "source_id": keys["source_id"],
            "type": "identify",
            "events": 1,
        },
        {
            "business_id": keys["business_id"],
            "day": day,
            "source_id": keys["source_id"],
            "type": "track",
            "events": 2,
        },
    ]
    # Rows without messageId are found again on a second import.
    cli("import", str(path), "--business", keys["write_key"])
    assert len(cli.inbox()) == 3


def test_import_without_processing_leaves_the_inbox_pending(cli: Cli, tmp_path: Path) -> None:
    keys = cli.json("bootstrap", "--json")
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl([track(1), track(2)]).encode()))
    cli("import", str(path), "--business", keys["write_key"], "--no-process")
    assert [r.processed_at for r in cli.inbox()] == [None, None]
    assert cli.lake_ids() == []
    assert cli.json("report", "volume", "--json") == []


def test_import_with_an_unknown_write_key_stores_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.json("bootstrap", "--json")
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([track(1)]))
    result = cli.runner.invoke(app, ["import", str(path), "--business", "wk_nope"], env=cli.env)
    assert result.exit_code != 0
    assert cli.inbox() == []


def _demo_kept(n_events: int) -> set[str]:
    """Message ids of the demo events the consent gate keeps: the generator's visitors
    who refused statistics have their identify, alias and group calls dropped (their
    tracks and pages stay as anonymous counts)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = generate_n_events(n_events, seed=42, start=today - timedelta(days=30), days=30)
    kept = set()
    for event in events:
        preferences = event.get("context", {}).get("consent", {}).get("categoryPreferences", {})
        refused = preferences.get("statistics") is False
        if not (refused and event["type"] in ("identify", "alias", "group")):
            kept.add(event["messageId"])
    return kept


def test_demo_is_idempotent_and_reported(cli: Cli) -> None:
    keys = cli.json("demo", "--events", "2000", "--json")
    kept = _demo_kept(2000)
    assert 1900 < len(kept) <= 2000
    assert set(keys) == BOOTSTRAP_KEYS | {"sign_in"}
    # Every generated event the consent gate keeps, plus what the demo's other areas add
    # through their own services (form and Lead Ads leads, email outcomes, journeys).
    stored = {row.message_id for row in cli.inbox()}
    assert kept <= stored
    assert set(cli.lake_ids()) == stored

    again = cli.json("demo", "--events", "2000", "--json")
    assert again["business_id"] == keys["business_id"]
    assert again["write_key"] == keys["write_key"]
    assert {row.message_id for row in cli.inbox()} == stored
    assert set(cli.lake_ids()) == stored

    report = cli.json("report", "volume", "--json")
    assert sum(r["events"] for r in report) == len(stored)
    assert {r["business_id"] for r in report} == {keys["business_id"]}
    assert all(r["events"] > 0 for r in report)
    days = sorted({r["day"] for r in report})
    assert len(days) > 1
    assert {r["type"] for r in report} <= {"track", "identify", "page", "screen", "group", "alias"}
    only = cli.json("report", "volume", "--business", keys["business_id"], "--json")
    assert only == report
    assert cli.json("report", "volume", "--business", keys["write_key"], "--json") == report
    cli("report", "volume", "--business", "biz_other", "--json", code=USAGE)
    # The demo business is the one `bootstrap` finds by its default name.
    assert (
        cli.json("bootstrap", "--name", DEMO_BUSINESS, "--json")["business_id"]
        == (keys["business_id"])
    )


def test_report_volume_table(cli: Cli, tmp_path: Path) -> None:
    keys = cli.json("bootstrap", "--json")
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([track(1)]))
    cli("import", str(path), "--business", keys["write_key"])
    output = cli("report", "volume").stdout
    assert keys["source_id"] in output
    assert "track" in output


def test_report_volume_on_an_empty_lake(cli: Cli) -> None:
    assert cli.json("report", "volume", "--json") == []


def test_import_under_a_business_id_comes_from_its_import_source(cli: Cli, tmp_path: Path) -> None:
    keys = cli.json("bootstrap", "--json")
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl([track(1)]))
    cli("import", str(path), "--business", keys["business_id"])
    (row,) = cli.inbox()
    assert row.business_id == keys["business_id"] and row.source_id != keys["source_id"]
    cli("import", str(path), "--business", keys["business_id"])
    assert len(cli.inbox()) == 1


def test_business_is_an_id_or_a_write_key_and_the_old_spellings_still_work(cli: Cli) -> None:
    keys = cli.json("bootstrap", "--json")
    by_id = cli.json("identity", "rules", "--business", keys["business_id"])
    assert cli.json("identity", "rules", "--business", keys["write_key"]) == by_id
    assert cli.json("identity", "rules", "--business-id", keys["business_id"]) == by_id
    assert cli.json("identity", "rules", "--write-key", keys["write_key"]) == by_id
    shown = cli("identity", "rules", "--help").stdout
    assert "--business" in shown and "--business-id" not in shown and "--write-key" not in shown


def test_exit_codes_follow_one_convention(cli: Cli) -> None:
    """0 done; 1 the command ran and the answer is no; 2 it could not run as asked."""
    keys = cli.json("bootstrap", "--json")
    business = ["--business", keys["business_id"]]
    cli("identity", "review", "list", *business)
    cli("identity", "rules", "--no-such-option", code=USAGE)
    cli("identity", "rules", code=USAGE)  # --business is required
    unknown = cli("identity", "rules", "--business", "biz_nobody", code=USAGE)
    assert "error: --business: no business has that id" in unknown.output
    refused = cli("identity", "review", "accept", "rev_nobody", *business, code=FAILED)
    assert refused.output.startswith("error: ") and "Traceback" not in refused.output


SRC = Path(__file__).resolve().parents[1] / "src" / "accord"


def test_commands_exit_only_with_the_conventions_codes() -> None:
    """Every `typer.Exit` in a command module says FAILED or USAGE by name (0 is a return)."""
    wrong = []
    for path in sorted(SRC.rglob("cli*.py")):
        if path.name == "cli_common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Exit"
            ):
                continue
            codes = [*node.args, *(k.value for k in node.keywords)]
            if not codes or not all(
                isinstance(c, ast.Name) and c.id in ("FAILED", "USAGE") for c in codes
            ):
                wrong.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not wrong, f"exit through cli_common (FAILED, USAGE, fail(), usage()): {wrong}"
