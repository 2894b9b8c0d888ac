"""Issue 16's acceptance: a newcomer signs in to the demo with what `accord demo --json`
prints and finds every capability on a page that works, with charts where there are numbers.

The walk opens every entry of the navigation, then one detail page under each entry (the
first link in the page that goes one level deeper), in headless Chromium against a real
`accord serve`. On each page: no response of Accord's answers 4xx or 5xx, the page is HTML
and not raw JSON, and every chart is drawn by plotly.js with its table beside it. Pages
that show numbers must draw at least one chart: the ones that do not are listed below with
the reason. Set ACCORD_SCREENSHOTS to a folder to keep a screenshot of each page (the
images in docs/images/ come from `ACCORD_SCREENSHOTS=docs/images`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, Response

from tests.serverproc import ServerProcess, server_env

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

# Pages without numbers to chart: forms, lists of settings, logs.
NO_NUMBERS = {
    "/assets": "the business's pixels, properties and ad accounts: a list to manage",
    "/people": "who works in the business and their access",
    "/partners": "assets shared with and by partner agencies",
    "/business/settings": "the business's details",
    "/security": "the two-factor policy and sign-in settings",
    "/tokens": "API tokens",
    "/audit": "the audit log, a table of who did what",
    "/email/templates": "templates to edit",
    "/email/lists": "lists to manage",
    "/email/suppressions": "a list of addresses",
    "/suppressions": "a list of identifiers",
    "/leads/magnets": "coupon pools and downloads to manage",
    "/consent/proofs": "a search box for a person's proof of consent",
    "/imports": "an upload form; each import's report charts its accepted and rejected rows",
    "/leads/import": "an upload form for Lead Ads exports",
    "/email/campaigns": "campaigns and their state; each campaign's page charts its outcomes",
    "/experiments": "experiments and their state; each experiment's page charts its arms",
    "/analytics/funnels": (
        "a report builder: the chart appears once a funnel is asked (it lists the saved "
        "ones and an example, one click each); saved ones are charted on the dashboard"
    ),
    "/analytics/paths": (
        "a report builder: the chart appears once paths are asked (it lists the saved "
        "ones and an example, one click each); saved ones are charted on the dashboard"
    ),
    "/analytics/retention": (
        "a report builder: the chart appears once retention is asked (it lists the saved "
        "ones and an example, one click each); saved ones are charted on the dashboard"
    ),
    "/recommendations/catalogue": (
        "the product catalogue: a table of products to import and manage; what is "
        "recommended from it is charted on /recommendations"
    ),
    "/consent/scans": (
        "the demo has no website to scan (a scan drives Chromium over the site); each "
        "scan's page lists its findings"
    ),
}

DETAIL_SKIP = re.compile(r"/(new|edit|delete|export|download|report)(/|$)|\.csv$|\.json$")


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.strip("/").lower()).strip("-") or "root"


def _seed(tmp_path: Path) -> tuple[dict[str, str], dict[str, object]]:
    env = server_env(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'state.db'}",
        lake_url=str(tmp_path / "lake"),
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "accord.cli", "demo", "--events", "3000", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    printed: dict[str, object] = json.loads(seeded.stdout.strip().splitlines()[-1])
    return env, printed


def _visit(page: Page, url: str, problems: list[str]) -> None:
    failures: list[str] = []

    def watch(response: Response) -> None:
        if urlparse(response.url).netloc == urlparse(url).netloc and response.status >= 400:
            failures.append(f"{response.status} {response.url}")

    page.on("response", watch)
    try:
        response = page.goto(url, wait_until="networkidle")
    finally:
        page.remove_listener("response", watch)
    assert response is not None
    if response.status >= 400:
        problems.append(f"{url}: answered {response.status}")
    problems.extend(f"{url}: a resource failed: {f}" for f in failures)
    content_type = response.headers.get("content-type", "")
    body = page.inner_text("body").strip()
    if not content_type.startswith("text/html") or body.startswith(("{", "[")):
        problems.append(f"{url}: raw data instead of a page ({content_type})")


def _charts(page: Page, path: str, problems: list[str]) -> int:
    plots = page.locator(".chart-plot")
    count = plots.count()
    if count:
        page.wait_for_function(
            "() => [...document.querySelectorAll('.chart-plot')]"
            ".every(p => p.dataset.drawn === 'true' && p.querySelector('svg.main-svg'))",
            timeout=30_000,
        )
    for i in range(count):
        figure = plots.nth(i).locator("xpath=ancestor::figure[1]")
        if figure.locator(".chart-table table").count() != 1:
            problems.append(f"{path}: chart {i + 1} has no table of its numbers")
    return count


def test_a_newcomer_signs_in_to_the_demo_and_every_page_works(
    tmp_path: Path, browser: Browser
) -> None:
    env, printed = _seed(tmp_path)
    sign_in = printed["sign_in"]
    assert isinstance(sign_in, dict) and {"email", "password"} <= set(sign_in)
    shots = os.environ.get("ACCORD_SCREENSHOTS")
    with ServerProcess(env, log_path=tmp_path / "server.log") as server:
        base = server.base_url
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        # Issue 19 item 6: the Content-Security-Policy allows no inline script; a page
        # that still had one (or an inline handler) would log a violation here.
        violations: list[str] = []
        page.on(
            "console",
            lambda m: (
                violations.append(f"{page.url}: {m.text}")
                if "Content Security Policy" in m.text
                else None
            ),
        )
        page.goto(f"{base}/sign-in")
        page.fill("input[name=email]", str(sign_in["email"]))
        page.fill("input[name=password]", str(sign_in["password"]))
        page.click("main button[type=submit]")
        page.wait_for_url(re.compile(r"/app$"))

        nav = page.eval_on_selector_all("#sidenav a", "links => links.map(a => a.pathname)")
        assert len(nav) >= 20, nav
        problems: list[str] = []
        without_charts: list[str] = []
        visited: list[str] = []
        for path in nav:
            _visit(page, base + path, problems)
            visited.append(path)
            if _charts(page, path, problems) == 0 and path not in NO_NUMBERS:
                without_charts.append(path)
            if shots:
                page.screenshot(path=str(Path(shots) / f"console-{_slug(path)}.png"))
            deeper = page.eval_on_selector_all(
                "main a[href^='/']", "links => links.map(a => a.pathname)"
            )
            detail = next(
                (
                    d
                    for d in deeper
                    if d.startswith(path.rstrip("/") + "/")
                    and not DETAIL_SKIP.search(d)
                    and d not in visited
                ),
                None,
            )
            if detail is not None:
                _visit(page, base + detail, problems)
                visited.append(detail)
                _charts(page, detail, problems)
                if shots:
                    page.screenshot(path=str(Path(shots) / f"console-{_slug(path)}-detail.png"))
        context.close()
        assert not violations, "\n".join(violations)
        assert not problems, "\n".join(problems) + "\n" + server.log_tail()
        assert not without_charts, f"pages with numbers but no chart: {without_charts}"
        # Every page of the issue is reachable from the navigation.
        for expected in ("/app", "/consent", "/profiles", "/identity/reviews", "/predictions"):
            assert any(v == expected or v.startswith(expected + "/") for v in visited), expected
