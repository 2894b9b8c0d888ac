""" "Run matching" end to end through `accord serve` alone: the rules page makes the
`identity.match` job due, the worker's scheduler runs it, and the page shows its report.
docs/operations.md ("What runs by itself") names this test for the trigger."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from accord.accounts.models import Bootstrap
from tests.identity.matching_data import MATCHING, base
from tests.serverproc import ServerProcess, server_env

pytestmark = [pytest.mark.keeps_unknown_location, pytest.mark.slow, pytest.mark.timeout(300)]

# The server must run this worktree's code, whatever PYTHONPATH the caller has.
SRC = Path(__file__).resolve().parents[2] / "src"


def _linked(page: str, kpi: str) -> int | None:
    found = re.search(rf'id="{kpi}">(\d+)<', page)
    return int(found.group(1)) if found else None


def test_run_matching_through_serve_links_the_pairs_the_dry_run_found(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    pythonpath = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    env = server_env(
        data_dir=tmp_path,
        database_url=database_url,
        lake_url=str(tmp_path / "lake"),
        extra={"PYTHONPATH": pythonpath},
    )
    headers = {"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"}
    write = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    events, same = base()
    with (
        ServerProcess(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0) as admin,
    ):
        rules = admin.put("/api/identity/rules", json={"matching": MATCHING})
        assert rules.status_code == 200, rules.text
        sent = admin.post("/v1/batch", json={"batch": events}, headers={"Authorization": write})
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 120
        expected = None
        # The worker processes the events by itself; the dry run sees the pairs once it has.
        while time.monotonic() < deadline:
            expected = _linked(admin.post("/identity/match/dry-run").text, "kpi-linked")
            if expected is not None and expected >= len(same) - 2:
                break
            time.sleep(1)
        assert expected is not None and expected >= len(same) - 2, server.log_tail()

        asked = admin.post("/identity/match/run", follow_redirects=False)
        assert asked.status_code == 303, asked.text
        page = ""
        while time.monotonic() < deadline + 60:
            page = admin.get("/identity/rules").text
            # The run shows as running first, then with its outcome.
            if re.search(r'id="last-run">Last run: <span class="badge \w*">(?!running)', page):
                break
            time.sleep(0.5)
        assert _linked(page, "last-linked") == expected, server.log_tail()
        history = admin.get("/api/jobs/history", params={"name": "identity.match"}).json()
        assert [r["status"] for r in history] == ["succeeded"]
        # Everything is linked now: a dry run finds nothing more to link.
        assert _linked(admin.post("/identity/match/dry-run").text, "kpi-linked") == 0
