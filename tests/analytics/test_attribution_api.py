"""Attribution, spend and saved reports through the API, the pages, the CLI and the job, on
SQLite and PostgreSQL: one person's anonymous ad click and known order are one customer,
spend from manual entries and the leads funnel lands in the same model, and bad input is
a 400 naming its field."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accord.accounts.models import Bootstrap
from accord.cli import app as cli_app
from accord.core.clock import iso, utcnow
from accord.core.settings import Settings
from accord.process.jobs import default_kinds
from accord.process.scheduler import Scheduler
from accord.process.worker import drain
from accord.store.db import Store
from tests.analytics.pages import figure, table, tile

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


HTML = {"accept": "text/html"}


def _api(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def _ago(days: float) -> str:
    return iso(utcnow() - timedelta(days=days))


def _day(days: int) -> str:
    return (utcnow() - timedelta(days=days)).date().isoformat()


def _collect(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> None:
    """a1 clicks a paid search ad, signs in as u1 and orders twice; a2 comes from a tweet
    and orders without signing in; u3 orders with no touch at all."""
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    ad = {"campaign": {"source": "google", "medium": "cpc", "name": "spring"}}
    tweet = {"page": {"referrer": "https://t.co/xyz", "url": "https://shop.test/"}}
    batch: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "a1", "timestamp": _ago(5), "context": ad},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "timestamp": _ago(4.5)},
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "properties": {"revenue": 80},
            "timestamp": _ago(4),
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "properties": {"revenue": 20},
            "timestamp": _ago(2),
        },
        {"type": "page", "anonymousId": "a2", "timestamp": _ago(3), "context": tweet},
        {
            "type": "track",
            "anonymousId": "a2",
            "event": "Order Completed",
            "properties": {"revenue": 40},
            "timestamp": _ago(3),
        },
        {"type": "identify", "userId": "u3", "timestamp": _ago(2)},
        {"type": "track", "userId": "u3", "event": "Order Completed", "timestamp": _ago(1)},
    ]
    response = client.post("/v1/batch", headers={"Authorization": auth}, json={"batch": batch})
    assert response.status_code == 200, response.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


def _rows(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["channel"], r["campaign"]): r for r in report["rows"]}


def test_attribution_spend_and_saved_reports(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    _collect(client, keys, store, settings)
    spent = client.post(
        "/api/analytics/spend",
        headers=_api(keys),
        json={"day": _day(5), "channel": "paid search", "campaign": "spring", "amount": 100},
    )
    assert spent.status_code == 201, spent.text
    # The leads funnel's campaign cost goes to the same model.
    leads_spend = client.put(
        "/api/leads/spend",
        headers=_api(keys),
        json={"campaign": "autumn", "amount": 30, "channel": "paid social"},
    )
    assert leads_spend.status_code == 204, leads_spend.text

    body = {"model": "first_touch", "lookback_days": 30, "from": _day(6), "to": _day(0)}
    answer = client.post("/api/analytics/attribution", headers=_api(keys), json=body)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    rows = _rows(report)
    # u1's two orders both go to the ad its anonymous visit clicked; only the first acquired.
    spring = rows[("paid search", "spring")]
    assert (spring["conversions"], spring["new_customers"], spring["revenue"]) == (2, 1, 100)
    assert spring["spend"] == 100 and spring["cost_per_acquisition"] == 100
    assert rows[("social", "(none)")]["conversions"] == 1
    assert rows[("direct", "(none)")]["new_customers"] == 1
    autumn = rows[("paid social", "autumn")]
    assert autumn["conversions"] == 0 and autumn["spend"] == 30
    assert autumn["cost_per_acquisition"] is None
    assert report["totals"] == {
        "conversions": 4,
        "new_customers": 3,
        "revenue": 140,
        "spend": 130,
    }
    # A lookback of one day still sees the ad a day before the first order, not three
    # days before the second.
    short = client.post(
        "/api/analytics/attribution", headers=_api(keys), json={**body, "lookback_days": 1}
    ).json()
    assert _rows(short)[("paid search", "spring")]["conversions"] == 1
    assert _rows(short)[("direct", "(none)")]["conversions"] == 2

    listed = client.get(
        "/api/analytics/spend", headers=_api(keys), params={"since": _day(6), "until": _day(0)}
    )
    assert listed.status_code == 200, listed.text
    assert sorted((r["origin"], r["campaign"], r["amount"]) for r in listed.json()) == [
        ("leads", "autumn", 30.0),
        ("manual", "spring", 100.0),
    ]

    # The page shows the API's numbers, as a chart with its table.
    page = client.get(
        "/analytics/attribution",
        headers={**_api(keys), **HTML},
        params={"model": "first_touch", "lookback": "30", "from": _day(6), "to": _day(0)},
    )
    assert page.status_code == 200, page.text
    assert tile(page.text, "kpi-new-customers") == "3"
    by_channel = figure(page.text, "attribution-by-channel")
    assert by_channel["data"][0]["x"] == ["paid search", "paid social", "social", "direct"]
    assert by_channel["data"][0]["y"] == [2, 0, 1, 1]
    assert table(page.text, "attribution-cost") == {"paid search": ["100.00"]}

    # Saved to the dashboard, refreshed by the scheduler's job, drawn from the result.
    saved = client.post(
        "/api/analytics/reports",
        headers=_api(keys),
        json={
            "kind": "attribution",
            "name": "First touch, last week",
            "spec": {"model": "first_touch", "last_days": 7},
        },
    )
    assert saved.status_code == 201, saved.text
    report_id = saved.json()["id"]
    kinds = {"analytics.reports": default_kinds()["analytics.reports"]}
    Scheduler(store, settings, kinds).run_until_idle()
    stored = client.get(f"/api/analytics/reports/{report_id}", headers=_api(keys)).json()
    assert stored["refreshed_at"] is not None and stored["error"] is None
    assert stored["result"]["totals"] == report["totals"]
    dashboard = client.get("/analytics/dashboard", headers={**_api(keys), **HTML})
    assert dashboard.status_code == 200
    chart = figure(dashboard.text, f"{report_id}-by-channel")
    assert chart["data"][0]["y"] == [2, 0, 1, 1]

    # The CLI prints the same report.
    result = CliRunner().invoke(
        cli_app,
        [
            "analytics",
            "attribution",
            "--business",
            keys.business_id,
            "--from",
            _day(6),
            "--to",
            _day(0),
            "--model",
            "first_touch",
            "--json",
        ],
        env={
            "ACCORD_DATABASE_URL": settings.resolved_database_url(),
            "ACCORD_DATA_DIR": str(settings.data_dir),
            "ACCORD_LAKE_URL": settings.resolved_lake_url(),
        },
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"] == report["totals"]


def _problem(response: Any) -> set[str]:
    assert response.status_code == 400, response.text
    return {p["field"] for p in response.json()["problems"]}


def test_bad_input_is_a_400_naming_the_field(client: TestClient, keys: Bootstrap) -> None:
    good = {"model": "linear", "lookback_days": 7, "from": "2026-11-01", "to": "2026-11-30"}
    for change, field in (
        ({"model": "time_decay"}, "model"),
        ({"lookback_days": 0}, "lookback_days"),
        ({"lookback_days": -3}, "lookback_days"),
        ({"from": "2026-12-01"}, "to"),
        ({"from": "2024-01-01"}, "to"),
        ({"to": "yesterday"}, "to"),
        ({"conversion_event": ""}, "conversion_event"),
        ({"surprise": 1}, "surprise"),
    ):
        answer = client.post(
            "/api/analytics/attribution", headers=_api(keys), json={**good, **change}
        )
        assert field in _problem(answer), (change, answer.text)
    spend = {"day": "2026-11-02", "channel": "email", "amount": 10}
    for change, field in (
        ({"channel": "billboards"}, "channel"),
        ({"channel": "direct"}, "channel"),
        ({"amount": -1}, "amount"),
        ({"day": "2026-13-01"}, "day"),
        ({"campaign": "   "}, "campaign"),
    ):
        answer = client.post("/api/analytics/spend", headers=_api(keys), json={**spend, **change})
        assert field in _problem(answer), (change, answer.text)
    answer = client.get(
        "/api/analytics/spend",
        headers=_api(keys),
        params={"since": "2026-11-05", "until": "2026-11-01"},
    )
    assert "until" in _problem(answer)
    for report, field in (
        ({"kind": "heatmap", "name": "x", "spec": {}}, "kind"),
        ({"kind": "attribution", "name": "x", "spec": {"last_days": 0}}, "spec.last_days"),
        (
            {"kind": "attribution", "name": "x", "spec": {"last_days": 7, "lookback_days": 0}},
            "spec.lookback_days",
        ),
        (
            {"kind": "attribution", "name": "x", "spec": {"model": "x", "last_days": 3}},
            "spec.model",
        ),
    ):
        answer = client.post("/api/analytics/reports", headers=_api(keys), json=report)
        assert field in _problem(answer), (report, answer.text)
    assert client.delete("/api/analytics/reports/rpt_nope", headers=_api(keys)).status_code == 404
    assert client.delete("/api/analytics/spend/spd_nope", headers=_api(keys)).status_code == 404
    for params, field in (
        ({"lookback": "0"}, "lookback"),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "to"),
        ({"model": "u_shaped"}, "model"),
    ):
        page = client.get("/analytics/attribution", headers={**_api(keys), **HTML}, params=params)
        assert page.status_code == 400
        assert f'id="e-{field}"' in page.text, params
