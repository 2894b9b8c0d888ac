"""The overview (`/app`) and the event volume page, on SQLite and PostgreSQL: KPI tiles and
charts from each context's numbers, the same numbers as the volume API, bad filters, and
what an employee without the permission gets."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.accounts.permissions import ROLES
from accord.consent.service import record_outside_banner
from accord.core.clock import iso, utcnow
from accord.core.settings import Settings
from accord.process.kinds import JobContext, JobKind, JobOutcome
from accord.process.scheduler import Scheduler
from accord.process.worker import drain
from accord.store.db import Store
from tests.accounts.ui import create_business, sign_up
from tests.analytics.pages import figure, join_as_employee, table, tile

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


HTML = {"accept": "text/html"}


def _admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}", **HTML}


def _ago(days: float) -> str:
    return iso(utcnow() - timedelta(days=days))


def _collect(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> None:
    """Two known people (u1 ordered) and two anonymous visitors, over three days."""
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    batch: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "traits": {"email": "one@example.com"}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "timestamp": _ago(1)},
        {"type": "track", "userId": "u2", "event": "Product Viewed", "timestamp": _ago(2)},
        {"type": "page", "anonymousId": "a1", "name": "Home", "timestamp": _ago(2)},
        {"type": "page", "anonymousId": "a2", "name": "Home", "timestamp": _ago(3)},
        {"type": "page", "anonymousId": "a2", "name": "Shoes", "timestamp": _ago(3)},
        # Outside the overview's 30 days: in the lake, not on the overview.
        {"type": "page", "anonymousId": "a2", "name": "Old", "timestamp": _ago(45)},
    ]
    response = client.post("/v1/batch", headers={"Authorization": auth}, json={"batch": batch})
    assert response.status_code == 200, response.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))


def _api_volume(client: TestClient, keys: Bootstrap, query: str = "") -> list[dict[str, Any]]:
    response = client.get(
        f"/api/reports/volume{query}", headers={"Authorization": f"Bearer {keys.admin_token}"}
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def _per_day_and_series(chart: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(day, series name) → value of a stacked chart, zeros left out."""
    found: dict[tuple[str, str], int] = {}
    for trace in chart["data"]:
        for day, value in zip(trace["x"], trace["y"], strict=True):
            if value:
                found[(day, trace["name"])] = value
    return found


def _failing_run(store: Store, settings: Settings) -> None:
    def fail(context: JobContext) -> JobOutcome:
        raise RuntimeError("the export target refused the file")

    kind = JobKind(
        name="test.export", title="export", run=fail, schedule="every 1h", max_attempts=1
    )
    Scheduler(store, settings, {kind.name: kind}).run_until_idle()


