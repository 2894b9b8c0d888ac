"""Funnels, paths and retention as saved reports: *Save to the dashboard* on the funnel
page stores the spec shown (over the latest days), the `analytics.reports` job runs it
and stores the result, and the dashboard draws it."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.process.jobs import default_kinds
from accord.process.scheduler import Scheduler
from accord.store.db import Store
from tests.analytics.pages import figure
from tests.analytics.test_reports_api import ADD, ORDER, VIEW, collect

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


HTML = {"accept": "text/html"}


def test_a_saved_funnel_is_run_by_the_job_and_drawn_on_the_dashboard(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect(client, keys, store, settings)  # three to three weeks less a day ago
    api = {"Authorization": f"Bearer {keys.admin_token}"}
    page = client.get(
        "/analytics/funnels",
        headers={**api, **HTML},
        params={"step": [f'"{e}"' for e in (VIEW, ADD, ORDER)], "window_hours": "24"},
    )
    assert page.status_code == 200, page.text
    shown = re.search(r'id="save-report".*?name="spec" value="([^"]*)"', page.text, re.S)
    assert shown is not None, "the page offers Save to the dashboard"
    saved = client.post(
        "/analytics/funnels/save",
        headers=api,
        data={"spec": html.unescape(shown.group(1)), "name": "Checkout", "last_days": "28"},
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/analytics/dashboard")

    (report,) = client.get("/api/analytics/reports", headers=api).json()
    assert (report["kind"], report["name"], report["result"]) == ("funnels", "Checkout", None)
    assert report["spec"]["last_days"] == 28 and "from" not in report["spec"]
    assert [s["event"] for s in report["spec"]["steps"]] == [VIEW, ADD, ORDER]

    kinds = {"analytics.reports": default_kinds()["analytics.reports"]}
    Scheduler(store, settings, kinds).run_until_idle()
    stored = client.get(f"/api/analytics/reports/{report['id']}", headers=api).json()
    assert stored["error"] is None and stored["refreshed_at"] is not None
    assert [s["count"] for s in stored["result"]["steps"]] == [3, 2, 1]

    dashboard = client.get("/analytics/dashboard", headers={**api, **HTML})
    assert dashboard.status_code == 200
    assert figure(dashboard.text, f"{report['id']}-funnel-chart")["data"][0]["y"] == [3, 2, 1]


def test_a_saved_event_report_is_checked_when_saved(client: TestClient, keys: Bootstrap) -> None:
    api = {"Authorization": f"Bearer {keys.admin_token}"}
    for kind, spec, field in [
        ("funnels", {"steps": [], "window_seconds": 60, "last_days": 7}, "spec.steps"),
        ("paths", {"step": {"event": VIEW}, "last_days": 0}, "spec.last_days"),
        ("retention", {"period": "fortnight", "periods": 4, "last_days": 30}, "spec.period"),
        (
            "funnels",
            {
                "steps": [{"event": VIEW}],
                "window_seconds": 60,
                "last_days": 7,
                "breakdown_trait": "x",
            },
            "spec.breakdown_trait",
        ),
    ]:
        answer = client.post(
            "/api/analytics/reports", headers=api, json={"kind": kind, "name": kind, "spec": spec}
        )
        assert answer.status_code == 400, answer.text
        assert field in {p["field"] for p in answer.json()["problems"]}, answer.text
    refused = client.post(
        "/analytics/retention/save", headers=api, data={"spec": "[]"}, follow_redirects=False
    )
    assert refused.status_code == 303 and "/analytics/retention" in refused.headers["location"]
    assert client.get("/api/analytics/reports", headers=api).json() == []


def _links(page: str, list_id: str) -> dict[str, str]:
    """The links of a list on a page: text → href."""
    found = re.search(rf'id="{list_id}">(.*?)</ul>', page, re.S)
    assert found, f"no list {list_id}"
    return {
        html.unescape(text): html.unescape(href)
        for href, text in re.findall(r'<a href="([^"]*)">([^<]*)</a>', found.group(1))
    }


def test_the_builders_list_saved_reports_each_a_link_that_draws_it(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect(client, keys, store, settings)
    api = {"Authorization": f"Bearer {keys.admin_token}"}
    jackets = {"event": VIEW, "where": [{"property": "category", "op": "=", "value": "jackets"}]}
    saved = [
        ("funnels", "Jacket checkout", {"steps": [jackets, {"event": ADD}, {"event": ORDER}],
                                        "window_seconds": 86_400, "last_days": 28}),
        ("funnels", "Excluding adders", {"steps": [{"event": VIEW}, {"event": ORDER}],
                                         "window_seconds": 86_400, "last_days": 28,
                                         "exclusions": [{"event": ADD}]}),
        ("paths", "After a view", {"step": {"event": VIEW}, "depth": 2, "last_days": 28}),
        ("retention", "Buyers", {"cohort_event": {"event": VIEW}, "return_event": {"event": ADD},
                                 "period": "day", "periods": 5, "last_days": 28}),
    ]  # fmt: skip
    for kind, name, spec in saved:
        made = client.post(
            "/api/analytics/reports", headers=api, json={"kind": kind, "name": name, "spec": spec}
        )
        assert made.status_code == 201, made.text
    kinds = {"analytics.reports": default_kinds()["analytics.reports"]}
    Scheduler(store, settings, kinds).run_until_idle()
    results = {
        r["name"]: r["result"] for r in client.get("/api/analytics/reports", headers=api).json()
    }

    funnels = client.get("/analytics/funnels", headers={**api, **HTML}).text
    listed = _links(funnels, "saved-reports")
    assert set(listed) == {"Jacket checkout"}, "a spec the form cannot say is listed unlinked"
    assert "Excluding adders" in funnels
    drawn = client.get(listed["Jacket checkout"], headers={**api, **HTML})
    assert drawn.status_code == 200, drawn.text
    counts = [s["count"] for s in results["Jacket checkout"]["steps"]]
    assert counts == [2, 1, 1], "a1 and a3 viewed jackets (a2 boots); a3 added two days on"
    assert figure(drawn.text, "funnel-chart")["data"][0]["y"] == counts

    paths = client.get("/analytics/paths", headers={**api, **HTML}).text
    drawn = client.get(_links(paths, "saved-reports")["After a view"], headers={**api, **HTML})
    assert drawn.status_code == 200, drawn.text
    links = results["After a view"]["links"]
    assert links and figure(drawn.text, "paths-chart")["data"][0]["link"]["value"] == [
        x["people"] for x in links
    ]

    retention = client.get("/analytics/retention", headers={**api, **HTML}).text
    drawn = client.get(_links(retention, "saved-reports")["Buyers"], headers={**api, **HTML})
    assert drawn.status_code == 200, drawn.text
    assert figure(drawn.text, "retention-curve")["data"][0]["y"] == results["Buyers"]["curve"]


def test_each_builder_offers_an_example_that_draws_a_chart(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    collect(client, keys, store, settings)
    api = {"Authorization": f"Bearer {keys.admin_token}", **HTML}
    for kind, chart in [
        ("funnels", "funnel-chart"),
        ("paths", "paths-chart"),
        ("retention", "retention-curve"),
    ]:
        page = client.get(f"/analytics/{kind}", headers=api).text
        assert 'id="saved-reports"' not in page, "nothing saved, nothing listed"
        found = re.search(r'<a href="([^"]*)" id="example-report">', page)
        assert found, f"{kind}: no example"
        drawn = client.get(html.unescape(found.group(1)), headers=api)
        assert drawn.status_code == 200, drawn.text
        assert figure(drawn.text, chart)["data"], kind
