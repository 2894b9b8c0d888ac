"""Probabilistic matching of profiles that share no identifier, with Splink on the engine.

Profiles are records (their traits); Splink, trained without labels (u-probabilities
from random pairs, m-probabilities by expectation maximisation over the blocking rules,
the prior from rules that almost only same people agree on), scores candidate pairs.
A pair from the link threshold up becomes a `probabilistic` edge through the Resolver,
so every guardrail applies, but only when its score rests on trained parameters alone
and a distinguishing trait (not a name) agrees exactly; otherwise, and for a pair in the
review band, it becomes a review item.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, get_args

import orjson
import pyarrow as pa
from pydantic import BaseModel
from sqlalchemy import Connection, select

from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput
from accord.core.ids import new_id
from accord.identity import service
from accord.identity.graph import Evidence, Key, Resolver
from accord.identity.matching_config import BlockingRule, Comparison, MatchingConfig, Method
from accord.identity.models import SplitReport, identity_edges, identity_reviews
from accord.identity.rules import IdentityRules
from accord.profiles import service as profiles
from accord.store.db import Store

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
UNIQUE_ID = "unique_id"
# The rule of the edges and merges this module makes.
RULE = "probabilistic"


class MatchingFailed(InvalidInput):
    """Splink could not train or score with this configuration on this data."""


@dataclass(frozen=True)
class ScoredPair:
    """Two records Splink scored, with the level each comparison reached, the traits that
    agree exactly, and the levels reached whose parameters Splink did not train (it then
    scores with its default values)."""

    left: str
    right: str
    probability: float
    weight: float
    levels: dict[str, str] = field(default_factory=dict)
    exact: tuple[str, ...] = ()
    untrained: tuple[str, ...] = ()


@dataclass(frozen=True)
class Level:
    """One level of a comparison in the trained model."""

    label: str
    exact: bool
    # Which of the level's m and u probabilities Splink did not estimate ("" when both).
    untrained: str


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
    """An Arrow table of (id, traits) with one string column per compared trait."""
    data: dict[str, list[Any]] = {UNIQUE_ID: [], **{c.field: [] for c in config.comparisons}}
    for record_id, traits in rows:
        values = [clean_value(c, traits.get(c.field)) for c in config.comparisons]
        if sum(v is not None for v in values) < 2:
            # One trait alone says too little about a person to match on.
            continue
        data[UNIQUE_ID].append(record_id)
        for comparison, value in zip(config.comparisons, values, strict=True):
            data[comparison.field].append(value)
    return pa.table({name: pa.array(values, pa.string()) for name, values in data.items()})


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
            cll.Or(cll.And(year, month), cll.And(year, day), cll.And(month, day)).configure(
                label_for_charts="two of year, month and day agree"
            ),
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
        retain_matching_columns=True,
    )


def _db_api(engine_url: str, config: MatchingConfig) -> tuple[Any, Any]:
    """Splink's API for the engine's backend, and a function making its input table."""
    from accord.engine import splink
    from accord.engine.connection import connect, label

    backend = connect(engine_url)
    methods = {c.method for c in config.comparisons}
    unsupported = sorted(methods & splink.unsupported_methods(backend))
    if unsupported:
        usable = [m for m in get_args(Method) if m not in splink.unsupported_methods(backend)]
        raise MatchingFailed(
            [
                FieldProblem(
                    "matching.comparisons",
                    f"methods {unsupported} do not run on the {label(backend)} "
                    f"engine; use {', '.join(usable)} there",
                )
            ]
        )
    return splink.db_api(backend)


def model_levels(linker: Any) -> dict[str, dict[int, Level]]:
    """Comparison name → gamma value → the level, from the trained model. The highest
    gamma is the exact match; a level the model holds no m or u probability for was not
    trained (Splink leaves them out of the saved model)."""
    model = linker.misc.save_model_to_json()
    out: dict[str, dict[int, Level]] = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        found: dict[int, Level] = {}
        top = sum(1 for lv in levels if not lv.get("is_null_level")) - 1
        value = top
        for level in levels:
            if level.get("is_null_level"):
                found[-1] = Level(level.get("label_for_charts", "null"), False, "")
                continue
            missing = " and ".join(p for p in ("m", "u") if level.get(f"{p}_probability") is None)
            found[value] = Level(level.get("label_for_charts", str(value)), value == top, missing)
            value -= 1
        out[comparison["output_column_name"]] = found
    return out


def untrained_parameters(levels: dict[str, dict[int, Level]]) -> list[str]:
    """Every level of the model Splink could not train, as `trait: level (m and u)`."""
    return [
        f"{name}: {level.label} ({level.untrained})"
        for name, by_gamma in levels.items()
        for _gamma, level in sorted(by_gamma.items(), reverse=True)
        if level.untrained
    ]


def train(frame: Any, config: MatchingConfig, *, engine_url: str = "duckdb://") -> Any:
    """A Splink linker over the records, trained without labels."""
    from splink import Linker

    if len(frame) < 2:
        raise MatchingFailed(
            [FieldProblem("matching", "fewer than two profiles have two or more compared traits")]
        )
    api, make_input = _db_api(engine_url, config)
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
                raise MatchingFailed(
                    [FieldProblem("matching", f"cannot estimate the prior from prior_rules: {exc}")]
                ) from exc
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.max_pairs_for_u, seed=config.seed
        )
        trained = 0
        for rule in config.training_rules or config.blocking_rules:
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
            raise MatchingFailed(
                [FieldProblem("matching", "no blocking rule found pairs to train on")]
            )
    return linker


def score(
    frame: Any, config: MatchingConfig, *, engine_url: str = "duckdb://", floor: float | None = None
) -> list[ScoredPair]:
    """Every candidate pair scoring at least `floor` (default the review threshold)."""
    return predict(train(frame, config, engine_url=engine_url), config, floor=floor)


def predict(linker: Any, config: MatchingConfig, *, floor: float | None = None) -> list[ScoredPair]:
    """The trained linker's candidate pairs scoring at least `floor` (default the review
    threshold), strongest first."""
    threshold = config.review_threshold if floor is None else floor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictions = linker.inference.predict(threshold_match_probability=threshold)
        table = predictions.as_pandas_dataframe()
    model = model_levels(linker)
    gammas = [c.removeprefix("gamma_") for c in table.columns if c.startswith("gamma_")]
    out = []
    for row in table.itertuples(index=False):
        values = row._asdict()
        left, right = sorted((str(values[f"{UNIQUE_ID}_l"]), str(values[f"{UNIQUE_ID}_r"])))
        reached = {name: model.get(name, {}).get(int(values[f"gamma_{name}"])) for name in gammas}
        out.append(
            ScoredPair(
                left=left,
                right=right,
                probability=float(values["match_probability"]),
                weight=float(values["match_weight"]),
                levels={
                    name: level.label if level else str(values[f"gamma_{name}"])
                    for name, level in reached.items()
                },
                exact=tuple(name for name, level in reached.items() if level and level.exact),
                untrained=tuple(
                    f"{name}: {level.label} ({level.untrained})"
                    for name, level in reached.items()
                    if level and level.untrained
                ),
            )
        )
    out.sort(key=lambda p: (-p.probability, p.left, p.right))
    return out


# -- running on a business's profiles --------------------------------------------------

PairOutcomeKind = Literal["linked", "review", "refused", "already_linked", "skipped"]


class PairOutcome(BaseModel):
    """What one scored pair of profiles led to."""

    profile_id: str
    other_profile_id: str
    probability: float
    match_weight: float
    levels: dict[str, str]
    outcome: PairOutcomeKind
    reason: str | None = None
    review_id: str | None = None


class MatchReport(BaseModel):
    run_id: str
    dry_run: bool
    profiles: int
    records: int
    link_threshold: float
    review_threshold: float
    # Levels of the model Splink could not train: a pair reaching one is never linked
    # automatically.
    untrained: list[str] = []
    linked: int
    review: int
    refused: int
    pairs: list[PairOutcome]


class UndoReport(BaseModel):
    run_id: str | None
    edges_removed: int
    splits: list[SplitReport]
    reviews_rejected: int


def _representatives(conn: Connection, business_id: str, rules: IdentityRules) -> dict[str, Key]:
    """Each profile's most trusted identifier: the end of a probabilistic edge."""
    best: dict[str, Key] = {}
    for pid, kind, value in profiles.identifier_rows(conn, business_id=business_id):
        key = (kind, value)
        if kind not in rules.kinds:
            continue
        current = best.get(pid)
        if current is None or (rules.rank(kind), value) < (rules.rank(current[0]), current[1]):
            best[pid] = key
    return best


