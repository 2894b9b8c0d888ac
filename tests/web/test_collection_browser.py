"""Browser collection from another origin in Chromium: accord.js, analytics.js, RudderStack.

One Accord server (127.0.0.1:A) and one customer site (localhost:B, a second origin; the
same port at 127.0.0.1:B serves as a site whose origin the pixel does not allow). Chromium
talks to Accord directly: no request interception, so CORS preflights are real.

`@segment/analytics-next` 1.84.3 and `@rudderstack/analytics-js` 3.34.1 come unchanged from
npm: `tests/web/npm_libs.ensure()` runs the machine's `npm install` into `.cache/npm-libs`
(pinned by tests/web/npm-libs/package.json; `make test` runs it first through
scripts/system-deps.sh). The site serves the packages' own bundles (analytics-next's
`dist/umd`, RudderStack's `dist/npm/modern/bundled/umd`); every request a page makes is
recorded and must go to one of the two origins, never a CDN.

Accord's outage is a switch in front of the app that answers 503 to collection, as a
proxy in front of a stopped server would; the browser being offline is Chromium's own.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request
from sqlalchemy import func, select
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from accord.accounts.service import bootstrap
from accord.collect.models import inbox
from accord.consent import config
from accord.consent.models import NoticeIn, PropertyIn
from accord.core.settings import Settings
from accord.process.worker import drain
from accord.store.db import Store, open_store
from accord.web.app import create_app
from tests.live_app import free_port, serving
from tests.web import npm_libs
from tests.web.test_cmp_browser import PROPERTY, PURPOSES, notice_texts

pytestmark = pytest.mark.browser

NONCE = "t4gN0nce"
# The site is under the GDPR: the libraries' events carry the visitor's opt-in.
CONSENT = json.dumps(
    {"categoryPreferences": {"statistics": True, "marketing": True, "preferences": True}}
)


class Outage:
    """ASGI switch: while on, collection answers 503 (Accord down behind its proxy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.on = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on and scope["type"] == "http" and scope["path"] in ("/v1/batch", "/v1/b"):
            await Response("down", status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@dataclass
class World:
    accord: str
    site: str
    other_site: str
    store: Store
    settings: Settings
    write_key: str
    pixel_id: str
    token: str
    outage: Outage
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.accord + path, headers=headers, timeout=10, **kwargs)

    def profile(self, **query: str) -> dict[str, Any] | None:
        drain(
            self.store,
            lake_url=self.settings.resolved_lake_url(),
            batch_size=100,
            lease=timedelta(seconds=60),
        )
        found = self.api("GET", "/api/profiles", params=query)
        if found.status_code == 404:
            return None
        assert found.status_code == 200, found.text
        data: dict[str, Any] = found.json()
        return data

    def wait_profile(
        self, check: Callable[[dict[str, Any]], bool], timeout: float = 20, **query: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.profile(**query)
            if found is not None and check(found):
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"no profile {query} passing the check: {found}")
            time.sleep(0.2)

    def stored(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(select(inbox.c.payload)).all()
        events = [json.loads(r.payload) for r in rows]
        return [e for e in events if predicate(e)]

    def inbox_count(self) -> int:
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def _handler(world: list[World]) -> type[SimpleHTTPRequestHandler]:
    libs = npm_libs.ensure()

    class Site(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in world[0].pages:
                body, headers = world[0].pages[path]
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body.encode())
                return
            prefixes = {
                "/segment-cdn/analytics-next/bundles/": libs / npm_libs.SEGMENT_UMD,
                "/libs/segment/": libs / npm_libs.SEGMENT_UMD,
            }
            for prefix, folder in prefixes.items():
                if path.startswith(prefix):
                    return self._file(folder / path.removeprefix(prefix))
            if path == "/libs/rudderstack.js":
                return self._file(libs / npm_libs.RUDDERSTACK_UMD)
            self.send_error(404)

        def _file(self, file: Path) -> None:
            if ".." in file.parts or not file.is_file():
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            self.end_headers()
            self.wfile.write(file.read_bytes())

    return Site


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("collection-browser")
    # Short caches: the test changes the pixel's allowed origins and wants them at once.
    settings = Settings(data_dir=data, sqlite_synchronous="NORMAL", write_key_cache_seconds=0.2)
    app = create_app(settings)
    outage = Outage(app)
    holder: list[World] = []
    site_server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(holder))
    site_port = site_server.server_address[1]
    threading.Thread(target=site_server.serve_forever, daemon=True).start()
    store: Store | None = None
    try:
        with serving(outage) as accord:  # type: ignore[arg-type]
            store = open_store(settings.resolved_database_url(), sqlite_synchronous="NORMAL")
            keys = bootstrap(store, name="Shop")
            with store.write() as conn:
                business = keys.business_id
                config.create_property(
                    conn, business_id=business, spec=PropertyIn(key=PROPERTY, name="Shop")
                )
                for purpose in PURPOSES:
                    config.save_purpose(conn, business_id=business, spec=purpose)
                config.publish_notice(
                    conn,
                    business_id=business,
                    property_key=PROPERTY,
                    spec=NoticeIn.model_validate(
                        {"variants": [{"texts": {"en": notice_texts("en")}}]}
                    ),
                )
                config.set_geo_rule(conn, business_id=business, region="*", regime="gdpr")
            holder.append(
                World(
                    accord=accord,
                    site=f"http://localhost:{site_port}",
                    other_site=f"http://127.0.0.1:{site_port}",
                    store=store,
                    settings=settings,
                    write_key=keys.write_key,
                    pixel_id=keys.source_id,
                    token=keys.admin_token,
                    outage=outage,
                )
            )
            _pages(holder[0])
            yield holder[0]
    finally:
        site_server.shutdown()
        if store is not None:
            store.dispose()


def _pages(world: World) -> None:
    accord, key = world.accord, world.write_key
    host = accord.removeprefix("http://")
    strict_csp = (
        f"default-src 'self'; script-src 'nonce-{NONCE}'; style-src 'nonce-{NONCE}'; "
        f"connect-src {accord}; img-src 'self'; object-src 'none'; base-uri 'none'"
    )
    watch = (
        f"<script nonce='{NONCE}'>window.violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));</script>"
    )
    world.pages["/tag.html"] = (
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>{watch}
<script async nonce="{NONCE}" src="{accord}/cmp.js" data-write-key="{key}"
 data-property="{PROPERTY}"></script>
<script async nonce="{NONCE}" src="{accord}/accord.js" data-write-key="{key}"
 data-flush-interval="100"></script></head><body><h1>Shop</h1></body></html>""",
        {"Content-Security-Policy": strict_csp},
    )
    segment_settings = {"apiHost": f"{host}/v1", "protocol": "http"}
    for mode, strategy in (("default", None), ("batching", {"size": 3, "timeout": 300})):
        options = {
            **segment_settings,
            **(
                {"deliveryStrategy": {"strategy": "batching", "config": strategy}}
                if strategy
                else {}
            ),
        }
        cdn_settings = {
            "integrations": {"Segment.io": {"apiKey": key, **segment_settings}},
            "metrics": {"sampleRate": 0},
        }
        world.pages[f"/segment-{mode}.html"] = (
            f"""<!doctype html><html><head><title>Segment</title>
<script>window.analytics = {{_cdn: location.origin + '/segment-cdn'}};</script>
<script src="/libs/segment/index.js"></script></head><body><script>
window.run = async (user) => {{
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {{writeKey: {json.dumps(key)}, cdnSettings: {json.dumps(cdn_settings)}}},
    {{integrations: {{'Segment.io': {json.dumps(options)}}}}});
  // As Segment's consent wrappers do: the visitor's choice rides in context.consent.
  analytics.addSourceMiddleware(({{payload, next}}) => {{
    payload.obj.context.consent = {CONSENT}; next(payload); }});
  await Promise.all([
    analytics.identify(user, {{email: user + '@shop.example', plan: 'pro'}}),
    analytics.track('Segment Checkout', {{revenue: 12.5}}),
    analytics.page('Shop', 'Basket'),
  ]);
  return 'sent';
}};</script></body></html>""",
            {},
        )
    source = {
        "source": {
            "id": "accord-test",
            "name": "web",
            "writeKey": key,
            "enabled": True,
            "workspaceId": "accord",
            "config": {},
            "destinations": [],
        }
    }
    world.pages["/rudderstack.html"] = (
        f"""<!doctype html><html><head><title>RudderStack</title>
<script src="/libs/rudderstack.js"></script></head><body><script>
window.run = (user) => new Promise((resolve) => {{
  const analytics = new rudderanalytics.RudderAnalytics();
  analytics.load({json.dumps(key)}, {json.dumps(accord)}, {{
    getSourceConfig: () => ({json.dumps(source)}), polyfillIfRequired: false,
    plugins: ['XhrQueue'], destSDKBaseURL: location.origin + '/none',
    pluginsSDKBaseURL: location.origin + '/none', logLevel: 'ERROR'}});
  analytics.ready(() => {{
    // RudderStack merges a call's options into its context: the CMP's choice goes there.
    const consent = {{consent: {CONSENT}}};
    analytics.identify(user, {{email: user + '@shop.example'}}, consent);
    analytics.track('Rudder Checkout', {{revenue: 20}}, consent);
    analytics.page('Shop', 'Basket', {{}}, consent);
    resolve('sent');
  }});
}});</script></body></html>""",
        {},
    )
    world.pages["/blank.html"] = ("<!doctype html><title>blank</title>", {})


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(locale="en-GB")
    yield ctx
    ctx.close()


class Traffic:
    """Every request the page made: URL, method and body."""

    def __init__(self, page: Page) -> None:
        self.requests: list[Request] = []
        page.on("request", lambda request: self.requests.append(request))

    def hosts(self) -> set[str]:
        return {r.url.split("/")[2] for r in self.requests}

    def collection_bodies(self, world: World) -> list[str]:
        return [
            r.post_data or ""
            for r in self.requests
            if r.url.startswith(world.accord + "/v1/") and "/v1/consent" not in r.url
        ]


def _names(profile: dict[str, Any]) -> set[str]:
    return {e.get("event") or e["type"] for e in profile["recent_events"]}


def _open(context: BrowserContext, url: str) -> tuple[Page, Traffic]:
    page = context.new_page()
    traffic = Traffic(page)
    page.goto(url)
    return page, traffic


def _only_two_origins(world: World, traffic: Traffic) -> None:
    allowed = {world.accord.removeprefix("http://"), world.site.removeprefix("http://")}
    assert traffic.hosts() <= allowed, traffic.hosts() - allowed


@pytest.mark.parametrize("mode", ["default", "batching"])
def test_segment_analytics_next_lands_in_profiles(
    world: World, context: BrowserContext, mode: str
) -> None:
    page, traffic = _open(context, f"{world.site}/segment-{mode}.html")
    user = f"seg-{mode}"
    assert page.evaluate("user => window.run(user)", user) == "sent"
    found = world.wait_profile(
        lambda p: {"Segment Checkout", "page", "identify"} <= _names(p), user_id=user
    )
    assert found["traits"]["email"] == f"{user}@shop.example"
    paths = {r.url.removeprefix(world.accord) for r in traffic.requests if world.accord in r.url}
    assert paths == ({"/v1/b"} if mode == "batching" else {"/v1/i", "/v1/t", "/v1/p"})
    _only_two_origins(world, traffic)


def test_rudderstack_sdk_passes_the_preflight_and_lands(
    world: World, context: BrowserContext
) -> None:
    page, traffic = _open(context, f"{world.site}/rudderstack.html")
    assert page.evaluate("user => window.run(user)", "rudder-1") == "sent"
    found = world.wait_profile(
        lambda p: {"Rudder Checkout", "page", "identify"} <= _names(p), user_id="rudder-1"
    )
    assert found["traits"]["email"] == "rudder-1@shop.example"
    sent = [r for r in traffic.requests if r.url.startswith(world.accord + "/v1/")]
    assert sent and all(r.headers.get("authorization", "").startswith("Basic ") for r in sent)
    _only_two_origins(world, traffic)


def _tag_page(world: World, context: BrowserContext) -> tuple[Page, Traffic]:
    page, traffic = _open(context, f"{world.site}/tag.html")
    page.locator("[role=dialog]").wait_for(timeout=15_000)
    page.wait_for_function("() => window.accord && window.accord.track && window.accord.consent")
    return page, traffic


def _consent_id(page: Page) -> str:
    return str(page.evaluate("() => window.accord.consent.get().anonymousId"))


def test_tag_holds_events_until_accept_then_sends_them(
    world: World, context: BrowserContext
) -> None:
    page, traffic = _tag_page(world, context)
    page.evaluate(
        """() => { accord.track('Added To Basket', {sku: 'A-1', price: 9});
        accord.identify('tag-user-1', {email: 'tag1@shop.example'}); }"""
    )
    page.wait_for_timeout(400)
    assert traffic.collection_bodies(world) == []
    assert {c["name"] for c in context.cookies()} == set()
    page.get_by_role("button", name="Accept all").click()
    anonymous_id = _consent_id(page)
    found = world.wait_profile(
        lambda p: {"Added To Basket", "page", "identify"} <= _names(p), user_id="tag-user-1"
    )
    assert found["traits"]["email"] == "tag1@shop.example"
    assert any(i["value"] == anonymous_id for i in found["identifiers"])
    (tracked,) = world.stored(lambda e: e.get("event") == "Added To Basket")
    assert tracked["context"]["consent"]["categoryPreferences"]["statistics"] is True
    assert tracked["context"]["library"]["name"] == "accord.js"
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    assert cookies["ajs_anonymous_id"] == anonymous_id
    assert page.evaluate("() => window.violations") == []
    _only_two_origins(world, traffic)


def test_tag_after_refusal_sends_nothing_identifiable(
    world: World, context: BrowserContext
) -> None:
    page, traffic = _tag_page(world, context)
    page.evaluate(
        """() => { accord.track('Refused Visit', {price: 7, note: 'call me on 555'});
        accord.identify('tag-user-2', {email: 'tag2@shop.example'}); }"""
    )
    anonymous_id = _consent_id(page)
    page.get_by_role("button", name="Reject all").click()
    page.wait_for_function("() => window.accord.consent.get().choiceMade")
    deadline = time.monotonic() + 10
    while not world.stored(lambda e: e.get("event") == "Refused Visit"):
        assert time.monotonic() < deadline, "the anonymous count never arrived"
        time.sleep(0.1)
    page.evaluate("() => accord.track('After Refusal', {price: 3})")
    page.evaluate("() => accord.flush()")
    bodies = " ".join(traffic.collection_bodies(world))
    for secret in ("tag-user-2", "tag2@shop.example", anonymous_id, "555", "userAgent"):
        assert secret not in bodies
    (counted,) = world.stored(lambda e: e.get("event") == "Refused Visit")
    assert counted["properties"] == {"price": 7}
    assert "anonymousId" not in counted and "userId" not in counted
    assert world.profile(user_id="tag-user-2") is None
    assert {c["name"] for c in context.cookies()} == {"accord_consent"}
    assert page.evaluate("() => Object.keys(localStorage)") == []
    _only_two_origins(world, traffic)


def test_tag_withdrawal_stops_identified_sending_at_once(
    world: World, context: BrowserContext
) -> None:
    page, _traffic = _tag_page(world, context)
    page.get_by_role("button", name="Accept all").click()
    page.evaluate("() => accord.identify('tag-user-3', {email: 'tag3@shop.example'})")
    world.wait_profile(lambda p: "identify" in _names(p), user_id="tag-user-3")
    page.evaluate("() => { accord.consent.withdraw(); accord.track('After Withdrawal', {n: 1}); }")
    page.evaluate("() => accord.flush()")
    deadline = time.monotonic() + 10
    while not world.stored(lambda e: e.get("event") == "After Withdrawal"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (after,) = world.stored(lambda e: e.get("event") == "After Withdrawal")
    assert "userId" not in after and "anonymousId" not in after
    assert {c["name"] for c in context.cookies()} == {"accord_consent"}


def test_tag_offline_and_outage_deliver_every_event_once(
    world: World, context: BrowserContext
) -> None:
    page, _ = _tag_page(world, context)
    page.get_by_role("button", name="Accept all").click()
    page.evaluate("() => accord.identify('tag-user-4')")
    world.wait_profile(lambda p: "identify" in _names(p), user_id="tag-user-4")
    context.set_offline(True)
    page.evaluate("() => { for (let i = 0; i < 3; i++) accord.track('Offline ' + i); }")
    page.wait_for_timeout(500)
    context.set_offline(False)
    # Accord down (its proxy answers 503): queued events survive a reload of the page.
    world.outage.on = True
    try:
        page.evaluate("() => { for (let i = 0; i < 3; i++) accord.track('Outage ' + i); }")
        page.wait_for_function(
            "() => Object.keys(localStorage).some(k => k.startsWith('accord_q_') &&"
            " localStorage.getItem(k).includes('Outage 2'))"
        )
        page.reload()
        page.wait_for_function("() => window.accord && window.accord.track")
        page.wait_for_timeout(500)
    finally:
        world.outage.on = False
    names = {f"Offline {i}" for i in range(3)} | {f"Outage {i}" for i in range(3)}
    found = world.wait_profile(lambda p: names <= _names(p), user_id="tag-user-4")
    stored = world.stored(lambda e: e.get("event") in names)
    assert sorted(e["event"] for e in stored) == sorted(names)
    assert len({e["messageId"] for e in stored}) == len(names)
    assert found["id"]
    page.wait_for_function(
        "() => !Object.keys(localStorage).some(k => k.startsWith('accord_q_'))", timeout=10_000
    )


def _fetch(page: Page, url: str, **init: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """async ([url, init]) => {
          try { const r = await fetch(url, init);
                return {status: r.status, body: await r.text()}; }
          catch (e) { return {error: String(e)}; } }""",
        [url, init],
    )
    return result


def test_allowed_origins_refuse_other_sites_and_errors_are_readable(
    world: World, context: BrowserContext
) -> None:
    pixel_id = world.pixel_id
    basic = "Basic " + base64.b64encode(f"{world.write_key}:".encode()).decode()
    event = json.dumps({"event": "Cross", "userId": "cors-1"})
    json_post = {
        "method": "POST",
        "body": event,
        "headers": {"Content-Type": "application/json", "Authorization": basic},
    }
    before = world.inbox_count()
    changed = world.api(
        "PATCH", f"/api/accounts/pixels/{pixel_id}", json={"allowed_origins": [world.site]}
    )
    assert changed.status_code == 200, changed.text
    try:
        time.sleep(0.3)
        page = context.new_page()
        page.goto(f"{world.other_site}/blank.html")
        refused = _fetch(page, f"{world.accord}/v1/track", **json_post)
        assert "error" in refused  # the preflight was refused: the browser never sent it
        simple = _fetch(
            page,
            f"{world.accord}/v1/t",
            method="POST",
            body=json.dumps({"event": "Cross", "userId": "cors-1", "writeKey": world.write_key}),
            headers={"Content-Type": "text/plain"},
        )
        assert simple["status"] == 403 and "origin_not_allowed" in simple["body"]
        page.goto(f"{world.site}/blank.html")
        no_key = dict(json_post, headers={"Content-Type": "application/json"})
        unauthorised = _fetch(page, f"{world.accord}/v1/track", **no_key)
        assert unauthorised["status"] == 401 and "writeKey" in unauthorised["body"]
        cases = {
            "/v1/track": ("{not json", 400),
            "/v1/t": (json.dumps({"event": "x" * 40_000, "userId": "u"}), 413),
            "/v1/nowhere": (event, 404),
        }
        for path, (body, status) in cases.items():
            answer = _fetch(page, world.accord + path, **dict(json_post, body=body))
            assert answer.get("status") == status, (path, answer)
            assert json.loads(answer["body"]).get("success", False) is False
        accepted = _fetch(page, f"{world.accord}/v1/track", **json_post)
        assert accepted["status"] == 200
        assert world.inbox_count() == before + 1
    finally:
        reset = world.api(
            "PATCH", f"/api/accounts/pixels/{pixel_id}", json={"allowed_origins": ["*"]}
        )
        assert reset.status_code == 200
