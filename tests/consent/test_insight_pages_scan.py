"""The cookie scanner pages: "Scan now" queues a `consent.scan` job (nothing is scanned in
the request), the job stores the run with its findings, and "Add to the cookie list"
changes what the banner declares."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.consent import config, scans
from accord.consent.models import PropertyIn, consent_scans
from accord.consent.scanner import Finding, ScanReport
from accord.core.errors import NotFound
from accord.core.outbound import OutboundPolicy
from accord.core.settings import Settings
from accord.process.jobs import default_kinds
from accord.process.models import jobs
from accord.process.scheduler import Scheduler
from accord.store.db import Store
from tests.consent.test_insight_pages import html
from tests.consent.test_scanner import fixture_site  # noqa: F401 - the local site fixture

JOB = "consent.scan"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The fixture site listens on loopback: the operator allows it here."""
    return settings.model_copy(update={"outbound_allow": "127.0.0.1"})


def make_property(store: Store, business_id: str) -> dict[str, Any]:
    with store.write() as conn:
        return config.create_property(
            conn, business_id=business_id, spec=PropertyIn(key="shop-web", name="Shop")
        )


def scan_now(client: TestClient, keys: Bootstrap, url: str, **fields: str) -> str:
    """Post the form; returns the scan's id from the redirect."""
    data = {"property": "shop-web", "url": url, "pages": "5", **fields}
    posted = client.post(
        "/consent/scans", data=data, headers=html(keys.admin_token), follow_redirects=False
    )
    assert posted.status_code == 303, posted.text
    found = re.match(r"/consent/scans/(scan_[0-9a-f]+)\?notice=", posted.headers["location"])
    assert found, posted.headers["location"]
    return found.group(1)


def run_scan_jobs(store: Store, settings: Settings) -> None:
    """What the worker's scheduler does, limited to the scan kind."""
    kinds = {JOB: default_kinds()[JOB]}
    Scheduler(store, settings, kinds, concurrency=1).run_until_idle(timeout=180)


def row_of(page: str, name: str) -> str:
    found = re.search(
        rf'<tr data-finding="\d+" data-name="{re.escape(name)}"[^>]*>.*?</tr>', page, re.S
    )
    assert found, f"no finding {name!r}"
    return found.group(0)


def test_scan_now_queues_a_job_and_never_scans_in_the_request(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    prop = make_property(store, keys.business_id)
    scan_id = scan_now(client, keys, "http://127.0.0.1:9/", fetch_third_party="on")
    with store.read() as conn:
        scan = conn.execute(select(consent_scans).where(consent_scans.c.id == scan_id)).one()
        job = conn.execute(
            select(jobs).where(jobs.c.name == JOB, jobs.c.target == prop["id"])
        ).one()
    assert scan.status == "queued" and scan.fetch_third_party and scan.max_pages == 5
    assert job.next_due_at is not None and job.business_id == keys.business_id
    page = client.get(f"/consent/scans/{scan_id}", headers=html(keys.admin_token))
    assert page.status_code == 200
    assert '<span class="badge muted" id="scan-status">queued</span>' in page.text


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"url": "ftp://shop.example/"}, "url"),
        ({"url": ""}, "url"),
        ({"pages": "0"}, "pages"),
        ({"pages": "many"}, "pages"),
        ({"pages": "999"}, "pages"),
        ({"property": "nowhere"}, "property"),
    ],
)
def test_a_bad_scan_request_is_refused_next_to_its_field_and_kept(
    client: TestClient, keys: Bootstrap, store: Store, data: dict[str, str], field: str
) -> None:
    make_property(store, keys.business_id)
    form = {"property": "shop-web", "url": "https://shop.example/", "pages": "3", **data}
    page = client.post("/consent/scans", data=form, headers=html(keys.admin_token))
    assert page.status_code == 400
    assert f'id="e-{field}"' in page.text
    if form["url"]:
        assert f'value="{form["url"]}"' in page.text
    with store.read() as conn:
        assert conn.execute(select(consent_scans)).first() is None


