"""`POST /api/analytics/funnels|paths|retention` and their pages, on SQLite and PostgreSQL:
people stitched across their anonymous and known events, numbers worked out by hand, the
pages showing the API's numbers, and bad input answered 400 with the field."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.clock import iso, utcnow
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.store.db import Store
from tests.analytics.pages import figure
from tests.test_cli import Cli

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


VIEW, ADD, ORDER = "Product Viewed", "Product Added", "Order Completed"


def start() -> datetime:
    """A Monday 10:00 UTC two to three weeks ago."""
    today = utcnow().astimezone(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    return today - timedelta(days=today.weekday() + 14)


def batch_of(t: datetime) -> list[dict[str, Any]]:
    """Four visitors. a1 views, signs in as u1, adds and orders as u1 (one person); a2
    views and adds; a3 views and adds two days later; a4 only adds."""

    def at(minutes: float) -> str:
        return iso(t + timedelta(minutes=minutes))

    batch: list[dict[str, Any]] = [
        {"type": "track", "anonymousId": "a1", "event": VIEW, "timestamp": at(0),
         "properties": {"category": "jackets"}},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "timestamp": at(1)},
        {"type": "track", "userId": "u1", "event": ADD, "timestamp": at(10)},
        {"type": "track", "userId": "u1", "event": ORDER, "timestamp": at(60),
         "properties": {"revenue": 80}},
        {"type": "track", "anonymousId": "a2", "event": VIEW, "timestamp": at(0),
         "properties": {"category": "boots"}},
        {"type": "track", "anonymousId": "a2", "event": ADD, "timestamp": at(5)},
        {"type": "track", "anonymousId": "a3", "event": VIEW, "timestamp": at(0),
         "properties": {"category": "jackets"}},
        {"type": "track", "anonymousId": "a3", "event": ADD, "timestamp": at(2 * 24 * 60)},
        {"type": "track", "anonymousId": "a4", "event": ADD, "timestamp": at(3)},
    ]  # fmt: skip
    return batch


def collect(client: TestClient, keys: Bootstrap, store: Store, settings: Settings) -> datetime:
    """The events of `batch_of`, through the collection API and the worker."""
    t = start()
    batch = batch_of(t)
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    response = client.post("/v1/batch", headers={"Authorization": auth}, json={"batch": batch})
    assert response.status_code == 200, response.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))
    return t


def _post(client: TestClient, keys: Bootstrap, path: str, body: Any) -> Any:
    return client.post(
        f"/api/analytics/{path}",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
        json=body,
    )


def funnel_body(t: datetime, **more: Any) -> dict[str, Any]:
    return {
        "steps": [{"event": VIEW}, {"event": ADD}, {"event": ORDER}],
        "window_seconds": 86_400,
        "from": (t - timedelta(days=1)).date().isoformat(),
        "to": (t + timedelta(days=1)).date().isoformat(),
        **more,
    }


def test_reports_count_people_across_their_anonymous_and_known_events(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    t = collect(client, keys, store, settings)
    response = _post(client, keys, "funnels", funnel_body(t))
    assert response.status_code == 200, response.text
    steps = response.json()["steps"]
    assert [s["count"] for s in steps] == [3, 2, 1]
    assert [s["conversion_from_previous"] for s in steps] == [1.0, pytest.approx(2 / 3), 0.5]
    assert [s["conversion_from_first"] for s in steps] == [
        1.0,
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    ]
    # a1 took 10 minutes to add, a2 5: the median is 450 s; u1 ordered 50 minutes later.
    assert [s["median_seconds_to_convert"] for s in steps] == [None, 450.0, 3000.0]

    by_category = _post(client, keys, "funnels", funnel_body(t, breakdown="category")).json()
    groups = {g["value"]: [s["count"] for s in g["steps"]] for g in by_category["groups"]}
    assert groups == {"jackets": [2, 1, 1], "boots": [1, 1, 0]}

    excluded = funnel_body(t, exclusions=[{"event": ORDER}])
    assert [s["count"] for s in _post(client, keys, "funnels", excluded).json()["steps"]] == [
        2,
        1,
        0,
    ]
    unknown = funnel_body(t, steps=[{"event": VIEW}, {"event": "Never Sent"}])
    assert [s["count"] for s in _post(client, keys, "funnels", unknown).json()["steps"]] == [3, 0]

    people = client.post(
        "/api/analytics/funnels/people?step=3",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
        json=funnel_body(t),
    ).json()
    assert people["count"] == 1

    after_view = {
        "step": {"event": VIEW},
        "depth": 2,
        "from": (t - timedelta(days=1)).date().isoformat(),
        "to": (t + timedelta(days=3)).date().isoformat(),
    }
    paths = _post(client, keys, "paths", after_view).json()
    assert paths["people"] == 3
    assert {(x["source"], x["target"], x["people"]) for x in paths["links"]} == {
        (VIEW, ADD, 3),
        (ADD, ORDER, 1),
    }

    weekly = {"from": (t - timedelta(days=7)).date().isoformat(), "to": iso(utcnow()), "periods": 2}
    retention = _post(client, keys, "retention", weekly).json()
    # Everyone was first seen in t's week; only a3 came back, in the week after (t + 2 days
    # is still t's week: a Monday plus two days), so no one returned.
    assert [(c["people"], c["returned"]) for c in retention["cohorts"]] == [(4, [0, 0])]

    page = client.get(
        "/analytics/funnels?"
        + urlencode(
            {
                "step": [f'"{VIEW}"', f'"{ADD}"', f'"{ORDER}"'],
                "window_hours": "24",
                "from": funnel_body(t)["from"],
                "to": funnel_body(t)["to"],
            },
            doseq=True,
        ),
        headers={"Authorization": f"Bearer {keys.admin_token}", "accept": "text/html"},
    )
    assert page.status_code == 200, page.text
    assert figure(page.text, "funnel-chart")["data"][0]["y"] == [s["count"] for s in steps]


def _people(client: TestClient, keys: Bootstrap, query: str, body: Any) -> Any:
    return client.post(
        f"/api/analytics/funnels/people?{query}",
        headers={"Authorization": f"Bearer {keys.admin_token}"},
        json=body,
    )


def test_a_funnel_broken_down_by_a_profile_trait_and_the_people_of_a_step(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    t = collect(client, keys, store, settings)
    auth = "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()
    traits = [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "identify", "anonymousId": "a2", "traits": {"plan": "free"}},
    ]
    answer = client.post("/v1/batch", headers={"Authorization": auth}, json={"batch": traits})
    assert answer.status_code == 200, answer.text
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=100, lease=timedelta(seconds=60))

    # u1 (a1) went through, a2 added and stopped, a3 only viewed (its add came too late).
    by_plan = _post(client, keys, "funnels", funnel_body(t, breakdown_trait="plan"))
    assert by_plan.status_code == 200, by_plan.text
    result = by_plan.json()
    assert result["breakdown_trait"] == "plan" and "breakdown" not in result
    assert [s["count"] for s in result["steps"]] == [3, 2, 1]
    assert [(g["value"], [s["count"] for s in g["steps"]]) for g in result["groups"]] == [
        ("free", [1, 1, 0]),
        ("pro", [1, 1, 1]),
        (None, [1, 0, 0]),
    ]
    # An event breakdown may name a path into the event's JSON too (read as text).
    by_path = _post(client, keys, "funnels", funnel_body(t, breakdown="properties.category"))
    assert by_path.status_code == 200, by_path.text
    groups = {g["value"]: [s["count"] for s in g["steps"]] for g in by_path.json()["groups"]}
    assert groups == {"jackets": [2, 1, 1], "boots": [1, 1, 0]}
    # A computed trait, as audiences read it: a number, as at the time of the report.
    by_orders = _post(client, keys, "funnels", funnel_body(t, breakdown_trait="order_count"))
    groups = {g["value"]: [s["count"] for s in g["steps"]] for g in by_orders.json()["groups"]}
    assert groups == {1.0: [1, 1, 1], 0.0: [2, 1, 0]}

    reached = _people(client, keys, "step=2", funnel_body(t, breakdown_trait="plan")).json()
    dropped = _people(client, keys, "step=2&dropped=true", funnel_body(t)).json()
    last = _people(client, keys, "step=3", funnel_body(t)).json()
    assert (reached["count"], dropped["count"], last["count"]) == (2, 1, 1)
    assert set(reached["profile_ids"]) == set(dropped["profile_ids"]) | set(last["profile_ids"])
    refused = _people(client, keys, "step=3&dropped=true", funnel_body(t))
    assert refused.status_code == 400 and "dropped" in refused.text

    for change in (
        {"breakdown_trait": "no_such_trait"},
        {"breakdown": "category", "breakdown_trait": "plan"},
    ):
        response = _post(client, keys, "funnels", funnel_body(t, **change))
        assert response.status_code == 400, response.text
        assert "breakdown_trait" in response.text, response.text

    query = {
        "step": [f'"{VIEW}"', f'"{ADD}"', f'"{ORDER}"'],
        "window_hours": "24",
        "from": funnel_body(t)["from"],
        "to": funnel_body(t)["to"],
    }
    headers = {"Authorization": f"Bearer {keys.admin_token}", "accept": "text/html"}
    page = client.get(
        "/analytics/funnels?" + urlencode({**query, "breakdown_trait": "plan"}, doseq=True),
        headers=headers,
    )
    assert page.status_code == 200, page.text
    table = page.text.split('id="funnel-breakdown"')[1].split("</table>")[0]
    assert "By trait plan" in page.text
    rows = [re.sub(r"<[^>]+>", " ", row).split() for row in table.split("<tr>")[2:]]
    assert rows == [["free", "1", "1", "0"], ["pro", "1", "1", "1"], ["(none)", "1", "0", "0"]]
    # Each step links its people as CSV: the same ids as the API's.
    links = re.findall(r'href="(/analytics/funnels/people\.csv\?[^"]+)"', page.text)
    stopped = next(unescape(link) for link in links if "people_step=2&amp;dropped=true" in link)
    csv = client.get(stopped, headers={"Authorization": f"Bearer {keys.admin_token}"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.split() == ["profile_id", *dropped["profile_ids"]]
    assert len(links) == 5  # reached for steps 1 to 3, stopped here for steps 1 and 2
    unknown = client.get(
        "/analytics/funnels?" + urlencode({**query, "breakdown_trait": "nope"}, doseq=True),
        headers=headers,
    )
    assert unknown.status_code == 400
    assert "unknown trait" in unknown.text and 'name="breakdown_trait" value="nope"' in unknown.text


BAD = [
    ({"steps": []}, "steps"),
    ({"steps": [{"event": VIEW}] * 21}, "steps"),
    ({"window_seconds": 0}, "window_seconds"),
    ({"window_seconds": -5}, "window_seconds"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ({"breakdown": "store_id"}, "breakdown"),
    ({"steps": [{"where": []}]}, "steps[0].event"),
    ({"steps": [{"event": VIEW, "where": [{"property": "revenue", "op": "~"}]}]}, "steps[0].where[0].op"),  # noqa: E501
    ({"steps": [{"event": VIEW, "where": [{"property": "store_id", "op": "exists"}]}]}, "steps[0].where[0].property"),  # noqa: E501
    ({"steps": [{"event": VIEW, "where": [{"property": "revenue", "op": ">", "value": "a"}]}]}, "steps[0].where[0].value"),  # noqa: E501
    ({"exclusions": [{"event": ""}]}, "exclusions[0].event"),
    ({"from": "yesterday"}, "from"),
]  # fmt: skip


def test_bad_funnels_are_refused_with_the_field(client: TestClient, keys: Bootstrap) -> None:
    base = funnel_body(start())
    for change, field in BAD:
        response = _post(client, keys, "funnels", {**base, **change})
        assert response.status_code == 400, (change, response.text)
        assert field in response.text, (change, response.text)
    assert _post(client, keys, "funnels", [1, 2]).status_code == 400
    bad_paths = {"step": {"event": VIEW}, "depth": 0, "from": "2026-01-01", "to": "2026-02-01"}
    assert "depth" in _post(client, keys, "paths", bad_paths).text
    bad_weeks = {"periods": 53, "from": "2026-01-01", "to": "2026-02-01"}
    response = _post(client, keys, "retention", bad_weeks)
    assert response.status_code == 400 and "periods" in response.text


def test_reports_from_the_shell(
    tmp_path: Path,
    client: TestClient,
    store: Store,
    keys: Bootstrap,
    settings: Settings,
    database_url: str,
) -> None:
    t = collect(client, keys, store, settings)
    cli = Cli(tmp_path, database_url)
    cli.env["ACCORD_LAKE_URL"] = settings.resolved_lake_url()
    spec = tmp_path / "funnel.json"
    spec.write_text(json.dumps(funnel_body(t)))
    answer = json.loads(
        cli("analytics", "funnel", "--business", keys.business_id, str(spec), "--json").stdout
    )
    assert [s["count"] for s in answer["steps"]] == [3, 2, 1]
    spec.write_text(json.dumps(funnel_body(t, window_seconds=0)))
    refused = cli("analytics", "funnel", "--business", keys.business_id, str(spec), code=2)
    assert "window_seconds" in refused.output
