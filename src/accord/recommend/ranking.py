"""How a list is made from precomputed tables: pure functions shared by serving and the
offline evaluation, so what is measured is what is served."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Source = Literal["context", "personal", "popular"]


@dataclass(frozen=True)
class Ranked:
    product_id: str
    score: float
    source: Source


def rank(
    *,
    history: Mapping[str, float],
    neighbours: Mapping[str, Sequence[tuple[str, float]]],
    popular: Sequence[tuple[str, float]],
    exclude: Iterable[str] = (),
    context: str | None = None,
    limit: int = 10,
) -> list[Ranked]:
    """Products related to the context product first, then to the person's history
    (Σ strength × similarity, a product being similar to itself by 1), then the popular
    ones; never an excluded product (out of
    stock, already bought) nor the context product itself."""
    excluded = set(exclude)
    if context is not None:
        excluded.add(context)
    out: list[Ranked] = []
    seen: set[str] = set()

    def take(scores: Mapping[str, float], source: Source) -> None:
        for product, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
            if len(out) >= limit:
                return
            if product not in excluded and product not in seen and score > 0:
                seen.add(product)
                out.append(Ranked(product, score, source))

    if context is not None:
        take(dict(neighbours.get(context, ())), "context")
    personal: dict[str, float] = {}
    for product, strength in history.items():
        # A product counts as its own nearest neighbour: what someone looked at and did
        # not buy is often what they buy next.
        personal[product] = personal.get(product, 0.0) + strength
        for related, similarity in neighbours.get(product, ()):
            personal[related] = personal.get(related, 0.0) + strength * similarity
    take(personal, "personal")
    take(dict(popular), "popular")
    return out


def hit_and_ndcg(ranked: Sequence[str], relevant: set[str], k: int = 10) -> tuple[float, float]:
    """Hit rate (any relevant product in the top k) and NDCG@k with binary relevance."""
    if not relevant:
        raise ValueError("nothing relevant to find")
    top = list(ranked[:k])
    gains = sum(1.0 / math.log2(i + 2) for i, p in enumerate(top) if p in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    hit = 1.0 if any(p in relevant for p in top) else 0.0
    return hit, gains / ideal
