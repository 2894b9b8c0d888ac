"""Experiment designs: arms, signal sets, attribution, the pre-registered plan; their table."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint

from accord.store.metadata import id_column_type, instant, metadata

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NAMESPACE_BUCKETS = 10_000

experiments = Table(
    "experiments",
    metadata,
    Column("id", id_column_type(), primary_key=True),
    Column(
        "business_id", id_column_type(), ForeignKey("businesses.id"), nullable=False, index=True
    ),
    Column("key", String(63), nullable=False),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    # Mutually exclusive experiments share a namespace and own disjoint bucket ranges.
    Column("namespace", String(63), nullable=True),
    Column("namespace_start", Integer, nullable=False),
    Column("namespace_end", Integer, nullable=False),
    Column("seed", String(64), nullable=False),
    Column("design", Text, nullable=False),  # DesignIn as JSON
    Column("plan_hash", String(64), nullable=True),  # sha256 of the design when started
    Column("created_at", instant(), nullable=False),
    Column("updated_at", instant(), nullable=False),
    Column("started_at", instant(), nullable=True),
    Column("stopped_at", instant(), nullable=True),
    UniqueConstraint("business_id", "key"),
)

Unit = Literal["user", "browser", "device"]
Status = Literal["draft", "running", "stopped"]
Role = Literal["treatment", "control_1", "control_2", "control", "variant"]
AttributionLogic = Literal["last_touch", "first_touch", "linear", "position_based", "data_driven"]
Aggregation = Literal["mean", "proportion", "ratio"]


class SignalSet(BaseModel):
    """Which targeting signals an arm may use; names, not any vendor's API."""

    third_party_cookies: bool = False
    topics: bool = False
    interest_groups: bool = False  # on-device auctions (e.g. Protected Audience)
    contextual: bool = True
    first_party_data: bool = False
    other: dict[str, bool] = Field(default_factory=dict, description="further named signals")


class Attribution(BaseModel):
    window_days: int = Field(default=30, ge=1, le=90, description="click-through window")
    view_through_days: int = Field(default=1, ge=0, le=30)
    logic: AttributionLogic = "last_touch"


class Arm(BaseModel):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    role: Role
    weight: float = Field(gt=0, description="relative share of units; 3:1:3 or 1:1 ...")
    signals: SignalSet = Field(default_factory=SignalSet)
    attribution: Attribution | None = Field(
        default=None, description="only when it differs from the design's (then declare why)"
    )


class MetricDefinition(BaseModel):
    """A user-defined metric over ad-log columns, aggregated per diversion unit first."""

    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    aggregation: Aggregation
    event_type: str = Field(description="the ad-log records counted: impression, click, ...")
    value: str | None = Field(
        default=None, description="column summed (mean, ratio numerator); None counts records"
    )
    denominator_event_type: str | None = None
    denominator_value: str | None = None
    higher_is_better: bool = True


class AnalysisPlan(BaseModel):
    """What will be concluded, fixed before data arrive."""

    control_arm: str
    primary_metrics: list[str] = Field(min_length=1)
    guardrail_metrics: list[str] = Field(default_factory=list)
    secondary_metrics: list[str] = Field(default_factory=list)
    minimum_detectable_effect: float = Field(gt=0, description="relative, e.g. 0.05 for 5 %")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    correction: Literal["holm", "benjamini-hochberg"] = "holm"
    cuped: bool = True
    winsorise_quantile: float | None = Field(default=0.99, gt=0.5, lt=1)
    slices: list[Literal["country", "device"]] = Field(default_factory=list)


class DesignIn(BaseModel):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    unit: Unit = "user"
    namespace: str | None = Field(default=None, pattern=KEY_PATTERN)
    namespace_range: tuple[int, int] = Field(
        default=(0, NAMESPACE_BUCKETS), description=f"buckets [start, end) of {NAMESPACE_BUCKETS}"
    )
    arms: list[Arm] = Field(min_length=2, max_length=20)
    attribution: Attribution = Field(default_factory=Attribution)
    attribution_differs_because: str | None = None
    metrics: list[MetricDefinition] = Field(default_factory=list)
    plan: AnalysisPlan
    start_day: str | None = Field(default=None, description="first day of the test period")
    pre_period_days: int = Field(default=14, ge=0, le=365)

    @field_validator("namespace_range")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        start, end = value
        if not 0 <= start < end <= NAMESPACE_BUCKETS:
            raise ValueError(f"must satisfy 0 <= start < end <= {NAMESPACE_BUCKETS}")
        return value

    @field_validator("start_day")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError("must be a day YYYY-MM-DD")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DesignIn:
        keys = [a.key for a in self.arms]
        if len(set(keys)) != len(keys):
            raise ValueError("arm keys must be unique")
        if self.plan.control_arm not in keys:
            raise ValueError(f"plan.control_arm {self.plan.control_arm!r} is not an arm")
        differing = [a.key for a in self.arms if a.attribution not in (None, self.attribution)]
        if differing and not self.attribution_differs_because:
            raise ValueError(
                f"arms {differing} declare their own attribution: say why in "
                "attribution_differs_because (attribution is the same in every arm by default)"
            )
        metric_keys = [m.key for m in self.metrics]
        if len(set(metric_keys)) != len(metric_keys):
            raise ValueError("metric keys must be unique")
        return self

    def arm(self, key: str) -> Arm:
        return next(a for a in self.arms if a.key == key)

    def role_arm(self, role: Role) -> Arm | None:
        return next((a for a in self.arms if a.role == role), None)


class ExperimentView(BaseModel):
    id: str
    key: str
    name: str
    status: Status
    seed: str
    plan_hash: str | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    design: DesignIn


class Assignment(BaseModel):
    experiment: str
    unit: str
    in_experiment: bool
    arm: str | None
    bucket: float


def cma_three_arm(
    *,
    key: str,
    name: str,
    primary_metrics: list[str],
    guardrail_metrics: list[str] | None = None,
    minimum_detectable_effect: float = 0.05,
    unit: Unit = "user",
) -> DesignIn:
    """The CMA's design for cookieless relevance tests, weighted 3:1:3 (T : C1 : C2).

    Treatment: no third-party cookies, the new relevance signals and the other signals;
    control 1: the status quo with third-party cookies; control 2: no third-party
    cookies and no new signals (contextual and first-party data only).
    """
    return DesignIn(
        key=key,
        name=name,
        unit=unit,
        arms=[
            Arm(
                key="treatment",
                name="Treatment",
                role="treatment",
                weight=3,
                signals=SignalSet(topics=True, interest_groups=True, first_party_data=True),
            ),
            Arm(
                key="control_1",
                name="Control 1 (third-party cookies)",
                role="control_1",
                weight=1,
                signals=SignalSet(
                    third_party_cookies=True, first_party_data=True, interest_groups=False
                ),
            ),
            Arm(
                key="control_2",
                name="Control 2 (no third-party cookies, no new signals)",
                role="control_2",
                weight=3,
                signals=SignalSet(first_party_data=True),
            ),
        ],
        plan=AnalysisPlan(
            control_arm="control_1",
            primary_metrics=primary_metrics,
            guardrail_metrics=guardrail_metrics or [],
            minimum_detectable_effect=minimum_detectable_effect,
        ),
    )