def _rejected_pairs(conn: Connection, business_id: str) -> set[frozenset[str]]:
    rows = conn.execute(
        select(identity_reviews.c.profile_ids).where(
            identity_reviews.c.business_id == business_id,
            identity_reviews.c.status == "rejected",
        )
    ).scalars()
    return {frozenset(orjson.loads(r)) for r in rows}


def matching_config(rules: IdentityRules) -> MatchingConfig:
    if rules.matching is None:
        raise InvalidInput(
            [FieldProblem("matching", "no matching section in the identity rules; see docs")]
        )
    return rules.matching


def held_for_review(pair: ScoredPair, config: MatchingConfig) -> str | None:
    """Why a pair at or above the link threshold must still wait for an operator: its
    score rests on a parameter Splink did not train (a default value), or no
    distinguishing trait agrees exactly (names alone never link). None: it may link."""
    if pair.probability < config.link_threshold:
        return None
    if pair.untrained:
        return (
            f"probabilistic match {pair.probability:.3f}, but the model did not train "
            f"{'; '.join(pair.untrained)}: the score rests on default values"
        )
    distinguishing = config.distinguishing
    if not any(name in distinguishing for name in pair.exact):
        agreed = ", ".join(pair.exact) or "nothing"
        wanted = ", ".join(distinguishing) or "none configured"
        return (
            f"probabilistic match {pair.probability:.3f} on {agreed} alone: no "
            f"distinguishing trait ({wanted}) agrees exactly"
        )
    return None


