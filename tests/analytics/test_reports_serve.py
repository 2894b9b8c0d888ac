"""Saved reports end to end through `accord serve` alone: a report saved through the API is
refreshed by the worker's scheduler (`analytics.reports`, woken by a report never run) and
the dashboard draws its stored result. docs/operations.md ("What runs by itself") names
this test for the trigger."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from accord.accounts.models import Bootstrap
from tests.analytics.pages import chart_markup, figure
from tests.serverproc import ServerProcess, server_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# The server must run this worktree's code, whatever PYTHONPATH the caller has.
SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_saved_report_is_refreshed_by_serve_and_drawn_on_the_dashboard(
    tmp_path: Path, database_url: str, keys: Bootstrap
) -> None:
    pythonpath = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    env = server_env(
        data_dir=tmp_path,
        database_url=database_url,
        lake_url=str(tmp_path / "lake"),
        extra={"PYTHONPATH": pythonpath},
    )
    headers = {"Authorization": f"Bearer {keys.admin_token}"}
    with (
        ServerProcess(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0) as admin,
    ):
        spent = admin.post(
            "/api/analytics/spend",
            json={
                "day": time.strftime("%Y-%m-%d", time.gmtime()),
                "channel": "email",
                "amount": 12,
            },
        )
        assert spent.status_code == 201, spent.text
        saved = admin.post(
            "/api/analytics/reports",
            json={"kind": "attribution", "name": "Last week", "spec": {"last_days": 7}},
        )
        assert saved.status_code == 201, saved.text
        report_id = saved.json()["id"]
        deadline = time.monotonic() + 120
        report = {}
        while time.monotonic() < deadline:
            report = admin.get(f"/api/analytics/reports/{report_id}").json()
            if report["refreshed_at"] or report["error"]:
                break
            time.sleep(0.5)
        assert report.get("refreshed_at") and not report["error"], server.log_tail()
        assert report["result"]["totals"]["spend"] == 12
        history = admin.get("/api/jobs/history", params={"name": "analytics.reports"}).json()
        assert any(r["counts"].get("refreshed") == 1 for r in history), history
        page = admin.get("/analytics/dashboard", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        # Email cost 12 and won nobody: its bar is drawn at 0, and no cost per customer.
        assert figure(page.text, f"{report_id}-by-channel")["data"][0]["x"] == ["email"]
        assert "No data yet" in chart_markup(page.text, f"{report_id}-cost")
        assert "Last week" in page.text
