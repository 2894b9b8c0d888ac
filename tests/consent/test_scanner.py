"""The cookie scanner: catalogue classification (pure) and a crawl of a local fixture site."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from accord.cli import app
from accord.consent.scanner import (
    Sighting,
    classify,
    is_third_party,
    load_catalogue,
    same_origin_links,
    scan,
)
from tests.web.conftest import CHROMIUM

FIXTURE_SITE = Path(__file__).parent / "fixtures_site"
T = TypeVar("T")
OFFLINE = ["--chromium", CHROMIUM, "--no-fetch-third-party"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        # localhost redirects to 127.0.0.1, as a site's http:// redirects to https://www.
        host, _, port = self.headers.get("Host", "").partition(":")
        if host == "localhost":
            self.send_response(301)
            self.send_header("Location", f"http://127.0.0.1:{port}{self.path}")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


def in_own_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Playwright's sync API refuses a thread where another sync Playwright already runs
    (the browser tests' session fixture may): give each scan a thread of its own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


@pytest.fixture
def fixture_site() -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(FIXTURE_SITE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_catalogue_knows_the_common_trackers() -> None:
    catalogue = load_catalogue()
    cases = {
        "_ga": ("Google Analytics", "statistics"),
        "_ga_ABC123": ("Google Analytics", "statistics"),
        "_gcl_au": ("Google Ads", "marketing"),
        "_fbp": ("Meta Pixel", "marketing"),
        "_hjSessionUser_123": ("Hotjar", "statistics"),
        "_ttp": ("TikTok Pixel", "marketing"),
        "li_fat_id": ("LinkedIn Insight Tag", "marketing"),
        "_clck": ("Microsoft Clarity", "statistics"),
        "accord_consent": ("Accord consent banner", "necessary"),
    }
    for name, (vendor, purpose) in cases.items():
        tracker = catalogue.cookie(name)
        assert tracker is not None, name
        assert (tracker.vendor, tracker.purpose) == (vendor, purpose), name
    assert catalogue.cookie("cart_id") is None
    assert catalogue.cookie("x_ga") is None  # ^-patterns anchor at the start
    host = catalogue.host("region1.google-analytics.com")
    assert host is not None and host.vendor == "Google Analytics"
    host = catalogue.host("www.googletagmanager.com")
    assert host is not None and host.vendor == "Google Tag Manager"
    assert catalogue.host("notgoogle-analytics.com") is None
    clarity = catalogue.host("www.clarity.ms")
    assert clarity is not None and clarity.vendor == "Microsoft Clarity"


@given(st.from_regex(r"\A_ga_[A-Z0-9]{1,12}\Z"))
def test_every_ga4_property_cookie_is_google_analytics(name: str) -> None:
    tracker = load_catalogue().cookie(name)
    assert tracker is not None and tracker.vendor == "Google Analytics"


@given(st.from_regex(r"\A[a-z]{1,20}\Z"), st.sampled_from(["shop.example", "example.org"]))
def test_subdomains_are_first_party_and_other_sites_are_not(label: str, site: str) -> None:
    assert not is_third_party(f"{label}.{site}", site)
    assert not is_third_party(f"www.{site}", site)
    assert is_third_party(f"{site}.{label}x", site)


def test_classify_flags_only_what_comes_before_consent() -> None:
    page = "https://shop.example/"
    sightings = [
        Sighting("cookie", "_ga", "shop.example", page, "before_consent"),
        Sighting("cookie", "PHPSESSID", "shop.example", page, "before_consent"),
        Sighting("cookie", "mystery", "shop.example", page, "before_consent"),
        Sighting("cookie", "_fbp", "shop.example", page, "after_accept"),
        Sighting("cookie", "_ga", "shop.example", page, "after_accept"),  # seen before: once
        Sighting("request", "cdn.example.net", "cdn.example.net", page, "before_consent"),
        Sighting("request", "bat.bing.com", "bat.bing.com", page, "before_consent"),
    ]
    findings = {
        f.name: f for f in classify(sightings, site="shop.example", catalogue=load_catalogue())
    }
    assert len(findings) == 6
    assert findings["_ga"].flagged and findings["_ga"].phase == "before_consent"
    assert not findings["PHPSESSID"].flagged and findings["PHPSESSID"].purpose == "necessary"
    assert findings["mystery"].flagged and "not in the catalogue" in findings["mystery"].reason
    assert not findings["_fbp"].flagged and findings["_fbp"].vendor == "Meta Pixel"
    assert not findings["cdn.example.net"].flagged and findings["cdn.example.net"].third_party
    assert findings["bat.bing.com"].flagged


_sightings = st.builds(
    Sighting,
    kind=st.sampled_from(["cookie", "local_storage", "request"]),
    name=st.sampled_from(["_ga", "_fbp", "PHPSESSID", "accord_consent", "x", "bat.bing.com"]),
    domain=st.sampled_from(["shop.example", "www.shop.example", "bat.bing.com", "cdn.example.net"]),
    page=st.just("https://shop.example/"),
    phase=st.sampled_from(["before_consent", "after_accept"]),
)


@given(st.lists(_sightings, max_size=30))
def test_only_first_sightings_before_consent_are_ever_flagged(sightings: list[Sighting]) -> None:
    findings = classify(sightings, site="shop.example", catalogue=load_catalogue())
    firsts: dict[tuple[str, str, str], Sighting] = {}
    for s in sightings:
        firsts.setdefault((s.kind, s.name, s.domain), s)
    assert [(f.kind, f.name, f.domain) for f in findings] == list(firsts)
    for f in findings:
        assert f.phase == firsts[(f.kind, f.name, f.domain)].phase
        if f.flagged:
            assert f.phase == "before_consent" and f.purpose != "necessary"
        elif f.phase == "before_consent" and f.kind != "request":
            assert f.purpose == "necessary"


def test_same_origin_links_drop_fragments_and_other_origins() -> None:
    links = same_origin_links(
        ["https://a.test/x#top", "https://b.test/", "mailto:me@a.test", "https://a.test:8443/"],
        "https://a.test",
    )
    assert links == ["https://a.test/x"]


@pytest.mark.browser
def test_scan_of_the_fixture_site(fixture_site: str) -> None:
    start = fixture_site.replace("127.0.0.1", "localhost")
    report = in_own_thread(scan, f"{start}/", pages=5, chromium=CHROMIUM, fetch_third_party=False)
    assert report.pages[0] == f"{fixture_site}/"  # where it landed
    assert sorted(report.pages[1:]) == [f"{fixture_site}/bad.html", f"{fixture_site}/good.html"]
    assert report.consent_action == "clicked the button 'Accept all'"
    by_name = {(f.kind, f.name): f for f in report.findings}
    ga = by_name[("cookie", "_ga")]
    assert ga.flagged and ga.phase == "before_consent" and ga.page.endswith("/bad.html")
    assert ga.vendor == "Google Analytics"
    ga_request = by_name[("request", "www.google-analytics.com")]
    assert ga_request.flagged and ga_request.third_party
    session = by_name[("cookie", "PHPSESSID")]
    assert session.phase == "before_consent" and not session.flagged
    fbp = by_name[("cookie", "_fbp")]
    assert fbp.phase == "after_accept" and not fbp.flagged and fbp.purpose == "marketing"
    hotjar = by_name[("local_storage", "_hjSessionUser_1")]
    assert hotjar.phase == "after_accept" and hotjar.vendor == "Hotjar"
    pixel = by_name[("request", "connect.facebook.net")]
    assert pixel.phase == "after_accept" and not pixel.flagged
    assert {(f.kind, f.name) for f in report.flagged} == {
        ("cookie", "_ga"),
        ("request", "www.google-analytics.com"),
    }


@pytest.mark.browser
def test_cli_scan_prints_json_and_fails_when_something_is_flagged(fixture_site: str) -> None:
    runner = CliRunner()
    result = in_own_thread(
        runner.invoke,
        app,
        ["consent", "scan", f"{fixture_site}/good.html", "--pages", "1", "--json", *OFFLINE],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["flagged"] == 0 and report["pages"] == [f"{fixture_site}/good.html"]
    result = in_own_thread(
        runner.invoke,
        app,
        ["consent", "scan", f"{fixture_site}/bad.html", "--pages", "1", *OFFLINE],
    )
    assert result.exit_code == 1
    assert "_ga" in result.stdout and "Google Analytics" in result.stdout
    result = CliRunner().invoke(app, ["consent", "scan", "ftp://example.com/"])
    assert result.exit_code == 2 and "not an http(s) URL" in result.output
