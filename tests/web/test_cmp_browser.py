"""cmp.js in headless Chromium against a live Accord server that also serves a test site."""

from __future__ import annotations

import base64
import functools
import itertools
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import update

from accord.accounts.service import bootstrap
from accord.consent import config, gpp, service
from accord.consent.models import (
    NOTICE_TEXT_KEYS,
    NoticeIn,
    PropertyIn,
    PurposeIn,
    PurposeText,
    consent_notices,
)
from accord.consent.scanner import scan
from accord.consent.tcf import decode
from accord.core.errors import InvalidInput
from accord.core.settings import Settings
from accord.store.db import Store, open_store
from accord.web.app import create_app
from accord.web.cmp import default_texts
from tests.live_app import serving
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.browser

NONCE = "r4nd0mN0nce"
PROPERTY = "shop-web"
SEVEN = {
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
}
MARKETING_SCRIPT = (
    '<script type="text/plain" data-accord-purpose="marketing" nonce="{nonce}">'
    'document.cookie = "_mkt=1; path=/"; window.mktRuns = (window.mktRuns || 0) + 1;'
    "</script>"
)


def site_page(write_key: str, *, nonce: str = "") -> str:
    attr = f' nonce="{nonce}"' if nonce else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<script src="/cmp.js" data-write-key="{write_key}" data-property="{PROPERTY}"{attr}></script>