def test_a_failed_scan_is_stored_with_its_reason(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    """A scan the browser cannot carry out is the scan's outcome, shown on its page."""
    prop = make_property(store, keys.business_id)
    with store.write() as conn:
        queued = scans.request_scan(
            conn,
            business_id=keys.business_id,
            property_key="shop-web",
            url="https://shop.example/",
            pages=1,
            outbound=OutboundPolicy(),
        )

    def broken(url: str, **_: Any) -> ScanReport:
        raise RuntimeError("the browser crashed")

    counts = scans.run_waiting(
        store, property_id=prop["id"], outbound=OutboundPolicy(), scanner=broken
    )
    assert counts["scans"] == 1 and counts["failed"] == 1
    with store.read() as conn:
        stored = scans.get_scan(conn, business_id=keys.business_id, scan_id=queued["id"])
    assert stored["status"] == "failed" and "browser crashed" in stored["error"]
    # Nothing waits any more: running again does nothing.
    assert (
        scans.run_waiting(store, property_id=prop["id"], outbound=OutboundPolicy(), scanner=broken)[
            "scans"
        ]
        == 0
    )


def test_declaring_a_request_adds_its_host_as_a_vendor(store: Store, keys: Bootstrap) -> None:
    prop = make_property(store, keys.business_id)
    with store.write() as conn:
        queued = scans.request_scan(
            conn,
            business_id=keys.business_id,
            property_key="shop-web",
            url="https://s.test/",
            outbound=OutboundPolicy(),
        )
    report = ScanReport(url="https://s.test/", pages=["https://s.test/"], consent_action=None)
    report.findings.append(
        Finding(
            kind="request",
            name="cdn.unknown-tracker.test",
            domain="cdn.unknown-tracker.test",
            page="https://s.test/",
            phase="after_accept",
            third_party=True,
            vendor=None,
            purpose=None,
            flagged=False,
            reason="not in the catalogue",
        )
    )
    scans.run_waiting(
        store, property_id=prop["id"], outbound=OutboundPolicy(), scanner=lambda url, **_: report
    )
    with store.write() as conn:
        (finding,) = scans.findings(conn, business_id=keys.business_id, scan_id=queued["id"])
        assert not finding["declared"]
        with pytest.raises(NotFound):  # a finding is declared from its own scan only
            scans.declare(
                conn,
                business_id=keys.business_id,
                scan_id="scan_other",
                finding_id=finding["id"],
                purpose="marketing",
            )
        changed = scans.declare(
            conn, business_id=keys.business_id, finding_id=finding["id"], purpose="marketing"
        )
        assert changed == {"cookie": None, "vendor": "cdn.unknown-tracker.test"}
        (finding,) = scans.findings(conn, business_id=keys.business_id, scan_id=queued["id"])
        vendors = config.list_vendors(conn, business_id=keys.business_id)
    assert finding["declared"]
    assert [(v["id"], v["purposes"]) for v in vendors] == [
        ("cdn-unknown-tracker-test", ["marketing"])
    ]


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_the_scan_job_stores_findings_and_one_click_declares_them(
    client: TestClient,
    keys: Bootstrap,
    store: Store,
    settings: Settings,
    fixture_site: str,  # noqa: F811
) -> None:
    make_property(store, keys.business_id)
    scan_id = scan_now(client, keys, f"{fixture_site}/")  # third parties blocked: offline
    run_scan_jobs(store, settings)

    page = client.get(f"/consent/scans/{scan_id}", headers=html(keys.admin_token))
    assert page.status_code == 200
    assert 'id="scan-status">succeeded</span>' in page.text, page.text
    assert "clicked the button &#39;Accept all&#39;" in page.text
    ga = row_of(page.text, "_ga")
    assert "Google Analytics" in ga and "flagged" in ga
    assert 'data-declared="yes"' in ga and "under statistics" in ga  # `^_ga` is declared
    hotjar = row_of(page.text, "_hjSessionUser_1")
    assert 'data-declared="no"' in hotjar and "Hotjar" in hotjar and "not listed" in hotjar
    pixel = row_of(page.text, "connect.facebook.net")
    assert 'data-declared="no"' in pixel and "script / request" in pixel
    assert "data-chart=" in page.text and 'id="findings-by-purpose"' in page.text

    listing = client.get("/consent/scans", headers=html(keys.admin_token))
    assert f'data-scan="{scan_id}"' in listing.text and 'id="scan-findings"' in listing.text

    finding_id = re.search(r'data-finding="(\d+)"', hotjar)
    assert finding_id
    action = f"/consent/scans/{scan_id}/findings/{finding_id.group(1)}/declare"
    bad = client.post(action, data={"purpose": "nothing"}, headers=html(keys.admin_token))
    assert bad.status_code == 400 and "unknown purpose" in bad.text
    declared = client.post(
        action,
        data={"purpose": "statistics"},
        headers=html(keys.admin_token),
        follow_redirects=False,
    )
    assert declared.status_code == 303
    assert "notice=" in declared.headers["location"]
    with store.read() as conn:
        purposes = {p["key"]: p for p in config.list_purposes(conn, business_id=keys.business_id)}
        vendors = config.list_vendors(conn, business_id=keys.business_id)
    assert "_hjSessionUser_1" in purposes["statistics"]["cookies"]
    assert [(v["name"], v["purposes"]) for v in vendors] == [("Hotjar", ["statistics"])]
    page = client.get(unquote(declared.headers["location"]), headers=html(keys.admin_token))
    assert 'data-declared="yes"' in row_of(page.text, "_hjSessionUser_1")
    assert "Declared cookie _hjSessionUser_1 under statistics and vendor Hotjar" in page.text
    # The banner's configuration lists the vendor at once.
    public = client.get(
        "/v1/consent/config", params={"writeKey": keys.write_key, "property": "shop-web"}
    )
    assert "Hotjar" in {v["name"] for v in public.json()["vendors"]}


def test_item_1_ssrf_a_scan_of_an_internal_address_is_refused(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    make_property(store, keys.business_id)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.8/"):
        form = {"property": "shop-web", "url": url, "pages": "1"}
        page = client.post("/consent/scans", data=form, headers=html(keys.admin_token))
        assert page.status_code == 400
        assert 'id="e-url"' in page.text and "ACCORD_OUTBOUND_ALLOW" in page.text
    with store.read() as conn:
        assert conn.execute(select(consent_scans)).first() is None
