"""Probabilistic matching of profiles that share no identifier, with Splink on the engine.

Profiles are records (their traits); Splink, trained without labels (u-probabilities
from random pairs, m-probabilities by expectation maximisation over the blocking rules,
the prior from rules that almost only same people agree on), scores candidate pairs.
A pair from the link threshold up becomes a `probabilistic` edge through the Resolver,
so every guardrail applies; a pair in the review band becomes a review item.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from accord.identity.matching_config import BlockingRule, Comparison, MatchingConfig

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
UNIQUE_ID = "unique_id"


class MatchingFailed(Exception):
    """Splink could not train or score with this configuration on this data."""


@dataclass(frozen=True)
class ScoredPair:
    """Two records Splink scored, with the level each comparison reached."""

    left: str
    right: str
    probability: float
    weight: float
    levels: dict[str, str] = field(default_factory=dict)


def clean_value(comparison: Comparison, raw: Any) -> str | None:
    """A trait value as it is compared: trimmed, lower-case, spaces collapsed; dates ISO."""
    if raw is None or isinstance(raw, bool | dict | list):
        return None
    text = _SPACES.sub(" ", str(raw)).strip().lower()
    if not text:
        return None
    if comparison.method in ("date", "date_parts"):
        found = _ISO_DATE.match(text)
        if not found:
            return None
        try:
            return date(*(int(p) for p in found.groups())).isoformat()
        except ValueError:
            return None
    return text


def records_frame(rows: Iterable[tuple[str, dict[str, Any]]], config: MatchingConfig) -> Any:
    """A pandas frame of (id, traits) with one column per compared trait."""
    data: dict[str, list[Any]] = {UNIQUE_ID: [], **{c.field: [] for c in config.comparisons}}
    for record_id, traits in rows:
        values = [clean_value(c, traits.get(c.field)) for c in config.comparisons]
        if sum(v is not None for v in values) < 2:
            # One trait alone says too little about a person to match on.
            continue
        data[UNIQUE_ID].append(record_id)
        for comparison, value in zip(config.comparisons, values, strict=True):
            data[comparison.field].append(value)
    return pd.DataFrame(data, dtype="string")


def _comparison(comparison: Comparison) -> Any:
    import splink.comparison_library as cl

    name, levels = comparison.field, comparison.levels
    built: Any
    if comparison.method == "exact":
        built = cl.ExactMatch(name)
    elif comparison.method == "jaro_winkler":
        built = cl.JaroWinklerAtThresholds(name, levels)
    elif comparison.method == "jaro":
        built = cl.JaroAtThresholds(name, levels)
    elif comparison.method == "levenshtein":
        built = cl.LevenshteinAtThresholds(name, [int(t) for t in levels])
    elif comparison.method == "damerau_levenshtein":
        built = cl.DamerauLevenshteinAtThresholds(name, [int(t) for t in levels])
    elif comparison.method == "date_parts":
        built = _date_parts(name)
    else:
        built = cl.DateOfBirthComparison(name, input_is_string=True, datetime_format="%Y-%m-%d")
    if comparison.term_frequency:
        built = built.configure(term_frequency_adjustments=True)
    return built


def _date_parts(name: str) -> Any:
    """Exact date; else two of year, month and day agree (one part mistyped); else none."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import ColumnExpression

    year, month, day = (
        cll.ExactMatchLevel(ColumnExpression(name).substr(start, length))
        for start, length in ((1, 4), (6, 2), (9, 2))
    )
    return cl.CustomComparison(
        output_column_name=name,
        comparison_levels=[
            cll.NullLevel(name),
            cll.ExactMatchLevel(name),
            cll.Or(
                cll.And(year, month), cll.And(year, day), cll.And(month, day)
            ).configure(label_for_charts="two of year, month and day agree"),
            cll.ElseLevel(),
        ],
    )


def _blocking_rule(rule: BlockingRule) -> Any:
    from splink import ColumnExpression, block_on

    keys = [
        ColumnExpression(key.field).substr(1, key.prefix) if key.prefix else key.field
        for key in rule
    ]
    return block_on(*keys)