</head><body><h1>Shop</h1><a href="/site/other" id="first-link">Other page</a>
{MARKETING_SCRIPT.format(nonce=nonce)}
<iframe data-accord-purpose="marketing" data-src="/site/embed" title="Product video"></iframe>
<footer><a href="#" data-accord-open id="settings-link">Cookie settings</a></footer>
</body></html>"""


def _purpose(key: str, names: dict[str, str], **fields: Any) -> PurposeIn:
    texts = {lang: PurposeText(name=name, description=f"{name}.") for lang, name in names.items()}
    return PurposeIn(key=key, texts=texts, **fields)


# The property's configuration, made through the consent context's own service.
PURPOSES = (
    _purpose(
        "preferences",
        {"en": "Preferences", "de": "Präferenzen", "fr": "Préférences"},
        tcf_purposes=[5, 6],
        consent_mode=["functionality_storage", "personalization_storage"],
        position=1,
    ),
    _purpose(
        "statistics",
        {"en": "Statistics", "de": "Statistik", "fr": "Statistiques"},
        tcf_purposes=[7, 8, 9, 10],
        consent_mode=["analytics_storage"],
        cookies=["^_ga"],
        position=2,
    ),
    _purpose(
        "marketing",
        {"en": "Marketing", "de": "Marketing", "fr": "Marketing"},
        tcf_purposes=[1, 2, 3, 4],
        consent_mode=["ad_storage", "ad_user_data", "ad_personalization"],
        cookies=["_mkt", "^_fb"],
        position=3,
    ),
)


def _gvl_vendor(vendor_id: int, name: str, purposes: list[int], policy: str) -> dict[str, Any]:
    lists = ("legIntPurposes", "flexiblePurposes", "specialPurposes", "features")
    return {
        "id": vendor_id,
        "name": name,
        "purposes": purposes,
        **{key: [] for key in lists},
        "specialFeatures": [],
        "urls": [{"langId": "en", "privacy": policy}],
    }


# A Global Vendor List (v3 format) with the two vendors the site uses.
GVL = {
    "gvlSpecificationVersion": 3,
    "vendorListVersion": 150,
    "tcfPolicyVersion": 5,
    "lastUpdated": "2026-11-19T16:00:00Z",
    **{key: {} for key in ("purposes", "specialPurposes", "features", "specialFeatures")},
    "vendors": {
        "755": _gvl_vendor(
            755, "Google Advertising Products", [1, 2, 3, 4], "https://policies.google.com/privacy"
        ),
        "77": _gvl_vendor(77, "Comscore", [7, 8, 9, 10], "https://www.comscore.com/privacy"),
    },
}


def notice_texts(language: str) -> dict[str, str]:
    texts = {k: v for k, v in default_texts(language).items() if k in NOTICE_TEXT_KEYS}
    return {**texts, "privacy_policy_url": "https://shop.example/privacy"}


@dataclass
class Site:
    """The live Accord server (which also serves the test site) and the business behind it."""

    base: str
    store: Store
    business_id: str
    write_key: str

    def configure(self, *, regime: str = "gdpr", cmp_id: int | None = None) -> None:
        with self.store.write() as conn:
            config.update_property(
                conn,
                business_id=self.business_id,
                spec=PropertyIn(key=PROPERTY, name="Shop", cmp_id=cmp_id, publisher_cc="DE"),
            )
            config.set_geo_rule(conn, business_id=self.business_id, region="*", regime=regime)

    def ledger(self, anonymous_id: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return service.history(conn, business_id=self.business_id, subject=anonymous_id)


# The customer's site is served by the test app, but it is not an Accord page: it sends
# its own headers (inline scripts of its own, its embed framed by itself), not Accord's.
CUSTOMER_SITE = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Frame-Options": "SAMEORIGIN",
}


def _site_routes(app: FastAPI, site: list[Site]) -> None:
    @app.get("/site/page")
    async def page() -> HTMLResponse:
        return HTMLResponse(site_page(site[0].write_key), headers=CUSTOMER_SITE)

    @app.get("/site/strict")
    async def strict() -> HTMLResponse:
        csp = (
            f"default-src 'self'; script-src 'nonce-{NONCE}'; style-src 'nonce-{NONCE}'; "
            "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'"
        )
        page = site_page(site[0].write_key, nonce=NONCE)
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    @app.get("/site/embed")
    async def embed() -> HTMLResponse:
        return HTMLResponse("<p id=video>video</p>", headers=CUSTOMER_SITE)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")
    app = create_app(settings)
    holder: list[Site] = []
    _site_routes(app, holder)
    with serving(app) as base:
        store = open_store(settings.resolved_database_url(), sqlite_synchronous="NORMAL")
        keys = bootstrap(store, name="Shop")
        with store.write() as conn:
            business_id = keys.business_id
            config.create_property(
                conn, business_id=business_id, spec=PropertyIn(key=PROPERTY, name="Shop")
            )
            for purpose in PURPOSES:
                config.save_purpose(conn, business_id=business_id, spec=purpose)
            texts = {lang: notice_texts(lang) for lang in ("en", "de", "fr")}
            config.publish_notice(
                conn,
                business_id=business_id,
                property_key=PROPERTY,
                spec=NoticeIn.model_validate({"variants": [{"texts": texts}]}),
            )
        imported = httpx.post(
            f"{base}/api/consent/vendors/gvl",
            json=GVL,
            headers={"Authorization": f"Bearer {keys.admin_token}"},
        )
        assert imported.status_code == 200, imported.text
        holder.append(
            Site(base=base, store=store, business_id=business_id, write_key=keys.write_key)
        )
        holder[0].configure()
        yield holder[0]
    store.dispose()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(locale="en-GB")
    yield ctx
    ctx.close()


def open_site(context: BrowserContext, site: Site, path: str = "/site/page") -> Page:
    page = context.new_page()
    page.goto(site.base + path)
    page.locator("[role=dialog]").wait_for(timeout=15_000)
    return page


def cookie_names(context: BrowserContext) -> set[str]:
    return {c["name"] for c in context.cookies()}


def consent_calls(page: Page) -> list[list[Any]]:
    calls: list[list[Any]] = page.evaluate(
        "() => Array.from(window.dataLayer, a => Array.from(a)).filter(a => a[0] === 'consent')"
    )
    return calls


def stored_choice(context: BrowserContext) -> dict[str, Any]:
    (value,) = [c["value"] for c in context.cookies() if c["name"] == "accord_consent"]
    choice: dict[str, Any] = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    return choice


def wait_recorded(page: Page) -> None:
    assert page.evaluate("() => window.accord.consent.lastPost") is not None


def test_banner_speaks_the_browser_language_and_rejecting_is_as_easy(
    browser: Browser, site: Site
) -> None:
    context = browser.new_context(locale="de-DE")
    page = open_site(context, site)
    german = default_texts("de")
    dialog = page.get_by_role("dialog")
    assert dialog.get_attribute("aria-modal") == "true"
    assert (
        page.locator("#" + str(dialog.get_attribute("aria-labelledby"))).inner_text()
        == (german["title"])
    )
    reject = page.get_by_role("button", name=german["reject_all"])
    accept = page.get_by_role("button", name=german["accept_all"])
    assert reject.get_attribute("class") == accept.get_attribute("class")
    reject_box, accept_box = reject.bounding_box(), accept.bounding_box()
    assert reject_box and accept_box
    assert reject_box["width"] == pytest.approx(accept_box["width"], abs=1)
    assert reject_box["height"] == pytest.approx(accept_box["height"], abs=1)
    # Nothing is pre-ticked in the preference centre; necessary is on and cannot be changed.
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.endsWith('/de.json'))"
    )
    page.get_by_role("button", name=german["customise"]).click()
    switches = page.get_by_role("switch")
    assert [s.is_checked() for s in switches.all()] == [True, False, False, False]
    assert switches.first.is_disabled()
    assert page.get_by_text("Google Advertising Products").count() == 1
    # Labels the notice does not define come from Accord's German default texts.
    assert page.get_by_text(f"{german['vendors_label']} (1)").count() == 2
    assert page.get_by_text(f"({german['always_on']})").count() == 1
    context.close()


def test_reject_keeps_the_marketing_script_from_running(
    context: BrowserContext, site: Site
) -> None:
    page = open_site(context, site)
    default = consent_calls(page)[0]
    assert default[1] == "default" and set(default[2]) == SEVEN | {"wait_for_update"}
    assert default[2]["ad_storage"] == "denied"
    page.get_by_role("button", name="Reject all").click()
    wait_recorded(page)
    assert page.evaluate("() => window.mktRuns") is None
    assert "_mkt" not in cookie_names(context)
    assert page.locator("iframe[title='Product video']").get_attribute("src") is None
    assert page.get_by_role("button", name="Allow and show").is_visible()
    update = consent_calls(page)[-1]
    assert update[1] == "update" and update[2]["ad_storage"] == "denied"
    assert stored_choice(context)["p"] == ["necessary"]
    # The choice survives a reload: no banner, still blocked.
    page.reload()
    page.wait_for_function("() => window.accord.consent.get().ready")
    assert page.locator("[role=dialog]").count() == 0
    assert page.evaluate("() => window.mktRuns") is None


def test_accept_runs_it_and_sends_the_consent_mode_update(
    context: BrowserContext, site: Site
) -> None:
    page = open_site(context, site)
    page.get_by_role("button", name="Accept all").click()
    wait_recorded(page)
    assert page.evaluate("() => window.mktRuns") == 1
    assert "_mkt" in cookie_names(context)
    update = consent_calls(page)[-1]
    assert update[1] == "update"
    assert update[2] == {signal: "granted" for signal in SEVEN}
    page.frame_locator("iframe[title='Product video']").locator("#video").wait_for()
    # A marked script added after load runs at once now that marketing is granted.
    page.evaluate(
        """() => { const s = document.createElement('script'); s.type = 'text/plain';
        s.dataset.accordPurpose = 'marketing'; s.text = 'window.lateRun = true';
        document.body.appendChild(s); }"""
    )
    page.wait_for_function("() => window.lateRun === true")
    (decision,) = site.ledger(stored_choice(context)["id"])
    assert decision["source"] == "banner"
    assert decision["purposes"] == {
        "necessary": True,
        "preferences": True,
        "statistics": True,
        "marketing": True,
    }
    assert decision["vendors"] == {"755": True, "77": True}


def test_withdrawal_deletes_the_configured_cookies(context: BrowserContext, site: Site) -> None:
    page = open_site(context, site)
    page.evaluate(
        """() => { window.changes = [];
        window.accord.consent.on('change', s => window.changes.push(s.purposes.marketing)); }"""
    )
    page.get_by_role("button", name="Accept all").click()
    wait_recorded(page)
    page.evaluate(
        "() => { document.cookie = '_ga_X1=1; path=/'; document.cookie = '_fbp=1; path=/'; }"
    )
    assert {"_mkt", "_ga_X1", "_fbp"} <= cookie_names(context)
    page.get_by_role("button", name="Privacy choices").click()
    page.get_by_role("dialog").get_by_role("button", name="Reject all").click()
    wait_recorded(page)
    assert {"_mkt", "_ga_X1", "_fbp"} & cookie_names(context) == set()
    assert "accord_consent" in cookie_names(context)
    decisions = site.ledger(stored_choice(context)["id"])
    assert [d["purposes"]["marketing"] for d in decisions] == [True, False]
    assert [d["source"] for d in decisions] == ["banner", "preference_centre"]
    update = consent_calls(page)[-1]
    assert update[2]["ad_storage"] == "denied" and update[2]["analytics_storage"] == "denied"
    assert page.evaluate("() => window.changes") == [True, False]


def test_withdrawal_deletes_cookies_on_parent_domains(browser: Browser, site: Site) -> None:
    port = site.base.rsplit(":", 1)[1]
    # A browser of its own that resolves *.shop.test to the test server.
    own = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_FLAGS, "--host-resolver-rules=MAP *.shop.test 127.0.0.1"],
    )
    try:
        context = own.new_context(locale="en-GB")
        page = context.new_page()
        page.goto(f"http://www.shop.test:{port}/site/page")
        page.locator("[role=dialog]").wait_for(timeout=15_000)
        page.get_by_role("button", name="Accept all").click()
        wait_recorded(page)
        page.evaluate(
            """() => { document.cookie = '_ga=1; path=/; domain=.shop.test';
            document.cookie = '_fbc=1; path=/; domain=.www.shop.test'; }"""
        )
        set_by_trackers = {(c["name"], c["domain"]) for c in context.cookies()}
        assert {("_ga", ".shop.test"), ("_fbc", ".www.shop.test")} <= set_by_trackers
        page.evaluate("() => window.accord.consent.withdraw()")
        wait_recorded(page)
        left = {c["name"] for c in context.cookies()}
        assert left & {"_ga", "_fbc", "_mkt"} == set() and "accord_consent" in left
        (_, withdrawal) = site.ledger(stored_choice(context)["id"])
        assert withdrawal["source"] == "api"
        assert not any(v for k, v in withdrawal["purposes"].items() if k != "necessary")
    finally:
        own.close()


def test_placeholder_gives_one_click_consent_for_an_embed(
    context: BrowserContext, site: Site
) -> None:
    page = open_site(context, site)
    page.get_by_role("button", name="Reject all").click()
    wait_recorded(page)
    page.get_by_role("button", name="Allow and show").click()
    wait_recorded(page)
    page.frame_locator("iframe[title='Product video']").locator("#video").wait_for()
    assert page.evaluate("() => window.mktRuns") == 1
    state = page.evaluate("() => window.accord.consent.get().purposes")
    assert state == {
        "necessary": True,
        "preferences": False,
        "statistics": False,
        "marketing": True,
    }


def test_tc_string_from_tcfapi_decodes_in_python_to_the_same_choices(
    context: BrowserContext, site: Site
) -> None:
    site.configure(cmp_id=300)
    page = open_site(context, site)
    page.get_by_role("button", name="Customise").click()
    page.get_by_role("switch", name="Marketing").check()
    page.get_by_role("button", name="Save my choices").click()
    wait_recorded(page)
    data = page.evaluate(
        "() => new Promise(ok => window.__tcfapi('getTCData', 2, (d, success) => ok([d, success])))"
    )
    tc_data, success = data
    assert success is True
    assert tc_data["cmpId"] == 300 and tc_data["gdprApplies"] is True
    tc = decode(tc_data["tcString"])
    assert tc.cmp_id == 300 and tc.consent_language == "EN" and tc.publisher_cc == "DE"
    assert tc.purposes_consent == {1, 2, 3, 4}
    assert tc.vendor_consents == {755}
    assert tc.disclosed_vendors == {77, 755}
    assert tc.vendor_list_version == 150 and tc.is_service_specific
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert tc.created == tc.last_updated == today  # dated to the day, as the TCF policy asks
    assert {int(k) for k, v in tc_data["purpose"]["consents"].items() if v} == {1, 2, 3, 4}
    (decision,) = site.ledger(stored_choice(context)["id"])
    assert decision["tc_string"] == tc_data["tcString"]
    assert decision["source"] == "preference_centre"
    # Listeners hear later choices; rejecting everything empties the string's consents.
    page.evaluate(
        """() => { window.tcEvents = [];
        window.__tcfapi('addEventListener', 2, (d) => window.tcEvents.push(d)); }"""
    )
    page.evaluate("() => window.accord.consent.rejectAll()")
    wait_recorded(page)
    last = page.evaluate("() => window.tcEvents[window.tcEvents.length - 1]")
    assert last["eventStatus"] == "useractioncomplete"
    rejected = decode(last["tcString"])
    assert rejected.purposes_consent == frozenset() and rejected.vendor_consents == frozenset()
    ping = page.evaluate("() => new Promise(ok => window.__tcfapi('ping', 2, ok))")
    assert ping["cmpLoaded"] is True and ping["cmpId"] == 300
    # Frames reach the API through the locator frame and postMessage.
    answer = page.evaluate(
        """() => new Promise(ok => {
          window.addEventListener('message', e => {
            if (e.data.__tcfapiReturn) ok(e.data.__tcfapiReturn); });
          window.frames['__tcfapiLocator'].parent.postMessage({__tcfapiCall:
            {command: 'getTCData', parameter: [755], version: 2, callId: 'c1'}}, '*');
        })"""
    )
    assert answer["callId"] == "c1" and answer["success"] is True
    assert answer["returnValue"]["vendor"]["consents"] == {"755": False}
    remove = """() => new Promise(ok => window.__tcfapi(
        'removeEventListener', 2, ok, window.tcEvents[0].listenerId))"""
    assert page.evaluate(remove) is True
    assert page.evaluate(remove) is False  # already gone


def test_every_combination_of_choices_round_trips_through_the_tc_string(
    context: BrowserContext, site: Site
) -> None:
    site.configure(cmp_id=300)
    page = open_site(context, site)
    tcf_of = {"preferences": {5, 6}, "statistics": {7, 8, 9, 10}, "marketing": {1, 2, 3, 4}}
    vendor_of = {"statistics": 77, "marketing": 755}
    for combination in itertools.product([False, True], repeat=3):
        choices = dict(zip(tcf_of, combination, strict=True))
        page.evaluate("(choices) => window.accord.consent.set(choices)", choices)
        wait_recorded(page)
        tc_string = page.evaluate("() => window.accord.consent.get().tcString")
        tc = decode(tc_string)
        granted = {p for p, on in choices.items() if on}
        expected = set().union(*(tcf_of[p] for p in granted)) | ({1} if granted else set())
        assert tc.purposes_consent == expected, choices
        assert tc.vendor_consents == {vendor_of[p] for p in granted if p in vendor_of}, choices
        assert tc.purposes_li_transparency == frozenset()
        (last, *_) = reversed(site.ledger(stored_choice(context)["id"]))
        assert last["tc_string"] == tc_string
        assert {k: v for k, v in last["purposes"].items() if k != "necessary"} == choices


def test_no_tcf_api_without_a_registered_cmp_id(context: BrowserContext, site: Site) -> None:
    page = open_site(context, site)
    page.get_by_role("button", name="Accept all").click()
    wait_recorded(page)
    assert page.evaluate("() => typeof window.__tcfapi") == "undefined"
    assert page.evaluate("() => window.accord.consent.get().tcString") is None
    (decision,) = site.ledger(stored_choice(context)["id"])
    assert decision["tc_string"] is None


def test_gpp_api_and_gpc_under_ccpa(browser: Browser, site: Site) -> None:
    site.configure(regime="ccpa")
    context = browser.new_context(locale="en-US")
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    page = open_site(context, site)
    # Opt-out regime with GPC: sale and sharing are refused before any choice.
    assert page.evaluate("() => window.accord.consent.get().purposes") == {
        "necessary": True,
        "preferences": True,
        "statistics": True,
        "marketing": False,
    }
    assert page.evaluate("() => window.mktRuns") is None
    section = page.evaluate(
        "() => new Promise(ok => window.__gpp('getSection', (v, s) => ok(v), 'usnat'))"
    )
    assert section["SaleOptOut"] == 1 and section["Gpc"] is True
    ping = page.evaluate("() => new Promise(ok => window.__gpp('ping', ok))")
    assert ping["applicableSections"] == [7] and ping["gppString"].startswith("DBABLA~")
    section_in_python = gpp.decode(ping["gppString"]).usnat
    assert section_in_python is not None
    assert section_in_python.sale_opt_out == 1
    assert section_in_python.targeted_advertising_opt_out == 1
    assert section_in_python.gpc is True and section_in_python.version == 2
    field_value = page.evaluate(
        "() => new Promise(ok => window.__gpp('getField', ok, 'usnat.TargetedAdvertisingOptOut'))"
    )
    assert field_value == 1
    # The postMessage interface answers a frame that cannot call __gpp directly.
    answer = page.evaluate(
        """() => new Promise(ok => {
          window.addEventListener('message', e => {
            if (e.data.__gppReturn) ok(e.data.__gppReturn); });
          window.frames['__gppLocator'].parent.postMessage({__gppCall:
            {command: 'hasSection', parameter: 'usnat', version: '1.1', callId: 7}}, '*');
        })"""
    )
    assert answer == {"returnValue": True, "success": True, "callId": 7}
    # "Do Not Sell or Share" sits in the banner and opts out in one click.
    page.get_by_role("button", name="Do Not Sell or Share My Personal Information").click()
    wait_recorded(page)
    (decision,) = site.ledger(stored_choice(context)["id"])
    assert decision["regime"] == "ccpa" and decision["gpc"] is True
    assert decision["purposes"]["marketing"] is False and decision["sale_opt_out"] is True
    assert decision["purposes"]["statistics"] is True
    context.close()


def test_strict_csp_with_nonces(context: BrowserContext, site: Site) -> None:
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "(window.cspViolations = window.cspViolations || []).push(e.violatedDirective))"
    )
    page.goto(site.base + "/site/strict")
    page.locator("[role=dialog]").wait_for(timeout=15_000)
    assert page.evaluate("() => document.getElementById('accord-cmp-style').nonce") == NONCE
    # The banner is styled, so the nonce-bearing <style> was applied.
    position = page.evaluate("() => getComputedStyle(document.querySelector('.acc')).position")
    assert position == "fixed"
    page.get_by_role("button", name="Accept all").click()
    wait_recorded(page)
    assert page.evaluate("() => window.mktRuns") == 1
    assert page.evaluate("() => window.cspViolations || []") == []
    assert violations == []


def test_keyboard_only(context: BrowserContext, site: Site) -> None:
    page = open_site(context, site)
    focused = (
        "() => document.activeElement.dataset.accord || document.activeElement.dataset.purpose"
        " || document.activeElement.id"
        " || document.activeElement.getAttribute('role')"
    )
    in_dialog = "() => !!document.activeElement.closest('[role=dialog]')"

    def tab_to(target: str, limit: int) -> None:
        for _ in range(limit):
            if page.evaluate(focused) == target:
                return
            page.keyboard.press("Tab")
        assert page.evaluate(focused) == target

    assert page.evaluate(focused) == "dialog"  # focus moved into the banner
    tab_to("reject", 5)
    # Escape without a choice neither dismisses the banner nor moves focus.
    page.keyboard.press("Escape")
    assert page.locator("[role=dialog]").count() == 1 and page.evaluate(focused) == "reject"
    page.keyboard.press("Enter")
    wait_recorded(page)
    assert page.locator("[role=dialog]").count() == 0
    assert stored_choice(context)["d"] == ["preferences", "statistics", "marketing"]
    # The footer link, reached by Tab, reopens the preference centre.
    tab_to("settings-link", 12)
    page.keyboard.press("Enter")
    page.locator("[role=dialog]").wait_for()
    assert page.get_by_role("dialog").get_attribute("aria-labelledby")
    for _ in range(15):  # more stops than the dialog has: focus wraps around inside it
        page.keyboard.press("Tab")
        assert page.evaluate(in_dialog)
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate(in_dialog)
    # Escape closes without saving and focus returns to the link.
    page.keyboard.press("Escape")
    assert page.locator("[role=dialog]").count() == 0
    assert page.evaluate("() => document.activeElement.id") == "settings-link"
    # Space toggles a switch, Enter on "save" records it.
    page.keyboard.press("Enter")
    page.locator("[role=dialog]").wait_for()
    tab_to("marketing", 15)
    page.keyboard.press("Space")
    tab_to("save", 15)
    page.keyboard.press("Enter")
    wait_recorded(page)
    assert stored_choice(context)["p"] == ["necessary", "marketing"]
    # Visible focus: the focused button draws an outline.
    tab_to("reopen", 12)
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


def test_the_scanner_finds_nothing_before_consent_on_a_site_using_the_banner(site: Site) -> None:
    # Its own Playwright runs in another thread: this one already drives the session browser.
    with ThreadPoolExecutor(max_workers=1) as pool:
        report = pool.submit(
            scan, f"{site.base}/site/page", pages=1, chromium=CHROMIUM, fetch_third_party=False
        ).result()
    assert report.consent_action == "accord.consent.acceptAll()"
    assert report.flagged == []
    found = {(f.kind, f.name): f for f in report.findings}
    assert found[("cookie", "_mkt")].phase == "after_accept"
    banner_cookie = found[("cookie", "accord_consent")]
    assert banner_cookie.phase == "after_accept" and banner_cookie.purpose == "necessary"


def test_embeds_added_after_load_get_a_placeholder_then_load(
    context: BrowserContext, site: Site
) -> None:
    page = open_site(context, site)
    page.get_by_role("button", name="Reject all").click()
    wait_recorded(page)
    page.evaluate(
        """() => { const f = document.createElement('iframe'); f.title = 'Map';
        f.dataset.accordPurpose = 'marketing'; f.dataset.src = '/site/embed';
        document.body.appendChild(f); }"""
    )
    assert page.get_by_role("button", name="Allow and show").count() == 2
    assert page.locator("iframe[title=Map]").get_attribute("src") is None
    page.evaluate("() => window.accord.consent.set({marketing: true})")
    wait_recorded(page)
    page.frame_locator("iframe[title=Map]").locator("#video").wait_for()
    assert page.get_by_role("button", name="Allow and show").count() == 0


def test_a_site_on_another_origin_uses_the_banner_through_cors(
    context: BrowserContext, site: Site, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text(
        site_page(site.write_key).replace('src="/cmp.js"', f'src="{site.base}/cmp.js"'),
        encoding="utf-8",
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    other = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        page = context.new_page()
        page.goto(f"http://localhost:{other.server_address[1]}/index.html")
        page.locator("[role=dialog]").wait_for(timeout=15_000)
        page.get_by_role("button", name="Accept all").click()
        assert page.evaluate("() => window.accord.consent.lastPost.then(r => !!r.record_id)")
        assert page.evaluate("() => window.mktRuns") == 1
        (decision,) = site.ledger(stored_choice(context)["id"])
        assert decision["purposes"]["marketing"] is True
        assert {c["domain"] for c in context.cookies() if c["name"] == "accord_consent"} == {
            "localhost"
        }
    finally:
        other.shutdown()
        other.server_close()


def test_a_language_the_notice_lacks_falls_back_to_its_default(
    browser: Browser, site: Site
) -> None:
    context = browser.new_context(locale="it-IT")
    page = open_site(context, site)
    assert page.get_by_role("button", name="Accept all").is_visible()
    assert page.evaluate("() => window.accord.consent.get().language") == "en"
    context.close()


def test_links_from_the_configuration_are_never_javascript(
    context: BrowserContext, site: Site
) -> None:
    texts = {**notice_texts("en"), "privacy_policy_url": "javascript:alert(document.cookie)"}
    # Such a link is refused when saved (issue 19 item 8) ...
    with pytest.raises(InvalidInput), site.store.write() as conn:
        config.publish_notice(
            conn,
            business_id=site.business_id,
            property_key=PROPERTY,
            spec=NoticeIn.model_validate({"variants": [{"texts": {"en": texts}}]}),
        )
    # ... and cmp.js still never makes a link of one stored before that check existed.
    with site.store.write() as conn:
        published = config.publish_notice(
            conn,
            business_id=site.business_id,
            property_key=PROPERTY,
            spec=NoticeIn.model_validate({"variants": [{"texts": {"en": notice_texts("en")}}]}),
        )
        conn.execute(
            update(consent_notices)
            .where(
                consent_notices.c.business_id == site.business_id,
                consent_notices.c.version == published["version"],
            )
            .values(texts=json.dumps({"en": texts}))
        )
    page = open_site(context, site)
    assert page.get_by_role("dialog").locator("a").count() == 0
    assert page.get_by_text(texts["description"]).is_visible()


GPC_ON = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"


def test_item_14_gpc_after_an_opt_in_overrides_it_until_the_visitor_consents_again(
    browser: Browser, site: Site
) -> None:
    site.configure(regime="ccpa")
    context = browser.new_context(locale="en-US")
    first = open_site(context, site)
    assert first.locator("[data-accord=gpc-notice]").count() == 0  # no GPC, no notice
    first.get_by_role("button", name="Accept all").click()
    wait_recorded(first)
    assert stored_choice(context)["g"] == 0
    assert first.evaluate("() => window.mktRuns") == 1
    # The same visitor comes back with Global Privacy Control on (header and navigator).
    context.add_init_script(GPC_ON)
    context.set_extra_http_headers({"Sec-GPC": "1"})
    back = open_site(context, site)  # the banner opens again: the opt-in no longer stands
    assert back.evaluate("() => window.accord.consent.get().purposes.marketing") is False
    assert back.evaluate("() => window.mktRuns") is None
    english = default_texts("en")["gpc_notice"]
    assert back.locator("[data-accord=gpc-notice]").inner_text() == english
    # Told, the visitor opts in again: that choice, made with GPC on, stands.
    back.get_by_role("button", name="Accept all").click()
    wait_recorded(back)
    assert stored_choice(context)["g"] == 1
    assert back.evaluate("() => window.mktRuns") == 1
    latest = site.ledger(stored_choice(context)["id"])[-1]
    assert latest["gpc"] is True and latest["purposes"]["marketing"] is True
    again = context.new_page()
    again.goto(site.base + "/site/page")
    again.wait_for_function("() => window.mktRuns === 1")
    assert again.locator("[role=dialog]").count() == 0
    context.close()
    # The notice speaks the visitor's language.
    german = browser.new_context(locale="de-DE", extra_http_headers={"Sec-GPC": "1"})
    german.add_init_script(GPC_ON)
    page = open_site(german, site)
    notice = page.locator("[data-accord=gpc-notice]").inner_text()
    assert notice == default_texts("de")["gpc_notice"]
    german.close()