def test_overview_shows_each_area_in_tiles_and_charts_with_tables(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    _collect(client, keys, store, settings)
    with store.write() as conn:
        for user, marketing in (("u1", True), ("u2", False)):
            record_outside_banner(
                conn,
                business_id=keys.business_id,
                property_key="web",
                property_name="Web shop",
                purposes={"marketing": marketing, "analytics": False},
                source="api",
                anonymous_id=None,
                user_id=user,
            )
    refreshed = client.post("/audiences/refresh", headers=_admin(keys), follow_redirects=False)
    assert refreshed.status_code == 303
    _failing_run(store, settings)

    page = client.get("/app", headers=_admin(keys))
    assert page.status_code == 200, page.text
    html = page.text
    assert f"Business id <code>{keys.business_id}</code>" in html

    in_window = [r for r in _api_volume(client, keys) if r["day"] >= _ago(29)[:10]]
    assert sum(r["events"] for r in in_window) == 6
    assert tile(html, "kpi-events") == "6"
    events = figure(html, "chart-events")
    assert events["layout"]["barmode"] == "stack"
    assert [trace["name"] for trace in events["data"]] == ["Website"]
    assert len(events["data"][0]["x"]) == 30
    expected: dict[tuple[str, str], int] = {}
    for row in in_window:
        key = (row["day"], "Website")
        expected[key] = expected.get(key, 0) + row["events"]
    assert _per_day_and_series(events) == expected
    assert table(html, "chart-events")[_ago(3)[:10]] == ["2"]

    assert tile(html, "kpi-profiles") == "4"
    profiles = figure(html, "chart-profiles")
    assert profiles["data"][0]["labels"] == ["known", "anonymous"]
    assert profiles["data"][0]["values"] == [2, 2]

    assert tile(html, "kpi-opt-in") == "25.0 %"
    assert table(html, "chart-consent") == {"analytics": ["0.0 %"], "marketing": ["50.0 %"]}

    audiences = table(html, "chart-audiences")
    assert audiences["Purchased in the last 30 days"] == ["1"]
    assert tile(html, "kpi-failed-jobs") == "1"
    assert table(html, "chart-jobs") == {"test.export": ["1"]}
    assert "test.export failed at" in html
    assert "RuntimeError: the export target refused the file</p>" in html

    # Areas without activity say so instead of drawing an empty chart.
    assert tile(html, "kpi-email-sent") == "0"
    assert tile(html, "kpi-journey-entries") == "0"
    assert html.count("No data yet.") == 2


def test_an_employee_sees_only_the_areas_their_tasks_grant(
    client: TestClient, store: Store
) -> None:
    owner = sign_up(client, "ann@acme.test")
    create_business(owner)
    plain = join_as_employee(client, owner, "bob@acme.test")
    page = plain.get("/app")
    assert page.status_code == 200
    assert 'id="overview-none"' in page.text and "data-chart" not in page.text
    assert 'href="/analytics/volume"' not in page.text  # not in the navigation either
    assert plain.get("/analytics/volume").status_code == 403

    pixel = owner.submit("/assets", "/assets/pixels", {"name": "Shop"})
    assert pixel.status_code == 200
    with store.read() as conn:
        from accord.accounts.models import sources

        shop = conn.execute(select(sources.c.id).where(sources.c.name == "Shop")).scalar_one()
    # A task on one pixel opens that pixel, not the business's numbers (issue 19, item 4).
    tasked = join_as_employee(client, owner, "cat@acme.test", {shop: "analyse"})
    page = tasked.get("/app")
    assert 'id="widget-events"' not in page.text and "data-chart" not in page.text
    assert tasked.get("/analytics/volume").status_code == 403
    # The analyst role reads the business's reports; jobs are not among its reads.
    analyst = join_as_employee(client, owner, "dan@acme.test", role="analyst")
    page = analyst.get("/app")
    assert 'id="widget-events"' in page.text and 'id="widget-profiles"' in page.text
    assert ('id="widget-jobs"' in page.text) == ("jobs.read" in ROLES["analyst"])
    assert analyst.get("/analytics/volume").status_code == 200


def test_volume_page_shows_the_numbers_of_the_api_by_source_and_type(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    _collect(client, keys, store, settings)
    since, until = _ago(60)[:10], _ago(0)[:10]
    page = client.get(f"/analytics/volume?since={since}&until={until}", headers=_admin(keys))
    assert page.status_code == 200, page.text
    rows = _api_volume(client, keys, f"?since={since}&until={until}")
    assert sum(r["events"] for r in rows) == 7
    assert tile(page.text, "kpi-events") == "7"
    by_type: dict[tuple[str, str], int] = {}
    by_source: dict[tuple[str, str], int] = {}
    for row in rows:
        assert row["source_id"] == keys.source_id
        for key, found in (
            ((row["day"], row["type"]), by_type),
            ((row["day"], "Website"), by_source),
        ):
            found[key] = found.get(key, 0) + row["events"]
    assert _per_day_and_series(figure(page.text, "volume-by-type")) == by_type
    assert _per_day_and_series(figure(page.text, "volume-by-source")) == by_source
    # Series largest first: 4 pages, 2 tracks, 1 identify.
    assert table(page.text, "volume-by-type")[_ago(3)[:10]] == ["2", "0", "0"]
    assert f'href="/api/reports/volume?since={since}&amp;until={until}"' in page.text

    # A narrower range and one source: the same rows as the API with the same filter.
    day = _ago(3)[:10]
    narrow = client.get(
        f"/analytics/volume?since={day}&until={day}&source={keys.source_id}",
        headers=_admin(keys),
    )
    assert narrow.status_code == 200
    api = _api_volume(client, keys, f"?since={day}&until={day}&source={keys.source_id}")
    assert api == [
        {
            "business_id": keys.business_id,
            "day": day,
            "source_id": keys.source_id,
            "type": "page",
            "events": 2,
        }
    ]
    assert table(narrow.text, "volume-by-type") == {day: ["2"]}
    assert tile(narrow.text, "kpi-events") == "2"


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("since=2026-13-01", "since", "must be a day as YYYY-MM-DD"),
        ("since=yesterday&until=2026-11-02", "since", "must be a day as YYYY-MM-DD"),
        ("since=2026-11-05&until=2026-11-01", "until", "must be on or after the first day"),
        ("since=2024-01-01&until=2026-11-01", "until", "a range of at most 366 days"),
        ("source=src_nothere", "source", "not a source of this business"),
    ],
)
def test_bad_filters_give_a_400_page_with_the_field_and_what_was_typed(
    client: TestClient, keys: Bootstrap, query: str, field: str, reason: str
) -> None:
    page = client.get(f"/analytics/volume?{query}", headers=_admin(keys))
    assert page.status_code == 400
    assert f'<span class="error-text small" id="e-{field}">{reason}</span>' in page.text
    for typed in query.split("&"):
        name, value = typed.split("=")
        if name != "source":
            assert f'name="{name}" value="{value}"' in page.text
    assert "data-chart" not in page.text


def test_the_api_refuses_a_range_that_ends_before_it_starts(
    client: TestClient, keys: Bootstrap
) -> None:
    response = client.get(
        "/api/reports/volume?since=2026-11-05&until=2026-11-01",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
    )
    assert response.status_code == 400
    assert response.json()["problems"] == [
        {"field": "until", "reason": "must be on or after since"}
    ]