def _decide(
    resolver: Resolver,
    pair: ScoredPair,
    keys: tuple[Key, Key],
    config: MatchingConfig,
    run_id: str,
    rejected: set[frozenset[str]],
) -> PairOutcome:
    now = utcnow()
    result: dict[str, Any] = {
        "profile_id": pair.left,
        "other_profile_id": pair.right,
        "probability": pair.probability,
        "match_weight": pair.weight,
        "levels": pair.levels,
    }
    owners = [resolver.profile_of(k) for k in keys]
    if None in owners:
        return PairOutcome(**result, outcome="skipped", reason="a profile no longer exists")
    if owners[0] == owners[1]:
        return PairOutcome(**result, outcome="already_linked")
    if frozenset(owners) in rejected or frozenset((pair.left, pair.right)) in rejected:
        return PairOutcome(**result, outcome="skipped", reason="an operator rejected this merge")
    evidence = Evidence(
        rule=RULE,
        occurred_at=now,
        message_id=run_id,
        note=f"match probability {pair.probability:.4f}",
        details={
            "run_id": run_id,
            "match_probability": pair.probability,
            "match_weight": pair.weight,
            "levels": pair.levels,
            "profiles": [pair.left, pair.right],
        },
    )
    held = held_for_review(pair, config)
    if pair.probability < config.link_threshold or held is not None:
        refusal = resolver.refusal(list(keys), now)
        if refusal is not None:
            return PairOutcome(**result, outcome="refused", reason=refusal)
        reason = held or (
            f"probabilistic match {pair.probability:.3f}: between the review threshold "
            f"{config.review_threshold} and the link threshold {config.link_threshold}"
        )
        review_id = resolver.propose_merge(list(keys), evidence, reason)
        return PairOutcome(**result, outcome="review", reason=reason, review_id=review_id)
    outcome = resolver.link(list(keys), evidence)
    if outcome.review_id is not None:
        return PairOutcome(
            **result,
            outcome="review",
            reason=outcome.dropped[0][1] if outcome.dropped else None,
            review_id=outcome.review_id,
        )
    if len(outcome.kept) == 2:
        return PairOutcome(**result, outcome="linked")
    return PairOutcome(
        **result, outcome="refused", reason=outcome.dropped[0][1] if outcome.dropped else None
    )


