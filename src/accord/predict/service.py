"""Train the prediction models of a business, check them on a time-based holdout, write
their scores to profiles as traits with percentile cohorts, and keep a model card each.

- purchase likelihood: will the person order in the next `horizon_days`?
- churn likelihood: will a buyer *not* order in the next `horizon_days`?
  Both are scikit-learn gradient-boosted trees on event-count features. Trained with the
  cutoff 2×horizon ago (labels: the horizon after it), evaluated with the cutoff one
  horizon ago (labels: the last horizon), reported against a frequency-only baseline
  (orders before the cutoff), then refitted on the latest labelled cutoff and applied now.
- predicted lifetime value: BG/NBD + Gamma-Gamma on purchase days, 12 months, discounted.
- category affinity: favourite category and its share of product interest.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sqlalchemy import Connection

from accord.audiences.compile import EngineTables
from accord.audiences.refresh import engine_tables, snapshot
from accord.core.clock import utcnow
from accord.predict.features import (
    Features,
    category_affinity,
    features,
    purchases,
)
from accord.predict.lifetime import fit_beta_geo, fit_gamma_gamma, lifetime_value
from accord.profiles.service import profile_rows, set_traits
from accord.store.db import Store

# The last horizon's labels are only complete after the horizon; a small base is not enough.
MIN_POSITIVES = 5


class NotEnoughData(ValueError):
    """Too little history or too few positive examples to train and evaluate a model."""


class Rejected(ValueError):
    """The model did not beat its baseline on the holdout."""

    def __init__(self, card: ModelCard) -> None:
        metrics = card.metrics
        super().__init__(
            f"holdout AUC {metrics['auc']:.3f} did not beat the frequency-only baseline "
            f"{metrics['baseline_auc_frequency_only']:.3f}; scores not written"
        )
        self.card = card


@dataclass
class ModelCard:
    model: str
    trait: str
    algorithm: str
    features: list[str]
    trained_at: str
    training_cutoff: str
    holdout_cutoff: str
    holdout_end: str
    metrics: dict[str, float]
    rows: dict[str, int]
    versions: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    # False when the model lost to its baseline on the holdout: its scores are not written.
    used: bool = True


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("scikit-learn", "scipy", "numpy")}


def percentiles(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each score's percentile rank (0-100, ties share the higher rank)."""
    if len(scores) == 0:
        return np.asarray([], dtype=np.float64)
    order = np.sort(scores)
    ranks = np.searchsorted(order, scores, side="right")
    result: NDArray[np.float64] = np.round(100.0 * ranks / len(scores), 1)
    return result


def cohort(percentile: float) -> str:
    if percentile > 90:
        return "top 10%"
    if percentile > 75:
        return "top 25%"
    if percentile > 50:
        return "top 50%"
    return "bottom 50%"


def _auc(labels: NDArray[np.int64], scores: NDArray[np.float64]) -> float:
    return float(roc_auc_score(labels, scores))


@dataclass
class Trained:
    card: ModelCard
    scores: dict[str, float]


def _classifier(rows: int) -> HistGradientBoostingClassifier:
    # Shallow trees with large leaves: event counts of a few thousand people overfit
    # quickly (deeper, longer-trained trees lost to the frequency-only baseline).
    return HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.05,
        max_depth=3,
        min_samples_leaf=max(20, rows // 50),
        random_state=0,
    )


def _check(data: Features, what: str) -> None:
    assert data.labels is not None
    positives = int(data.labels.sum())
    if positives < MIN_POSITIVES or positives > len(data.labels) - MIN_POSITIVES:
        raise NotEnoughData(
            f"{what}: {positives} positives out of {len(data.labels)}; "
            f"need at least {MIN_POSITIVES} of each class"
        )


def _likelihood_model(
    tables: EngineTables,
    backend: Any,
    *,
    now: datetime,
    horizon_days: int,
    model: str,
    trait: str,
    churn: bool,
) -> Trained:
    horizon = timedelta(days=horizon_days)
    cutoffs = {"train": now - 2 * horizon, "holdout": now - horizon}
    sets = {
        name: features(tables, backend, cutoff=cutoff, label_days=horizon_days)
        for name, cutoff in cutoffs.items()
    }
    current = features(tables, backend, cutoff=now)
    if churn:
        # Churn is about buyers: who of them will not order again in the horizon.
        sets = {name: _buyers(data, invert=True) for name, data in sets.items()}
        current = _buyers(current, invert=False)
    for name, data in sets.items():
        _check(data, f"{model} {name} set")
    train, holdout = sets["train"], sets["holdout"]
    assert train.labels is not None and holdout.labels is not None
    classifier = _classifier(len(train.labels)).fit(train.values, train.labels)
    scored = classifier.predict_proba(holdout.values)[:, 1]
    # Frequency-only baseline: more orders before, more likely to order (less to churn).
    baseline = -holdout.orders if churn else holdout.orders
    metrics = {
        "auc": _auc(holdout.labels, scored),
        "baseline_auc_frequency_only": _auc(holdout.labels, baseline),
        "holdout_positive_rate": float(holdout.labels.mean()),
    }
    # Refit on the latest complete labels, then score everyone now.
    final = _classifier(len(holdout.labels)).fit(holdout.values, holdout.labels)
    scores = final.predict_proba(current.values)[:, 1] if current.profile_ids else np.array([])
    card = ModelCard(
        model=model,
        trait=trait,
        algorithm=f"scikit-learn {classifier!r}",
        features=train.names,
        trained_at=utcnow().isoformat(),
        training_cutoff=cutoffs["train"].isoformat(),
        holdout_cutoff=cutoffs["holdout"].isoformat(),
        holdout_end=now.isoformat(),
        metrics=metrics,
        rows={
            "train": len(train.profile_ids),
            "holdout": len(holdout.profile_ids),
            "scored": len(current.profile_ids),
        },
        versions=_versions(),
        notes=(
            "Trained with the cutoff two horizons ago, evaluated on the last horizon "
            "(time-based holdout), refitted on the last horizon's labels for scoring."
        ),
    )
    if metrics["auc"] <= metrics["baseline_auc_frequency_only"]:
        card.used = False
        raise Rejected(card)
    return Trained(card, dict(zip(current.profile_ids, map(float, scores), strict=True)))


