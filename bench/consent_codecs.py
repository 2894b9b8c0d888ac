"""TC string codec benchmark: decodes and encodes per second, Accord against iab-tcf-bitarray.

The dataset is a fixed, seeded set of TC strings (with a DisclosedVendors segment, as TCF
v2.3 requires) made by Accord's encoder in three shapes: a few vendors as a bit field, a
wide range of vendors as range entries, and a string with publisher restrictions and a
PublisherTC segment. Each measurement decodes (or encodes) the whole set in a loop for at
least `--seconds` and reports operations per second; the median of `--runs` runs is kept.
The reference library (iab-tcf-bitarray, the best Python TCF decoder that installs on
Python 3.11; it has no encoder) is measured on the same strings when it is installed.

`run(quick)` returns the figures as a dict so `bench/consent.py` can include them.

Usage: .venv/bin/python bench/consent_codecs.py [--quick] [--runs 5] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from accord.consent import tcf


def dataset(seed: int = 7, size: int = 30) -> list[str]:
    """TC strings in the three shapes, deterministic for a seed."""
    rng = random.Random(seed)
    created = datetime(2026, 11, 23, tzinfo=UTC)
    out = []
    for i in range(size):
        shape = i % 3
        if shape == 0:
            vendors = frozenset(rng.sample(range(1, 1200), 12))
        elif shape == 1:
            start = rng.randint(1, 200)
            vendors = frozenset(range(start, start + rng.randint(300, 900)))
        else:
            vendors = frozenset(rng.sample(range(1, 1200), 300))
        restrictions = (
            (
                tcf.PublisherRestriction(
                    2, tcf.RestrictionType.NOT_ALLOWED, frozenset(rng.sample(range(1, 900), 6))
                ),
                tcf.PublisherRestriction(
                    7, tcf.RestrictionType.REQUIRE_CONSENT, frozenset(range(10, 40))
                ),
            )
            if shape == 2
            else ()
        )
        model = tcf.TCString(
            created=created,
            last_updated=created,
            cmp_id=300,
            cmp_version=4,
            consent_screen=1,
            consent_language="DE",
            vendor_list_version=120,
            purposes_consent=frozenset(rng.sample(range(1, 12), 6)),
            purposes_li_transparency=frozenset({2, 7}),
            special_feature_opt_ins=frozenset({1}),
            vendor_consents=vendors,
            vendor_legitimate_interests=frozenset(v for v in vendors if v % 3 == 0),
            publisher_restrictions=restrictions,
            disclosed_vendors=vendors | {1, 2, 3},
            publisher_tc=tcf.PublisherTC(purposes_consent=frozenset({1, 2}))
            if shape == 2
            else None,
        )
        out.append(tcf.encode(model))
    return out


def _rate(operation: Callable[[Any], Any], items: Sequence[Any], seconds: float) -> float:
    """Operations per second over whole passes of `items`, for at least `seconds`."""
    done = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for item in items:
            operation(item)
        done += len(items)
        elapsed = time.perf_counter() - start
    return done / elapsed


def _reference() -> Callable[[str], Any] | None:
    try:
        import iab_tcf  # type: ignore[import-untyped]
    except ImportError:
        return None
    decode: Callable[[str], Any] = iab_tcf.decode
    return decode


def run(
    quick: bool = False, *, runs: int | None = None, seconds: float | None = None
) -> dict[str, Any]:
    """Median operations per second for each codec; the reference is None when not installed."""
    runs = runs or (1 if quick else 5)
    seconds = seconds or (0.2 if quick else 1.0)
    strings = dataset(size=9 if quick else 30)
    models = [tcf.decode(s) for s in strings]
    reference = _reference()
    measured: dict[str, list[float]] = {
        "accord_decode": [],
        "accord_encode": [],
        "reference_decode": [],
    }
    for _ in range(runs):
        measured["accord_decode"].append(_rate(tcf.decode, strings, seconds))
        measured["accord_encode"].append(_rate(tcf.encode, models, seconds))
        if reference is not None:
            measured["reference_decode"].append(_rate(reference, strings, seconds))
    result: dict[str, Any] = {
        "benchmark": "consent_codecs",
        "strings": len(strings),
        "mean_length": round(statistics.fmean(len(s) for s in strings)),
        "runs": runs,
        "seconds_per_measure": seconds,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "reference_library": "iab-tcf-bitarray 0.2.3" if reference is not None else None,
    }
    for key, values in measured.items():
        result[f"{key}_per_s"] = round(statistics.median(values)) if values else None
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    result = run(args.quick, runs=args.runs, seconds=args.seconds)
    print(json.dumps(result, indent=2))
    ref = result["reference_decode_per_s"]
    print(
        "\n| codec | decodes/s | encodes/s |\n| --- | ---: | ---: |\n"
        f"| Accord `tcf` | {result['accord_decode_per_s']} | {result['accord_encode_per_s']} |\n"
        f"| iab-tcf-bitarray 0.2.3 | {ref if ref is not None else 'not installed'} | no encoder |",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
