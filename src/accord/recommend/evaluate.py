"""Offline quality: leave each buyer's last order out, train on the rest, and measure
hit rate@10 and NDCG@10 of each model against the popularity baseline."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from ibis.backends import BaseBackend

from accord.engine.connection import is_spark
from accord.recommend import als, cooccurrence
from accord.recommend.interactions import split_last_purchase, strengths
from accord.recommend.ranking import hit_and_ndcg, rank

K = 10
MODELS = ("popularity", "cooccurrence", "als")


@dataclass(frozen=True)
class TrainSettings:
    half_life_days: float = 30.0
    top_k: int = 50
    per_person: int = 50
    min_support: int = 2
    holdout_gap_hours: int = 24
    als: als.Settings = field(default_factory=als.Settings)


@dataclass
class Quality:
    model: str
    hit_rate: float
    ndcg: float
    people: int
    training_seconds: float
    library: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Evaluation:
    qualities: list[Quality]
    held_out_people: int
    cold_people: int  # held out, but nothing of theirs before: every model serves popular

    def best(self, among: Sequence[str]) -> str:
        scored = [q for q in self.qualities if q.model in among]
        return max(scored, key=lambda q: (q.ndcg, q.hit_rate, -among.index(q.model))).model


Neighbours = dict[str, list[tuple[str, float]]]


def neighbours_from(table: Any, backend: BaseBackend) -> Neighbours:
    rows = backend.to_pyarrow(table.select("product_id", "related_id", "score")).to_pydict()
    found: Neighbours = {}
    for product, related, score in zip(
        rows["product_id"], rows["related_id"], rows["score"], strict=True
    ):
        found.setdefault(product, []).append((related, float(score)))
    for related in found.values():
        related.sort(key=lambda kv: (-kv[1], kv[0]))
    return found


def popular_from(table: Any, backend: BaseBackend) -> list[tuple[str, float]]:
    rows = backend.to_pyarrow(table).to_pydict()
    pairs = zip(rows["product_id"], rows["score"], strict=True)
    return sorted(((p, float(s)) for p, s in pairs), key=lambda kv: (-kv[1], kv[0]))


def _timed(work: Callable[[], Any]) -> tuple[Any, float]:
    clock = time.perf_counter()
    result = work()
    return result, time.perf_counter() - clock


def als_factors(backend: BaseBackend, table: Any, settings: als.Settings) -> als.Factors:
    """ALS where the engine is: MLlib on Spark, `implicit` beside DuckDB."""
    if is_spark(backend):
        return als.fit_spark(backend, table, settings)
    return als.fit_implicit(
        backend.to_pyarrow(table.select("profile_id", "product_id", "strength")), settings
    )


def evaluate(
    backend: BaseBackend,
    rows: Any,
    *,
    now: datetime,
    settings: TrainSettings | None = None,
    models: Sequence[str] = MODELS,
    native_als: Sequence[str] = (),
) -> Evaluation:
    """Each model's quality on the same leave-last-purchase-out split.

    `native_als` names extra ALS runs ranked with the person's own factors ("implicit",
    "spark"), as the libraries recommend; the served "als" ranks through product
    neighbours like co-occurrence does.
    """
    settings = settings or TrainSettings()
    split = split_last_purchase(backend, rows, gap_hours=settings.holdout_gap_hours)
    train = strengths(backend, split.train, now=now, half_life_days=settings.half_life_days)
    held: dict[str, set[str]] = {}
    pairs = backend.to_pyarrow(split.held_out).to_pydict()
    for person, product in zip(pairs["profile_id"], pairs["product_id"], strict=True):
        held.setdefault(person, set()).add(product)
    known = backend.to_pyarrow(
        train.select("profile_id", "product_id", "strength", "bought")
    ).to_pydict()
    histories: dict[str, dict[str, float]] = {}
    bought: dict[str, set[str]] = {}
    for person, product, strength, was_bought in zip(
        known["profile_id"], known["product_id"], known["strength"], known["bought"], strict=True
    ):
        if person in held:
            histories.setdefault(person, {})[product] = float(strength)
            if was_bought:
                bought.setdefault(person, set()).add(product)
    warm = sorted(p for p in held if p in histories)
    if not warm:
        return Evaluation([], held_out_people=len(held), cold_people=len(held))
    popular_table, popular_seconds = _timed(lambda: cooccurrence.popular(backend, train))
    popular = popular_from(popular_table, backend)

    def measure(name: str, lists: Callable[[str], list[str]], seconds: float, lib: str) -> Quality:
        hits = ndcgs = 0.0
        for person in warm:
            hit, ndcg = hit_and_ndcg(lists(person), held[person], K)
            hits, ndcgs = hits + hit, ndcgs + ndcg
        count = max(len(warm), 1)
        return Quality(name, hits / count, ndcgs / count, len(warm), seconds, lib)

    def served(neighbours: Neighbours) -> Callable[[str], list[str]]:
        def lists(person: str) -> list[str]:
            ranked = rank(
                history=histories[person],
                neighbours=neighbours,
                popular=popular,
                exclude=bought.get(person, ()),
                limit=K,
            )
            return [r.product_id for r in ranked]

        return lists

    qualities = []
    engine = "Spark" if is_spark(backend) else "DuckDB"
    for model in models:
        if model == "popularity":
            qualities.append(measure(model, _popular(bought, popular), popular_seconds, engine))
        elif model == "cooccurrence":
            table, seconds = _timed(
                lambda: cooccurrence.neighbours(
                    backend,
                    train,
                    top_k=settings.top_k,
                    per_person=settings.per_person,
                    min_support=settings.min_support,
                )
            )
            qualities.append(
                measure(model, served(neighbours_from(table, backend)), seconds, engine)
            )
        elif model == "als":
            factors, seconds = _timed(lambda: als_factors(backend, train, settings.als))
            related, more = _timed(partial(als.neighbours_of, factors, top_k=settings.top_k))
            qualities.append(measure(model, served(related), seconds + more, factors.library))
        else:
            raise ValueError(f"unknown model {model!r}")
    for library in native_als:
        if library == "implicit":
            table = backend.to_pyarrow(train.select("profile_id", "product_id", "strength"))
            factors, seconds = _timed(partial(als.fit_implicit, table, settings.als))
        else:
            factors, seconds = _timed(lambda: als.fit_spark(backend, train, settings.als))
        lists = _native(factors, bought, popular)
        qualities.append(measure(f"als_native_{library}", lists, seconds, factors.library))
    return Evaluation(qualities, held_out_people=len(held), cold_people=len(held) - len(warm))


def _popular(
    bought: Mapping[str, set[str]], popular: Sequence[tuple[str, float]]
) -> Callable[[str], list[str]]:
    def lists(person: str) -> list[str]:
        ranked = rank(history={}, neighbours={}, popular=popular, exclude=bought.get(person, ()))
        return [r.product_id for r in ranked[:K]]

    return lists


def _native(
    factors: als.Factors, bought: Mapping[str, set[str]], popular: Sequence[tuple[str, float]]
) -> Callable[[str], list[str]]:
    at = {person: i for i, person in enumerate(factors.people)}

    def lists(person: str) -> list[str]:
        scores = als.user_scores(factors, at[person]) if person in at else {}
        excluded = bought.get(person, set())
        ranked = sorted(
            (kv for kv in scores.items() if kv[0] not in excluded), key=lambda kv: (-kv[1], kv[0])
        )
        top = [p for p, _ in ranked[:K]]
        top += [p for p, _ in popular if p not in excluded and p not in top][: K - len(top)]
        return top

    return lists