def _buyers(data: Features, *, invert: bool) -> Features:
    keep = data.orders > 0
    labels = None
    if data.labels is not None:
        labels = (1 - data.labels[keep]) if invert else data.labels[keep]
    return Features(
        profile_ids=[p for p, k in zip(data.profile_ids, keep, strict=True) if k],
        names=data.names,
        values=data.values[keep],
        orders=data.orders[keep],
        labels=labels,
    )


def _lifetime(tables: EngineTables, backend: Any, *, now: datetime, months: int) -> Trained:
    history = purchases(tables, backend, cutoff=now)
    if len(history.profile_ids) < 2 * MIN_POSITIVES or not (history.frequency > 0).any():
        raise NotEnoughData("lifetime value: too few repeat buyers")
    rates = fit_beta_geo(history.frequency, history.recency, history.age)
    spend = fit_gamma_gamma(history.frequency, history.monetary)
    values = lifetime_value(
        rates,
        spend,
        frequency=history.frequency,
        recency=history.recency,
        age=history.age,
        monetary=history.monetary,
        months=months,
    )
    card = ModelCard(
        model=f"predicted_ltv_{months}m",
        trait=f"predicted_ltv_{months}m",
        algorithm="BG/NBD + Gamma-Gamma (maximum likelihood, scipy), 1 % monthly discount",
        features=["purchase days: frequency, recency, age", "mean repeat order value"],
        trained_at=utcnow().isoformat(),
        training_cutoff=now.isoformat(),
        holdout_cutoff="",
        holdout_end="",
        metrics={
            "r": rates.r,
            "alpha": rates.alpha,
            "a": rates.a,
            "b": rates.b,
            "p": spend.p,
            "q": spend.q,
            "v": spend.v,
            "log_likelihood_bgnbd": rates.log_likelihood,
        },
        rows={
            "buyers": len(history.profile_ids),
            "repeat_buyers": int((history.frequency > 0).sum()),
        },
        versions=_versions(),
        notes="Parameters validated on CDNOW against the lifetimes package (tests/predict).",
    )
    return Trained(card, dict(zip(history.profile_ids, map(float, values), strict=True)))


@dataclass
class TrainReport:
    cards: list[ModelCard]
    skipped: dict[str, str]
    profiles_updated: int
    seconds: float = 0.0


# Beside the model cards: what the last training did (when, how long, what it skipped).
LAST_TRAINING = "last_training.json"


