"""Cookie scanner: crawls a site in headless Chromium before and after consent; classifies."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal
from urllib.parse import urldefrag, urlsplit

from accord.core.outbound import OutboundPolicy

Kind = Literal["cookie", "local_storage", "request"]
Phase = Literal["before_consent", "after_accept"]

MAX_PAGES = 200
# Labels of an accept-all control in the languages Accord ships banner texts for.
ACCEPT_LABELS = re.compile(
    r"^\s*(accept all|accept all cookies|allow all|accept|i agree|agree|alle akzeptieren|"
    r"akzeptieren|tout accepter|accepter|aceptar todo|aceptar|accetta tutto|accetta|"
    r"alles accepteren|accepteren)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Tracker:
    """One catalogue entry: what a vendor sets or calls, and the purpose it serves."""

    vendor: str
    purpose: str
    cookies: tuple[str, ...]
    storage: tuple[str, ...]
    hosts: tuple[str, ...]


def name_matches(pattern: str, name: str) -> bool:
    # Entries are exact names, or regular expressions when they start with "^".
    return re.match(pattern, name) is not None if pattern.startswith("^") else pattern == name


def host_matches(pattern: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == pattern or host.endswith("." + pattern)


@dataclass(frozen=True)
class Catalogue:
    """Known trackers, shipped with Accord as `consent/catalogue.json`."""

    trackers: tuple[Tracker, ...]

    def cookie(self, name: str) -> Tracker | None:
        return next(
            (t for t in self.trackers if any(name_matches(p, name) for p in t.cookies)), None
        )

    def storage(self, key: str) -> Tracker | None:
        return next(
            (t for t in self.trackers if any(name_matches(p, key) for p in t.storage)), None
        )

    def host(self, host: str) -> Tracker | None:
        # The most specific host wins (googletagmanager.com before a bare google.com entry).
        hits = [(len(h), t) for t in self.trackers for h in t.hosts if host_matches(h, host)]
        return max(hits, key=lambda hit: hit[0])[1] if hits else None


def parse_catalogue(data: dict[str, Any]) -> Catalogue:
    trackers = tuple(
        Tracker(
            vendor=str(entry["vendor"]),
            purpose=str(entry["purpose"]),
            cookies=tuple(entry.get("cookies", ())),
            storage=tuple(entry.get("storage", ())),
            hosts=tuple(h.lower() for h in entry.get("hosts", ())),
        )
        for entry in data["trackers"]
    )
    return Catalogue(trackers=trackers)


@cache
def load_catalogue() -> Catalogue:
    text = resources.files("accord.consent").joinpath("catalogue.json").read_text("utf-8")
    return parse_catalogue(json.loads(text))


@dataclass(frozen=True)
class Sighting:
    """One thing observed in the browser, before classification."""

    kind: Kind
    name: str  # cookie name, storage key, or request host
    domain: str  # cookie domain, page origin, or request host
    page: str
    phase: Phase
    example: str = ""  # a request URL, for requests


@dataclass(frozen=True)
class Finding:
    kind: Kind
    name: str
    domain: str
    page: str
    phase: Phase
    third_party: bool
    vendor: str | None
    purpose: str | None
    flagged: bool
    reason: str
    example: str = ""


@dataclass
class ScanReport:
    url: str
    pages: list[str]
    consent_action: str | None  # how accept-all was given, or None when no control was found
    findings: list[Finding] = field(default_factory=list)

    @property
    def flagged(self) -> list[Finding]:
        return [f for f in self.findings if f.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "pages": self.pages,
            "consent_action": self.consent_action,
            "flagged": len(self.flagged),
            "findings": [asdict(f) for f in self.findings],
        }


def site_of(host: str) -> str:
    """The host a site is known by, without a leading www."""
    host = host.lower().rstrip(".")
    return host.removeprefix("www.")


def is_third_party(host: str, site: str) -> bool:
    host = site_of(host).lstrip(".")
    return not (host == site or host.endswith("." + site) or site.endswith("." + host))


def classify(sightings: Iterable[Sighting], *, site: str, catalogue: Catalogue) -> list[Finding]:
    """First sighting of each thing, classified; flags what is set or called before consent.

    Before consent, a cookie or storage key is flagged unless the catalogue knows it as
    strictly necessary (an unknown one is flagged too: it must be reviewed); a request is
    flagged when it goes to a tracker the catalogue knows for a purpose other than necessary.
    """
    seen: dict[tuple[str, str, str], Finding] = {}
    for s in sightings:
        key = (s.kind, s.name, s.domain)
        if key in seen:
            continue
        if s.kind == "cookie":
            tracker = catalogue.cookie(s.name)
        elif s.kind == "local_storage":
            tracker = catalogue.storage(s.name)
        else:
            tracker = catalogue.host(s.name)
        purpose = tracker.purpose if tracker else None
        before = s.phase == "before_consent"
        if s.kind == "request":
            flagged = before and purpose not in (None, "necessary")
        else:
            flagged = before and purpose != "necessary"
        what = {"cookie": "cookie", "local_storage": "localStorage key", "request": "request"}
        if flagged and tracker:
            reason = f"{what[s.kind]} of {tracker.vendor} ({purpose}) before consent"
        elif flagged:
            reason = f"{what[s.kind]} set before consent and not in the catalogue: review it"
        elif tracker:
            reason = f"{tracker.vendor} ({purpose})"
        else:
            reason = "not in the catalogue"
        seen[key] = Finding(
            kind=s.kind,
            name=s.name,
            domain=s.domain,
            page=s.page,
            phase=s.phase,
            third_party=is_third_party(s.domain, site),
            vendor=tracker.vendor if tracker else None,
            purpose=purpose,
            flagged=flagged,
            reason=reason,
            example=s.example,
        )
    return list(seen.values())


def same_origin_links(hrefs: Iterable[str], origin: str) -> list[str]:
    out: list[str] = []
    for href in hrefs:
        url, _ = urldefrag(href)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" == origin:
            out.append(url)
    return out


class ScanFailed(Exception):
    """The scan could not be carried out as asked (the message says why)."""


def default_chromium() -> str:
    return shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def _refusals(outbound: OutboundPolicy | None) -> Callable[[str], str | None]:
    """Why the browser may not fetch a URL, by the policy; answers kept per host."""
    known: dict[tuple[str, int], str | None] = {}

    def refused(url: str) -> str | None:
        if outbound is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            return None
        try:
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        except ValueError:
            return f"invalid port in {url[:100]!r}"
        key = (parts.hostname, port)
        if key not in known:
            known[key] = outbound.refusal(parts.hostname, port)
        return known[key]

    return refused


def scan(
    url: str,
    *,
    pages: int = 10,
    chromium: str | None = None,
    accept_selector: str | None = None,
    fetch_third_party: bool = True,
    timeout_ms: int = 15_000,
    catalogue: Catalogue | None = None,
    outbound: OutboundPolicy | None = None,
) -> ScanReport:
    """Crawl up to `pages` same-origin pages, accept all, crawl them again, and classify.

    With `fetch_third_party=False` third-party requests are recorded and then aborted, so a
    scan never contacts the trackers it lists (their own cookies then never appear).
    With `outbound` (scans a business asked for), the start URL and every request the
    browser makes, redirects included, must reach an address the policy allows; the
    operator's own `accord consent scan` passes none.
    """
    if not 1 <= pages <= MAX_PAGES:
        raise ScanFailed(f"pages must be between 1 and {MAX_PAGES}")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import Page, Request, Route, sync_playwright
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ScanFailed("the cookie scanner needs Playwright: install accord[scan]") from exc

    start = urlsplit(url)
    if start.scheme not in ("http", "https") or not start.netloc:
        raise ScanFailed(f"not an http(s) URL: {url!r}")
    refused = _refusals(outbound)
    why = refused(url)
    if why is not None:
        raise ScanFailed(f"outbound request refused: {why}")
    # The site is where the first page lands (http:// often redirects to https://www.).
    where = {
        "origin": f"{start.scheme}://{start.netloc}",
        "site": site_of(start.hostname or ""),
        "start": url,
    }
    sightings: list[Sighting] = []
    phase: list[Phase] = ["before_consent"]
    current = [url]

    def on_request(request: Request) -> None:
        host = urlsplit(request.url).hostname or ""
        third_party = is_third_party(host, where["site"])
        if request.url.startswith(("http://", "https://")) and third_party:
            sightings.append(
                Sighting("request", host, host, current[0], phase[0], example=request.url[:300])
            )

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if not fetch_third_party and is_third_party(host, where["site"]):
            route.abort()
        elif refused(route.request.url) is not None:
            route.abort("addressunreachable")
        else:
            route.continue_()

    def visit(page: Page, target: str) -> list[str]:
        current[0] = target
        try:
            page.goto(target, wait_until="load", timeout=timeout_ms)
            page.wait_for_load_state("networkidle", timeout=min(timeout_ms, 5_000))
        except PlaywrightError:
            pass  # a slow or broken page still shows what it set so far
        if target == url and phase[0] == "before_consent":
            landed = urlsplit(page.url)
            if landed.scheme in ("http", "https") and landed.hostname:
                where["origin"] = f"{landed.scheme}://{landed.netloc}"
                where["site"] = site_of(landed.hostname)
                where["start"] = urldefrag(page.url)[0]
        for cookie in page.context.cookies():
            sightings.append(
                Sighting("cookie", cookie["name"], cookie["domain"].lstrip("."), target, phase[0])
            )
        try:
            keys: list[str] = page.evaluate("() => Object.keys(window.localStorage)")
            hrefs: list[str] = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        except PlaywrightError:
            keys, hrefs = [], []
        for key in keys:
            sightings.append(Sighting("local_storage", key, where["origin"], target, phase[0]))
        return same_origin_links(hrefs, where["origin"])

    def accept(page: Page) -> str | None:
        page.goto(where["start"], wait_until="load", timeout=timeout_ms)
        has_accord = page.evaluate(
            """async () => {
              const c = window.accord && window.accord.consent;
              if (!c) return false;
              await Promise.race([c.ready, new Promise(r => setTimeout(r, 5000))]);
              if (!c.get().ready) return false;
              c.acceptAll();
              await c.lastPost;
              return true;
            }"""
        )
        if has_accord:
            return "accord.consent.acceptAll()"
        if accept_selector:
            try:
                page.click(accept_selector, timeout=timeout_ms)
            except PlaywrightError as exc:
                raise ScanFailed(f"no clickable {accept_selector!r} on {url}") from exc
            return f"clicked {accept_selector}"
        for role in ("button", "link"):
            control = page.get_by_role(role, name=ACCEPT_LABELS)
            if control.count():
                label = control.first.inner_text().strip()
                control.first.click(timeout=timeout_ms)
                return f"clicked the {role} {label!r}"
        return None

    with sync_playwright() as playwright:
        executable = chromium or default_chromium()
        try:
            browser = playwright.chromium.launch(
                executable_path=executable,
                args=["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"],
            )
        except PlaywrightError as exc:
            raise ScanFailed(f"cannot start Chromium at {executable}: {exc}") from exc
        try:
            context = browser.new_context()
            context.on("request", on_request)
            if not fetch_third_party or outbound is not None:
                context.route("**/*", guard)
            page = context.new_page()
            visited: list[str] = []
            queue = [url]
            while queue and len(visited) < pages:
                target = queue.pop(0)
                if target in visited:
                    continue
                links = visit(page, target)
                visited.append(where["start"] if target == url else target)
                queue.extend(link for link in links if link not in visited)
            phase[0] = "after_accept"
            current[0] = where["start"]
            action = accept(page)
            page.wait_for_timeout(500)
            for target in visited:
                visit(page, target)
        finally:
            browser.close()
    site = where["site"]
    findings = classify(sightings, site=site, catalogue=catalogue or load_catalogue())
    return ScanReport(url=url, pages=visited, consent_action=action, findings=findings)
