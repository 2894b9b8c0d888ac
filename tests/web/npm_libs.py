"""Segment's and RudderStack's browser libraries, installed unchanged from npm for the tests.

`tests/web/npm-libs/package.json` pins them; `ensure()` copies it to `.cache/npm-libs/`
(git-ignored) and runs the machine's `npm install` there when a pinned version is missing.
`make test` does the same beforehand (scripts/system-deps.sh). Nothing is built, patched or
fetched from a CDN: the tests serve the packages' own bundles from a second origin.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = Path(__file__).with_name("npm-libs") / "package.json"
CACHE = ROOT / ".cache" / "npm-libs"
# The bundles a page loads with one <script>, as each package ships them.
SEGMENT_UMD = "node_modules/@segment/analytics-next/dist/umd"
SEGMENT_STANDALONE = f"{SEGMENT_UMD}/index.js"
RUDDERSTACK_UMD = "node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js"


def pinned() -> dict[str, str]:
    deps: dict[str, str] = json.loads(MANIFEST.read_text())["dependencies"]
    return deps


def installed_version(name: str) -> str | None:
    found = CACHE / "node_modules" / name / "package.json"
    if not found.exists():
        return None
    version: str = json.loads(found.read_text())["version"]
    return version


def ensure() -> Path:
    """The cache folder with every pinned package installed (installs what is missing)."""
    if all(installed_version(n) == v for n, v in pinned().items()):
        return CACHE
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is required for the browser collection tests (apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(MANIFEST, CACHE / "package.json")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=CACHE,
        check=True,
        timeout=600,
    )
    missing = [n for n, v in pinned().items() if installed_version(n) != v]
    if missing:
        raise RuntimeError(f"npm did not install {missing} into {CACHE}")
    return CACHE


if __name__ == "__main__":
    print(ensure())