def run_match(
    store: Store, *, business_id: str, engine_url: str, dry_run: bool = False
) -> MatchReport:
    """Score the business's profiles and link, propose or refuse each pair, strongest first.

    Scoring runs outside any transaction; the decisions are made in one write transaction
    against the profiles as they are then (a dry run decides in a read transaction and
    writes nothing).
    """
    with store.read() as conn:
        rules = service.get_rules(conn, business_id=business_id)
        config = matching_config(rules)
        rows = profiles.profile_rows(conn, business_id=business_id)
        keys = _representatives(conn, business_id, rules)
    frame = records_frame(((r.id, r.traits) for r in rows if r.id in keys), config)
    scored: list[ScoredPair] = []
    untrained: list[str] = []
    if len(frame) >= 2:
        linker = train(frame, config, engine_url=engine_url)
        scored = predict(linker, config)
        untrained = untrained_parameters(model_levels(linker))
    run_id = new_id("match")
    session = store.read() if dry_run else store.write()
    with session as conn:
        resolver = Resolver(
            conn=conn,
            business_id=business_id,
            rules=rules,
            lock_rows=not dry_run and store.dialect == "postgresql",
        )
        rejected = _rejected_pairs(conn, business_id)
        outcomes = [
            _decide(resolver, pair, (keys[pair.left], keys[pair.right]), config, run_id, rejected)
            for pair in scored
        ]
        if not dry_run:
            resolver.flush()
    counts = {kind: sum(o.outcome == kind for o in outcomes) for kind in ("linked", "review")}
    return MatchReport(
        run_id=run_id,
        dry_run=dry_run,
        profiles=len(rows),
        records=len(frame),
        link_threshold=config.link_threshold,
        review_threshold=config.review_threshold,
        untrained=untrained,
        linked=counts["linked"],
        review=counts["review"],
        refused=sum(o.outcome == "refused" for o in outcomes),
        pairs=outcomes,
    )


def undo_last_match(conn: Connection, *, business_id: str) -> UndoReport:
    """Remove the live probabilistic edges of the latest run that made any, splitting the
    profiles they joined (unmerge), and reject that run's pending review items."""
    edges = identity_edges.c
    run_id = conn.execute(
        select(edges.message_id)
        .where(edges.business_id == business_id, edges.rule == RULE, edges.removed_at.is_(None))
        .order_by(edges.created_at.desc(), edges.id.desc())
        .limit(1)
    ).scalar()
    if run_id is None:
        return UndoReport(run_id=None, edges_removed=0, splits=[], reviews_rejected=0)
    edge_ids = conn.execute(
        select(edges.id)
        .where(
            edges.business_id == business_id,
            edges.rule == RULE,
            edges.message_id == run_id,
            edges.removed_at.is_(None),
        )
        .order_by(edges.id.desc())
    ).scalars()
    splits = [
        service.unmerge(
            conn, business_id=business_id, edge_id=edge_id, reason=f"match run {run_id} undone"
        )
        for edge_id in list(edge_ids)
    ]
    pending = [
        item.id
        for item in service.list_reviews(conn, business_id=business_id)
        if item.message_id == run_id
    ]
    for review_id in pending:
        service.reject_review(
            conn, business_id=business_id, review_id=review_id, note=f"match run {run_id} undone"
        )
    return UndoReport(
        run_id=run_id,
        edges_removed=len(splits),
        splits=[s for s in splits if len(s.profiles) > 1],
        reviews_rejected=len(pending),
    )
