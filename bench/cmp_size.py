"""Size of the consent banner as browsers download it: cmp.js with its styles, each translation.

Sizes are deterministic (gzip level 9, as /cmp.js is served; mtime 0), so one run is the
figure; `--quick` is accepted for symmetry with the other benchmarks and changes nothing.
The reference sizes of other open-source banners are the ones stated in issue 3.

Usage: .venv/bin/python bench/cmp_size.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
from importlib import resources

from accord.web.cmp import build_script, compact_css, script_asset, translation_asset
from accord.web.cmp import translation_languages as languages

GOAL_BYTES = 15 * 1024
# As stated in issue 3 (script and styles, gzipped).
REFERENCES = {"vanilla-cookieconsent": 15 * 1024, "Klaro": 69 * 1024}


def _gz(data: bytes) -> int:
    return len(gzip.compress(data, 9, mtime=0))


Sizes = dict[str, dict[str, int]]


def measure() -> tuple[Sizes, Sizes]:
    """(parts of the script, translations), each name -> {raw, gzip} in bytes."""
    static = resources.files("accord.web").joinpath("static")
    source_js = static.joinpath("cmp.js").read_bytes()
    css = compact_css(static.joinpath("cmp.css").read_text("utf-8")).encode()
    served = script_asset()
    assert served.body == build_script().encode()
    parts: Sizes = {
        "cmp.js (source, without styles)": {"raw": len(source_js), "gzip": _gz(source_js)},
        "cmp.css (compacted)": {"raw": len(css), "gzip": _gz(css)},
        "/cmp.js as served (script + styles)": {
            "raw": len(served.body),
            "gzip": len(served.gzipped),
        },
    }
    translations: Sizes = {
        lang: {"raw": len(a.body), "gzip": len(a.gzipped)}
        for lang in languages()
        for a in [translation_asset(lang)]
    }
    return parts, translations


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--quick", action="store_true", help="same as a full run (sizes)")
    args = parser.parse_args()
    parts, translations = measure()
    served = parts["/cmp.js as served (script + styles)"]["gzip"]
    if args.json:
        report = {"parts": parts, "translations": translations, "goal_bytes": GOAL_BYTES}
        print(json.dumps({**report, "meets_goal": served <= GOAL_BYTES, "references": REFERENCES}))
        return
    print("| file | raw | gzip -9 |\n|---|---|---|")
    for name, size in parts.items():
        print(f"| {name} | {_kb(size['raw'])} | {_kb(size['gzip'])} |")
    for lang, size in translations.items():
        label = f"translation `{lang}` (/cmp/i18n/{lang}.json)"
        print(f"| {label} | {size['raw']} B | {size['gzip']} B |")
    print(f"\ngoal ≤ {_kb(GOAL_BYTES)} gzipped: {'met' if served <= GOAL_BYTES else 'MISSED'}")
    for name, size_bytes in REFERENCES.items():
        print(f"{name}: about {_kb(size_bytes)} (Accord: {served / size_bytes:.0%} of it)")


if __name__ == "__main__":
    main()