def splink_settings(config: MatchingConfig) -> Any:
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=[_comparison(c) for c in config.comparisons],
        blocking_rules_to_generate_predictions=[_blocking_rule(r) for r in config.blocking_rules],
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=False,
    )


def _db_api(engine_url: str) -> tuple[Any, Any]:
    """Splink's API for the engine's backend, and a function making its input table."""
    from accord.engine.connection import connect

    backend = connect(engine_url)
    if backend.name == "pyspark":
        from splink import SparkAPI

        session = backend._session
        return SparkAPI(spark_session=session), session.createDataFrame
    from splink import DuckDBAPI

    return DuckDBAPI(connection=backend.con), lambda frame: frame


def _level_labels(linker: Any) -> dict[str, dict[int, str]]:
    """Comparison name → gamma value → the level's label, from the trained model."""
    model = linker.misc.save_model_to_json()
    out: dict[str, dict[int, str]] = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        labels: dict[int, str] = {}
        value = sum(1 for lv in levels if not lv.get("is_null_level")) - 1
        for level in levels:
            if level.get("is_null_level"):
                labels[-1] = level.get("label_for_charts", "null")
            else:
                labels[value] = level.get("label_for_charts", str(value))
                value -= 1
        out[comparison["output_column_name"]] = labels
    return out


def train(frame: Any, config: MatchingConfig, *, engine_url: str = "duckdb://") -> Any:
    """A Splink linker over the records, trained without labels."""
    from splink import Linker

    if len(frame) < 2:
        raise MatchingFailed("fewer than two profiles have two or more compared traits")
    api, make_input = _db_api(engine_url)
    linker = Linker(make_input(frame), splink_settings(config), api)
    with warnings.catch_warnings():
        # Splink warns about levels it could not observe; small bases are like that.
        warnings.simplefilter("ignore")
        if config.prior_rules:
            try:
                linker.training.estimate_probability_two_random_records_match(
                    [_blocking_rule(r) for r in config.prior_rules], recall=config.prior_recall
                )
            except Exception as exc:
                raise MatchingFailed(f"cannot estimate the prior from prior_rules: {exc}") from exc
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.max_pairs_for_u, seed=config.seed
        )
        trained = 0
        for rule in config.blocking_rules:
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    _blocking_rule(rule),
                    populate_probability_two_random_records_match_from_trained_values=(
                        not config.prior_rules
                    ),
                )
                trained += 1
            except Exception as exc:
                # A rule that finds no pair, or whose pairs cannot train, is left out.
                log.info("EM over blocking rule %s skipped: %s", rule, exc)
        if not trained:
            raise MatchingFailed("no blocking rule found pairs to train on")
    return linker


def _rule(rule: BlockingRule | list[dict[str, Any]]) -> BlockingRule:
    from accord.identity.matching_config import BlockingKey

    return [k if isinstance(k, BlockingKey) else BlockingKey.model_validate(k) for k in rule]


def score(
    frame: Any, config: MatchingConfig, *, engine_url: str = "duckdb://", floor: float | None = None
) -> list[ScoredPair]:
    """Every candidate pair scoring at least `floor` (default the review threshold)."""
    linker = train(frame, config, engine_url=engine_url)
    threshold = config.review_threshold if floor is None else floor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = linker.inference.predict(threshold_match_probability=threshold)
        table = predictions.as_pandas_dataframe()
    labels = _level_labels(linker)
    gammas = [c for c in table.columns if c.startswith("gamma_")]
    out = []
    for row in table.itertuples(index=False):
        values = row._asdict()
        left, right = sorted((str(values[f"{UNIQUE_ID}_l"]), str(values[f"{UNIQUE_ID}_r"])))
        levels = {
            g.removeprefix("gamma_"): labels.get(g.removeprefix("gamma_"), {}).get(
                int(values[g]), str(values[g])
            )
            for g in gammas
        }
        out.append(
            ScoredPair(
                left=left,
                right=right,
                probability=float(values["match_probability"]),
                weight=float(values["match_weight"]),
                levels=levels,
            )
        )
    out.sort(key=lambda p: (-p.probability, p.left, p.right))
    return out