def train(
    store: Store,
    *,
    business_id: str,
    backend: Any,
    lake_url: str,
    models_dir: Path,
    horizon_days: int = 30,
    ltv_months: int = 12,
    now: datetime | None = None,
) -> TrainReport:
    """Train every model, write scores and cohorts to profiles, save the model cards and
    a record of this training (`last_training`)."""
    started = utcnow()
    clock = time.monotonic()
    now = now or started
    with store.read() as conn:
        state = snapshot(
            conn,
            business_id=business_id,
            trait_types={},
            with_consent=False,
        )
    tables = engine_tables(backend, lake_url=lake_url, business_id=business_id, state=state)
    trained: list[Trained] = []
    rejected: list[ModelCard] = []
    skipped: dict[str, str] = {}

    def purchase() -> Trained:
        name = f"purchase_likelihood_{horizon_days}d"
        return _likelihood_model(
            tables,
            backend,
            now=now,
            horizon_days=horizon_days,
            model=name,
            trait=name,
            churn=False,
        )

    def churn() -> Trained:
        name = f"churn_likelihood_{horizon_days}d"
        return _likelihood_model(
            tables,
            backend,
            now=now,
            horizon_days=horizon_days,
            model=name,
            trait=name,
            churn=True,
        )

    def value() -> Trained:
        return _lifetime(tables, backend, now=now, months=ltv_months)

    jobs: dict[str, Callable[[], Trained]] = {
        f"purchase_likelihood_{horizon_days}d": purchase,
        f"churn_likelihood_{horizon_days}d": churn,
        f"predicted_ltv_{ltv_months}m": value,
    }
    for name, job in jobs.items():
        try:
            trained.append(job())
        except NotEnoughData as exc:
            skipped[name] = str(exc)
        except Rejected as exc:
            skipped[name] = str(exc)
            rejected.append(exc.card)
    values: dict[str, dict[str, Any]] = {}
    for result in trained:
        ids = list(result.scores)
        scores = np.asarray([result.scores[p] for p in ids], dtype=np.float64)
        for profile_id, score, rank in zip(ids, scores, percentiles(scores), strict=True):
            traits = values.setdefault(profile_id, {})
            traits[result.card.trait] = round(float(score), 6)
            traits[f"{result.card.trait}_percentile"] = float(rank)
            traits[f"{result.card.trait}_cohort"] = cohort(float(rank))
    for profile_id, (category, share) in category_affinity(tables, backend, cutoff=now).items():
        traits = values.setdefault(profile_id, {})
        traits["favourite_category"] = category
        traits["favourite_category_share"] = round(share, 4)
    with store.write() as conn:
        updated = set_traits(conn, business_id=business_id, values=values, at=now)
    folder = models_dir / business_id
    folder.mkdir(parents=True, exist_ok=True)
    cards = [t.card for t in trained] + rejected
    for card in cards:
        (folder / f"{card.model}.json").write_bytes(
            orjson.dumps(asdict(card), option=orjson.OPT_INDENT_2)
        )
    report = TrainReport(cards, skipped, updated, seconds=time.monotonic() - clock)
    record = {
        "started_at": started.isoformat(),
        "finished_at": utcnow().isoformat(),
        "as_of": now.isoformat(),
        "seconds": round(report.seconds, 3),
        "models": {card.model: card.used for card in cards},
        "skipped": skipped,
        "profiles_updated": updated,
    }
    (folder / LAST_TRAINING).write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    return report


def model_cards(models_dir: Path, *, business_id: str) -> list[dict[str, Any]]:
    folder = models_dir / business_id
    if not folder.exists():
        return []
    return [
        orjson.loads(path.read_bytes())
        for path in sorted(folder.glob("*.json"))
        if path.name != LAST_TRAINING
    ]


def last_training(models_dir: Path, *, business_id: str) -> dict[str, Any] | None:
    """What the last training recorded: started_at, finished_at, as_of, seconds, models
    (name → whether its scores were written), skipped (name → reason), profiles_updated."""
    path = models_dir / business_id / LAST_TRAINING
    if not path.exists():
        return None
    found: dict[str, Any] = orjson.loads(path.read_bytes())
    return found


# Score distributions ---------------------------------------------------------------

SCORE_BINS = 10


@dataclass(frozen=True)
class ScoreDistribution:
    """How a model's scores spread over the people scored.

    A likelihood is a histogram: people per tenth of the 0–1 range. A value (lifetime
    value) is skewed, so it is shown by deciles of people: the mean value of each tenth
    of the people, lowest first.
    """

    trait: str
    kind: Literal["likelihood", "value"]
    labels: list[str]
    values: list[float | int]
    scored: int


def likelihood_histogram(scores: Sequence[float], bins: int = SCORE_BINS) -> list[int]:
    """People per equal-width bin of [0, 1]; a score of exactly 1 counts in the last bin."""
    counts = [0] * bins
    for score in scores:
        counts[max(0, min(int(score * bins), bins - 1))] += 1
    return counts


def decile_means(values: Sequence[float], parts: int = SCORE_BINS) -> list[float]:
    """The mean of each tenth of the values once sorted (fewer parts than people: fewer
    parts)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    return [round(float(part.mean()), 2) for part in np.array_split(ordered, parts) if len(part)]


def score_distributions(
    conn: Connection, *, business_id: str, cards: Sequence[Mapping[str, Any]]
) -> list[ScoreDistribution]:
    """The distribution of each used model's scores as written on profiles now, read in
    one pass over the business's profiles."""
    used = [card for card in cards if card.get("used", True)]
    found: dict[str, list[float]] = {card["trait"]: [] for card in used}
    for row in profile_rows(conn, business_id=business_id):
        for trait, scores in found.items():
            score = row.traits.get(trait)
            if isinstance(score, int | float) and not isinstance(score, bool):
                scores.append(float(score))
    distributions = []
    for card in used:
        scores = found[card["trait"]]
        if "auc" in card.get("metrics", {}):
            width = 100 // SCORE_BINS
            distributions.append(
                ScoreDistribution(
                    trait=card["trait"],
                    kind="likelihood",
                    labels=[f"{i * width}–{(i + 1) * width} %" for i in range(SCORE_BINS)],
                    values=list(likelihood_histogram(scores)),
                    scored=len(scores),
                )
            )
        else:
            means = decile_means(scores)
            distributions.append(
                ScoreDistribution(
                    trait=card["trait"],
                    kind="value",
                    labels=[f"decile {i + 1}" for i in range(len(means))],
                    values=list(means),
                    scored=len(scores),
                )
            )
    return distributions
