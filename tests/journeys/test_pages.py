"""The journey pages: list, graph with counts, and the builder's validation."""

from __future__ import annotations

import json
from datetime import date

from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.journeys.analytics import NodeCounts
from accord.journeys.pages import daily_chart, nodes_chart
from tests.charts import chart, charts
from tests.journeys.helpers import ABANDONED_CART


def _auth(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"}


def _create(client: TestClient, keys: Bootstrap) -> None:
    body = {"key": "cart", "name": "Abandoned cart", "definition": ABANDONED_CART}
    assert client.post("/api/journeys", json=body, headers=_auth(keys)).status_code == 201


def _builder_form(definition: dict, **extra: str) -> dict[str, list[str]]:
    pairs = [
        ("entry", json.dumps(definition["entry"])),
        ("start", definition["start"]),
        ("messages", json.dumps(definition.get("messages", {}))),
        ("settings", json.dumps({"goal": definition["goal"]})),
    ]
    for node_id, node in definition["nodes"].items():
        pairs += [
            ("node_id", node_id),
            ("node_type", node["type"]),
            ("node_config", json.dumps({k: v for k, v in node.items() if k != "type"})),
        ]
    form: dict[str, list[str]] = {}
    for name, value in pairs + list(extra.items()):
        form.setdefault(name, []).append(value)
    return form


def test_list_and_graph_pages_show_the_journey(client: TestClient, keys: Bootstrap) -> None:
    _create(client, keys)
    listing = client.get("/journeys", headers=_auth(keys))
    assert listing.status_code == 200 and "Abandoned cart" in listing.text
    detail = client.get("/journeys/cart", headers=_auth(keys))
    assert detail.status_code == 200
    assert "<svg" in detail.text and 'data-node="wait_order"' in detail.text
    assert "wait for Order Completed" in detail.text
    daily = chart(detail.text, "Entries and conversions per day, last 30 days (UTC)")
    assert [t["name"] for t in daily.traces] == ["Entered", "Converted"]
    assert len(daily.rows) == 30 and daily.rows[utcnow().date().isoformat()] == ["0", "0"]
    assert charts(detail.text)["People per node"].figure is None  # nobody entered yet


def test_the_journey_charts_count_per_day_and_per_node() -> None:
    first, last = date(2026, 11, 22), date(2026, 11, 24)
    daily = daily_chart({"2026-11-23": (4, 1)}, first=first, last=last)
    assert daily.x == ["2026-11-22", "2026-11-23", "2026-11-24"]
    assert [list(s.values) for s in daily.series] == [[0, 4, 0], [0, 1, 0]]
    nodes = nodes_chart(
        [
            NodeCounts("remind", entered=3, waiting_now=0, outcomes={"sent": 3}),
            NodeCounts("wait_order", entered=5, waiting_now=2, outcomes={}),
        ]
    )
    assert nodes.x == ["remind", "wait_order"]
    assert [list(s.values) for s in nodes.series] == [[3, 5], [0, 2]]


def test_the_builder_names_the_broken_node_and_saves_nothing(
    client: TestClient, keys: Bootstrap
) -> None:
    _create(client, keys)
    broken = json.loads(json.dumps(ABANDONED_CART))
    broken["nodes"]["remind"]["next"] = "nowhere"
    response = client.post(
        "/journeys/cart/edit",
        data=_builder_form(broken, action="save"),
        headers=_auth(keys),
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "leads to unknown node &#39;nowhere&#39;" in response.text
    version = client.get("/api/journeys/cart", headers=_auth(keys)).json()["current_version"]
    assert version == 1


def test_the_builder_adds_a_node_and_saves_a_version(client: TestClient, keys: Bootstrap) -> None:
    _create(client, keys)
    added = client.post(
        "/journeys/cart/edit",
        data=_builder_form(ABANDONED_CART, new_id="pause", new_type="wait", action="check"),
        headers=_auth(keys),
    )
    # The new node starts unconnected, so the check reports it: nothing is saved yet.
    assert added.status_code == 400
    assert "<code>pause</code>: leads to unknown node &#39;&#39;" in added.text
    saved = client.post(
        "/journeys/cart/edit",
        data=_builder_form(ABANDONED_CART, action="save"),
        headers=_auth(keys),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert client.get("/api/journeys/cart", headers=_auth(keys)).json()["current_version"] == 2
