"""Item-to-item co-occurrence on the engine: products the same people cared about.

score(i, j) = Σ_p s(p,i)·s(p,j) / √(Σ_p s(p,i)² · Σ_p s(p,j)²), a cosine over people of
time-decayed interest s (see `interactions.strengths`). Each person counts with their
`per_person` strongest products, so one heavy browser cannot cost a quadratic join, and
a pair needs `min_support` people in common. One Ibis expression: DuckDB and Spark
compute the same scores (tests/recommend/test_engines.py).
"""

from __future__ import annotations

from typing import Any

import ibis
from ibis.backends import BaseBackend

from accord.engine.tables import materialise


def _capped(strengths: Any, per_person: int) -> Any:
    order = ibis.row_number().over(
        group_by=strengths.profile_id,
        order_by=[strengths.strength.desc(), strengths.product_id],
    )
    ranked = strengths.mutate(position=order)
    return ranked.filter(ranked.position < per_person).select(
        "profile_id", "product_id", "strength"
    )


def neighbours(
    backend: BaseBackend,
    strengths: Any,
    *,
    top_k: int = 50,
    per_person: int = 50,
    min_support: int = 2,
) -> Any:
    """product_id, related_id, score, support: each product's `top_k` most related."""
    capped = _capped(strengths, per_person)
    left = capped.select(profile_id="profile_id", product_id="product_id", left="strength")
    right = capped.select(right_profile="profile_id", related_id="product_id", right="strength")
    pairs = left.join(
        right,
        (left.profile_id == right.right_profile) & (left.product_id != right.related_id),
    )
    together = pairs.group_by(["product_id", "related_id"]).aggregate(
        dot=(pairs.left * pairs.right).sum(), support=pairs.profile_id.count()
    )
    together = together.filter(together.support >= min_support)
    norms = capped.group_by("product_id").aggregate(norm=(capped.strength * capped.strength).sum())
    first = norms.select(norm_product="product_id", first_norm="norm")
    second = norms.select(norm_related="product_id", second_norm="norm")
    scored = together.join(first, together.product_id == first.norm_product).join(
        second, together.related_id == second.norm_related
    )
    scored = scored.select(
        "product_id",
        "related_id",
        "support",
        score=scored.dot / (scored.first_norm * scored.second_norm).sqrt(),
    )
    order = ibis.row_number().over(
        group_by=scored.product_id, order_by=[scored.score.desc(), scored.related_id]
    )
    ranked = scored.mutate(position=order)
    best = ranked.filter(ranked.position < top_k).select(
        "product_id", "related_id", "score", "support"
    )
    return materialise(backend, best)


def popular(backend: BaseBackend, strengths: Any, *, top: int = 200) -> Any:
    """product_id, score: the products of most time-decayed interest over everyone."""
    totals = strengths.group_by("product_id").aggregate(score=strengths.strength.sum())
    return materialise(
        backend, totals.order_by([totals.score.desc(), totals.product_id]).limit(top)
    )
