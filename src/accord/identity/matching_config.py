"""The `matching` section of a business's identity rules: which traits to compare, and how."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

# A trait name as it appears in identify calls; also a safe SQL column name.
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Traits that are names: many people share them, so agreeing on them alone proves nothing.
_NAME = re.compile(r"(^|_)(name|surname|forename)$")

Method = Literal[
    "exact",
    "jaro_winkler",
    "jaro",
    "levenshtein",
    "damerau_levenshtein",
    "date",
    "date_parts",
]

# Similarity thresholds of each level below an exact match, strongest first. Jaro(-Winkler)
# thresholds are similarities (higher is closer); the edit distances are counts of edits.
DEFAULT_THRESHOLDS: dict[str, list[float]] = {
    "jaro_winkler": [0.92, 0.8],
    "jaro": [0.9, 0.8],
    "levenshtein": [1, 2],
    "damerau_levenshtein": [1, 2],
    "exact": [],
    "date": [],
    "date_parts": [],
}

# How many random pairs Splink draws to estimate u-probabilities (how often each level
# happens among non-matches). Enough for stable estimates on a million-profile base.
DEFAULT_MAX_PAIRS_FOR_U = 1_000_000


class Comparison(BaseModel):
    """How one trait of two profiles is compared; each level becomes evidence."""

    field: str = Field(description="The profile trait (identify trait name)")
    method: Method = "exact"
    thresholds: list[float] | None = Field(
        default=None,
        description="Levels below an exact match: similarities (jaro, jaro_winkler, "
        "strongest first) or edit counts (levenshtein, damerau_levenshtein, closest "
        "first); default per method",
    )
    term_frequency: bool = Field(
        default=False,
        description="Weigh an exact match on a rare value more than on a common one",
    )
    distinguishing: bool | None = Field(
        default=None,
        description="Whether agreeing on this trait tells one person from another (a date "
        "of birth, email, phone, address): a pair links automatically only when at least "
        "one distinguishing trait agrees exactly, else it goes to review. Default: every "
        "trait but names (`name`, `surname`, `…_name`)",
    )

    @field_validator("field")
    @classmethod
    def _field_name(cls, name: str) -> str:
        if not _FIELD.match(name):
            raise ValueError(f"{name!r} is not a trait name (lower-case letters, digits, _)")
        return name

    @model_validator(mode="after")
    def _levels(self) -> Comparison:
        if self.thresholds is None:
            return self
        if self.method in ("exact", "date", "date_parts") and self.thresholds:
            raise ValueError(f"method {self.method!r} takes no thresholds")
        if self.method in ("jaro", "jaro_winkler"):
            if any(not 0 < t < 1 for t in self.thresholds):
                raise ValueError("similarity thresholds are between 0 and 1")
            if self.thresholds != sorted(self.thresholds, reverse=True):
                raise ValueError("similarity thresholds go from strongest to weakest")
        if self.method in ("levenshtein", "damerau_levenshtein"):
            if any(t < 1 or t != int(t) for t in self.thresholds):
                raise ValueError("edit-distance thresholds are whole numbers of at least 1")
            if self.thresholds != sorted(self.thresholds):
                raise ValueError("edit-distance thresholds go from closest to farthest")
        return self

    @property
    def is_distinguishing(self) -> bool:
        if self.distinguishing is not None:
            return self.distinguishing
        return not _NAME.search(self.field)

    @property
    def levels(self) -> list[float]:
        return (
            list(self.thresholds)
            if self.thresholds is not None
            else DEFAULT_THRESHOLDS[self.method]
        )


class BlockingKey(BaseModel):
    """A trait whose value candidate pairs must share, or only its first `prefix` characters."""

    field: str
    prefix: int | None = Field(default=None, ge=1, le=50)

    @field_validator("field")
    @classmethod
    def _field_name(cls, name: str) -> str:
        return Comparison._field_name(name)


BlockingRule = list[BlockingKey]


class MatchingConfig(BaseModel):
    """Probabilistic matching of profiles that share no identifier (docs/identity.md)."""

    comparisons: list[Comparison] = Field(min_length=2)
    blocking_rules: list[BlockingRule] = Field(
        min_length=1,
        description="Candidate pairs are those agreeing on every key of at least one rule",
    )
    training_rules: list[BlockingRule] = Field(
        default_factory=list,
        description="Blocking rules whose pairs train the m-probabilities by expectation "
        "maximisation, each leaving its own keys untrained; empty: the blocking rules. "
        "Narrow rules (several keys) train better than broad ones",
    )
    prior_rules: list[BlockingRule] = Field(
        default_factory=list,
        description="Rules that almost only same people agree on; with `prior_recall` they "
        "estimate how likely two random profiles are one person. Empty: every compared "
        "trait equal",
    )
    prior_recall: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="The share of true matches the prior rules are believed to catch",
    )
    link_threshold: float = Field(
        default=0.99,
        gt=0,
        lt=1,
        description="Match probability from which two profiles are merged",
    )
    review_threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Match probability from which (below link_threshold) the merge waits "
        "for an operator in the review queue",
    )
    max_pairs_for_u: int = Field(default=DEFAULT_MAX_PAIRS_FOR_U, ge=1_000, le=100_000_000)
    seed: int = Field(default=7, description="Seed of the random pairs drawn for training")

    @model_validator(mode="after")
    def _consistent(self) -> MatchingConfig:
        names = [c.field for c in self.comparisons]
        if len(set(names)) != len(names):
            raise ValueError("a trait is compared twice")
        if self.review_threshold >= self.link_threshold:
            raise ValueError("review_threshold must be below link_threshold")
        for rule in [*self.blocking_rules, *self.training_rules, *self.prior_rules]:
            if not rule:
                raise ValueError("a blocking rule needs at least one key")
            for key in rule:
                if key.field not in names:
                    raise ValueError(
                        f"blocking on {key.field!r}, which is not a compared trait: {names}"
                    )
        return self

    @property
    def fields(self) -> list[str]:
        return [c.field for c in self.comparisons]

    @property
    def distinguishing(self) -> list[str]:
        """The traits of which one must agree exactly for a pair to link automatically."""
        return [c.field for c in self.comparisons if c.is_distinguishing]
