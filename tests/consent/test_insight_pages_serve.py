""" "Scan now" end to end through `accord serve` alone: the page queues the scan, the
worker's scheduler runs the `consent.scan` job, and the page shows the stored findings.
docs/operations.md ("What runs by itself") names this test for the trigger."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

from accord.accounts.models import Bootstrap
from tests.consent.test_scanner import fixture_site  # noqa: F401 - the local site fixture
from tests.serverproc import ServerProcess, server_env

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(300)]

# The server must run this worktree's code, whatever PYTHONPATH the caller has.
SRC = Path(__file__).resolve().parents[2] / "src"


def test_scan_now_through_serve_stores_the_findings(
    tmp_path: Path,
    database_url: str,
    keys: Bootstrap,
    fixture_site: str,  # noqa: F811
) -> None:
    pythonpath = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    env = server_env(
        data_dir=tmp_path,
        database_url=database_url,
        lake_url=str(tmp_path / "lake"),
        # The fixture site is on loopback: the operator allows it.
        extra={"PYTHONPATH": pythonpath, "ACCORD_OUTBOUND_ALLOW": "127.0.0.1"},
    )
    headers = {"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"}
    with (
        ServerProcess(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0) as admin,
    ):
        created = admin.post("/api/consent/properties", json={"key": "shop-web", "name": "Shop"})
        assert created.status_code == 200, created.text
        posted = admin.post(
            "/consent/scans",
            data={"property": "shop-web", "url": f"{fixture_site}/bad.html", "pages": "1"},
            follow_redirects=False,
        )
        assert posted.status_code == 303, posted.text
        found = re.match(r"/consent/scans/(scan_[0-9a-f]+)", posted.headers["location"])
        assert found
        deadline = time.monotonic() + 120
        page = ""
        while time.monotonic() < deadline:
            page = admin.get(f"/consent/scans/{found.group(1)}").text
            if re.search(r'id="scan-status">(succeeded|failed)<', page):
                break
            time.sleep(0.5)
        assert 'id="scan-status">succeeded<' in page, server.log_tail()
        ga = re.search(r'<tr data-finding="\d+" data-name="_ga".*?</tr>', page, re.S)
        assert ga and "flagged" in ga.group(0) and "Google Analytics" in ga.group(0)
        history = admin.get("/api/jobs/history", params={"name": "consent.scan"})
        assert history.status_code == 200, history.text
        runs = history.json()
        assert [r["status"] for r in runs] == ["succeeded"]
        assert runs[0]["counts"]["scans"] == 1 and runs[0]["counts"]["flagged"] >= 2
