"""Deterministic assignment of units to arms: hash(seed, unit) → bucket → arm.

No state is kept: the same seed and unit always give the same arm (sticky), and two
experiments with different seeds divide units independently. Experiments sharing a
namespace own disjoint ranges of its buckets, so a unit enters at most one of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from accord.experiments.models import NAMESPACE_BUCKETS


def unit_hash(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) from the first 64 bits of SHA-256(salt, unit)."""
    digest = hashlib.sha256(f"{salt}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def namespace_bucket(namespace: str, unit: str) -> int:
    return int(unit_hash(f"namespace:{namespace}", unit) * NAMESPACE_BUCKETS)


def in_namespace_range(namespace: str | None, unit: str, start: int, end: int) -> bool:
    if namespace is None:
        return True
    return start <= namespace_bucket(namespace, unit) < end


def arm_for(seed: str, unit: str, weights: Sequence[float]) -> tuple[int, float]:
    """Index of the unit's arm under `weights` (cumulative ranges of [0, 1)) and its hash."""
    position = unit_hash(seed, unit)
    total = sum(weights)
    cumulative = 0.0
    for index, weight in enumerate(weights):
        cumulative += weight / total
        if position < cumulative:
            return index, position
    return len(weights) - 1, position  # rounding of the last cumulative sum
