"""`accord experiments …` from design to report, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from accord.experiments.models import cma_three_arm
from tests.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def test_design_to_report(cli: Cli, tmp_path: Path) -> None:
    key = cli.json("bootstrap", "--json")["write_key"]
    design = cma_three_arm(key="cma", name="CMA", primary_metrics=["ctr"])
    design.start_day = "2026-10-01"
    path = tmp_path / "design.json"
    path.write_text(design.model_dump_json())
    assert (
        "created cma (draft)" in cli("experiments", "create", str(path), "--business", key).stdout
    )
    logs = tmp_path / "logs.jsonl"
    record = {
        "type": "click",
        "id": "c1",
        "timestamp": "2026-10-02T10:00:00Z",
        "arm": "treatment",
        "user": {"id": "u1"},
    }
    logs.write_bytes(
        orjson.dumps(record) + b"\n" + orjson.dumps({**record, "id": "c2", "arm": None})
    )
    draft = cli("experiments", "load-logs", "cma", str(logs), "--business", key, code=1)
    assert "start it" in draft.output
    assert "plan sha256" in cli("experiments", "start", "cma", "--business", key).stdout
    assert "already running" in cli("experiments", "start", "cma", "--business", key, code=1).output
    loaded = cli("experiments", "load-logs", "cma", str(logs), "--business", key, code=1)
    assert "line 2: arm: is required" in loaded.output
    cli(
        "experiments",
        "simulate",
        "cma",
        "--business",
        key,
        "--users",
        "3000",
        "--effect",
        "control_2=0.8",
    )
    out, csv = tmp_path / "report.html", tmp_path / "report.csv"
    reported = cli(
        "experiments", "report", "cma", "--business", key, "--out", str(out), "--csv", str(csv)
    )
    assert "Sample ratio: passed" in reported.output
    assert "% change [95 % interval]" in out.read_text()
    assert csv.read_text().startswith("section,name,passed")
