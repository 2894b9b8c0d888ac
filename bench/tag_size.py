"""Accord's tag beside the browser libraries it replaces: gzipped size, and main-thread load time.

Sizes: gzip level 9 (mtime 0) of each file as a site would serve it: `/accord.js` as
Accord serves it, `@segment/analytics-next`'s standalone bundle (`dist/umd/index.js`, the
file its CDN serves as analytics.min.js; it fetches more chunks later) and RudderStack's
`@rudderstack/analytics-js` bundled UMD (every plugin inside; npm ships it unminified, so
its minified gzipped size from RudderStack's CDN is smaller). The npm packages are the
pinned ones of tests/web/npm-libs (installed with the machine's npm when missing).

Load time: in headless Chromium (Debian's), each script is loaded by a blank page as a
parser-blocking <script> from a local server; the time from just before the tag to just
after it (fetch from localhost, compile, run) is read with `performance.now()`, in a fresh
browser context each time (no cache), `--runs` times (10), and the median is reported.

Usage: .venv/bin/python bench/tag_size.py [--runs 10] [--json] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web import npm_libs  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402

from accord.web.tag import tag_asset  # noqa: E402

GOAL_BYTES = 6 * 1024


def _gz(data: bytes) -> int:
    return len(gzip.compress(data, 9, mtime=0))


def files() -> dict[str, Path]:
    libs = npm_libs.ensure()
    versions = npm_libs.pinned()
    return {
        "accord.js": ROOT / "src" / "accord" / "web" / "static" / "accord.js",
        f"@segment/analytics-next {versions['@segment/analytics-next']} (standalone)": libs
        / npm_libs.SEGMENT_STANDALONE,
        f"@rudderstack/analytics-js {versions['@rudderstack/analytics-js']} (bundled UMD)": libs
        / npm_libs.RUDDERSTACK_UMD,
    }


def sizes(found: dict[str, Path]) -> dict[str, dict[str, int]]:
    out = {
        name: {"raw": len(p.read_bytes()), "gzip": _gz(p.read_bytes())} for name, p in found.items()
    }
    served = tag_asset()
    out["accord.js"] = {"raw": len(served.body), "gzip": len(served.gzipped)}
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def load_times(found: dict[str, Path], runs: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="tag-size-"))
    served = {name: f"/{index}.js" for index, name in enumerate(found)}
    for name, path in found.items():
        shutil.copyfile(path, folder / served[name].lstrip("/"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    medians: dict[str, float] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            for name in found:
                src = base + served[name]
                tag = f'<script data-write-key="wk" data-auto-page="false" src="{src}">'
                page_html = (
                    "<!doctype html><title>load</title><script>window.t0 = performance.now()"
                    f"</script>{tag}</script><script>window.t1 = performance.now()</script>"
                )
                times = []
                for _ in range(runs):
                    context = browser.new_context()
                    page = context.new_page()
                    page.set_content(page_html)
                    times.append(float(page.evaluate("() => window.t1 - window.t0")))
                    context.close()
                medians[name] = statistics.median(times)
            browser.close()
    finally:
        server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 loads each instead of --runs")
    args = parser.parse_args()
    found = files()
    measured = sizes(found)
    times = load_times(found, 3 if args.quick else args.runs)
    if args.json:
        print(json.dumps({"sizes": measured, "load_ms_median": times, "goal_bytes": GOAL_BYTES}))
        return
    print("| script | raw | gzip -9 | main-thread load, median (ms) |\n|---|---|---|---|")
    for name, size in measured.items():
        print(
            f"| {name} | {size['raw'] / 1024:.1f} KB | {size['gzip'] / 1024:.1f} KB "
            f"| {times[name]:.1f} |"
        )
    ok = measured["accord.js"]["gzip"] <= GOAL_BYTES
    print(f"\naccord.js goal ≤ {GOAL_BYTES / 1024:.0f} KB gzipped: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
