"""Reading pages as a test does: a chart's figure and table by its id, a KPI tile, and an
employee who joined through the invitation pages."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient

from tests.accounts.ui import Browser, csrf_of


def chart_markup(html: str, chart_id: str) -> str:
    found = re.search(
        rf'<figure class="chart[^"]*" id="{re.escape(chart_id)}">(.*?)</figure>', html, re.S
    )
    assert found, f"no chart {chart_id} on the page"
    return found.group(1)


def figure(html: str, chart_id: str) -> dict[str, Any]:
    """The plotly.js figure of the chart `chart_id`."""
    found = re.search(r'data-chart="([^"]*)"', chart_markup(html, chart_id))
    assert found, f"chart {chart_id} has no figure"
    data: dict[str, Any] = json.loads(unescape(found.group(1)))
    return data


def table(html: str, chart_id: str) -> dict[str, list[str]]:
    """The chart's table: row label → its cells, as shown."""
    body = re.search(r"<tbody>(.*?)</tbody>", chart_markup(html, chart_id), re.S)
    assert body, f"chart {chart_id} has no table"
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S):
        label = re.search(r'<th scope="row">(.*?)</th>', row, re.S)
        assert label
        rows[unescape(label.group(1))] = [unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
    return rows


def tile(html: str, tile_id: str) -> str:
    found = re.search(rf'id="{re.escape(tile_id)}"><span class="value">([^<]*)</span>', html)
    assert found, f"no tile {tile_id} on the page"
    return unescape(found.group(1))


def join_as_employee(
    client: TestClient,
    owner: Browser,
    email: str,
    grants: dict[str, str] | None = None,
    *,
    role: str = "employee",
) -> Browser:
    """`owner` invites `email` with a role (an employee by default) and tasks on assets
    (asset id → task); the invitee accepts through the invitation page and is signed in."""
    data: dict[str, object] = {"email": email, "role": role}
    for asset_id, task in (grants or {}).items():
        data[f"grant:{asset_id}"] = task
    invited = owner.submit("/people", "/people/invite", data)
    link = re.search(r"(/invitations/accept\?token=[^\s<&\"]+)", invited.text)
    assert link, invited.text
    employee = Browser(TestClient(client.app))
    page = employee.get(link.group(1))
    joined = employee.client.post(
        "/invitations/accept",
        data={
            "token": link.group(1).split("token=")[1],
            "name": email.split("@")[0],
            "password": "a long enough password",
            "csrf_token": csrf_of(page.text),
        },
        headers={"accept": "text/html"},
    )
    assert joined.url.path == "/app", joined.text
    return employee
