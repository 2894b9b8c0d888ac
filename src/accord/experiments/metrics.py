"""The metrics catalogue, and its compiler to Ibis: per-unit values, then per-arm sums.

Every metric is defined over the diversion unit: each unit's records are first summed
into a numerator (and a denominator for ratios); the arm's statistic is then a mean
over units, a share of units, or a ratio of sums over units. Aggregating per unit first
is what makes the variance right when the analysis unit (an impression, a click) is
not the diversion unit (a user): the delta method over units is the cluster-robust
variance (see `statistics.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import ibis
from ibis.backends import BaseBackend

from accord.core.errors import FieldProblem, InvalidInput
from accord.engine.functions import epoch_microseconds
from accord.experiments.adlogs import NUMERIC_COLUMNS, RECORD_TYPES
from accord.experiments.models import MetricDefinition

EPOCH_DAY = date(1970, 1, 1)
Aggregation = Literal["mean", "proportion", "ratio"]
FLAG_COLUMNS = ("timed_out", "filled", "is_video", "video_completed")


@dataclass(frozen=True)
class Measure:
    """A per-unit number: records of one type counted, counted distinctly, or a column summed."""

    event_type: str | None  # None: records of every type
    value: str | None = None  # column summed; None counts records
    distinct: bool = False  # count distinct record ids (duplicated log lines count once)
    flag: str | None = None  # only records where this boolean column is true

    @property
    def name(self) -> str:
        parts = [self.event_type or "all", self.value or ("distinct" if self.distinct else "n")]
        if self.flag:
            parts.append(self.flag)
        return "__".join(parts)


@dataclass(frozen=True)
class Metric:
    key: str
    name: str
    aggregation: Aggregation
    numerator: Measure
    denominator: Measure | None
    definition: str
    higher_is_better: bool = True
    unit_label: str = ""
    percent: bool = False  # shown as a percentage (rates, proportions)


BID_REQUESTS = Measure("bid_request")
IMPRESSIONS = Measure("impression")
CLICKS = Measure("click")
CONVERSIONS = Measure("conversion")
AUCTIONS = Measure("auction")
SPEND = Measure(None, "spend")

CATALOGUE: tuple[Metric, ...] = (
    Metric(
        "avg_topics_per_bid_request",
        "Average topics per bid request",
        "ratio",
        Measure("bid_request", "topics_count"),
        BID_REQUESTS,
        "Σ topics in user.data (Topics taxonomies) over bid requests ÷ number of bid requests",
        unit_label="topics",
    ),
    Metric(
        "avg_time_in_view",
        "Average time in view",
        "ratio",
        Measure("impression", "time_in_view_s"),
        IMPRESSIONS,
        "Σ seconds in view over impressions ÷ number of impressions",
        unit_label="s",
    ),
    Metric(
        "ctr",
        "Click-through rate",
        "ratio",
        CLICKS,
        IMPRESSIONS,
        "clicks ÷ impressions",
        percent=True,
    ),
    Metric(
        "clicks_per_euro",
        "Clicks per euro",
        "ratio",
        CLICKS,
        SPEND,
        "clicks ÷ Σ spend in euros (impression costs and spend records)",
        unit_label="per €",
    ),
    Metric(
        "conversions_per_euro",
        "Conversions per euro",
        "ratio",
        CONVERSIONS,
        SPEND,
        "conversions ÷ Σ spend in euros",
        unit_label="per €",
    ),
    Metric(
        "conversion_rate",
        "Conversion rate",
        "ratio",
        CONVERSIONS,
        CLICKS,
        "conversions ÷ clicks (conversions attributed within each arm's window)",
        percent=True,
    ),
    Metric(
        "unique_bid_responses",
        "Unique bid responses",
        "mean",
        Measure("bid_response", distinct=True),
        None,
        "distinct bid-response ids per unit (the arm's total divided by its units, so arms "
        "of unequal weight compare)",
    ),
    Metric(
        "unique_users_reached",
        "Unique users reached",
        "proportion",
        IMPRESSIONS,
        None,
        "share of the arm's units with at least one impression",
        percent=True,
    ),
    Metric(
        "video_completion_rate",
        "Video completion rate",
        "ratio",
        Measure("impression", flag="video_completed"),
        Measure("impression", flag="is_video"),
        "completed video impressions ÷ video impressions",
        percent=True,
    ),
    Metric(
        "change_in_planned_spend",
        "Change in planned spend",
        "mean",
        Measure("spend", "planned_spend"),
        None,
        "Σ planned spend in euros per unit; its lift vs control is the change in planned spend",
        unit_label="€",
    ),
    Metric(
        "auction_latency",
        "Auction latency",
        "ratio",
        Measure("auction", "latency_ms"),
        AUCTIONS,
        "Σ auction latency in ms ÷ number of auctions",
        higher_is_better=False,
        unit_label="ms",
    ),
    Metric(
        "revenue_per_impression",
        "Revenue per impression",
        "ratio",
        Measure("impression", "revenue"),
        IMPRESSIONS,
        "Σ publisher revenue in euros over impressions ÷ impressions",
        unit_label="€",
    ),
    Metric(
        "fill_rate",
        "Fill rate",
        "ratio",
        Measure("auction", flag="filled"),
        AUCTIONS,
        "auctions that served an ad ÷ auctions",
        percent=True,
    ),
    Metric(
        "timeout_rate",
        "Timeout rate",
        "ratio",
        Measure("auction", flag="timed_out"),
        AUCTIONS,
        "auctions that timed out ÷ auctions",
        higher_is_better=False,
        percent=True,
    ),
    Metric(
        "unique_bid_requests",
        "Unique bid requests",
        "mean",
        Measure("bid_request", distinct=True),
        None,
        "distinct bid-request ids per unit",
    ),
    Metric(
        "conversions_per_unit",
        "Conversions per unit",
        "mean",
        CONVERSIONS,
        None,
        "conversions per unit",
    ),
    Metric(
        "conversion_value_per_unit",
        "Conversion value per unit",
        "mean",
        Measure("conversion", "conversion_value"),
        None,
        "Σ conversion value in euros per unit",
        unit_label="€",
    ),
    Metric(
        "spend_per_unit",
        "Spend per unit",
        "mean",
        SPEND,
        None,
        "Σ spend in euros per unit",
        higher_is_better=False,
        unit_label="€",
    ),
)


def _user_metric(index: int, definition: MetricDefinition) -> Metric:
    problems: list[FieldProblem] = []
    where = f"metrics[{index}]"
    if definition.event_type not in RECORD_TYPES:
        problems.append(
            FieldProblem(f"{where}.event_type", f"unknown record type {definition.event_type!r}")
        )
    for field, value in (
        ("value", definition.value),
        ("denominator_value", definition.denominator_value),
    ):
        if value is not None and value not in NUMERIC_COLUMNS + FLAG_COLUMNS:
            problems.append(
                FieldProblem(
                    f"{where}.{field}",
                    f"unknown column {value!r}; numeric columns are {NUMERIC_COLUMNS}, "
                    f"flags {FLAG_COLUMNS}",
                )
            )
    if definition.aggregation == "ratio" and definition.denominator_event_type not in RECORD_TYPES:
        problems.append(
            FieldProblem(
                f"{where}.denominator_event_type",
                "a ratio needs the record type of its denominator",
            )
        )
    if problems:
        raise InvalidInput(problems)

    def measure(event_type: str, value: str | None) -> Measure:
        if value in FLAG_COLUMNS:
            return Measure(event_type, flag=value)
        return Measure(event_type, value)

    numerator = measure(definition.event_type, definition.value)
    denominator = (
        measure(str(definition.denominator_event_type), definition.denominator_value)
        if definition.aggregation == "ratio"
        else None
    )
    return Metric(
        definition.key,
        definition.name,
        definition.aggregation,
        numerator,
        denominator,
        f"user-defined {definition.aggregation} of {numerator.name}"
        + (f" over {denominator.name}" if denominator else ""),
        higher_is_better=definition.higher_is_better,
        percent=definition.aggregation == "proportion",
    )


def metric_catalogue(user_defined: Sequence[MetricDefinition] = ()) -> dict[str, Metric]:
    """The built-in metrics and the design's own, by key; a clash with a built-in is refused."""
    metrics = {m.key: m for m in CATALOGUE}
    for index, definition in enumerate(user_defined):
        if definition.key in metrics:
            raise InvalidInput(
                [FieldProblem(f"metrics[{index}].key", f"{definition.key!r} is a built-in metric")]
            )
        metrics[definition.key] = _user_metric(index, definition)
    return metrics


def _measure_expr(t: Any, m: Measure, within: Any = None, *, exact: bool = True) -> Any:
    """The measure summed over the records of `t` (restricted to `within` if given).

    With `exact=False` a distinct count is a plain count: daily anomaly series want the
    records as logged, duplicates included.
    """
    conditions = [] if m.event_type is None else [t.type == m.event_type]
    if m.flag is not None:
        # A null flag leaves the record out: SQL counts only rows whose condition is true.
        conditions.append(t[m.flag])
    if within is not None:
        conditions.append(within)
    condition = ibis.and_(*conditions) if conditions else None
    if m.distinct and exact:
        value = t.record_id.nunique(where=condition)
    elif m.value is not None:
        value = t[m.value].sum(where=condition)
    else:
        # Rows, not record ids: every stored record has an id, and count(*) reads no column.
        value = t.count(where=condition)
    return value.cast("float64")


def measures_of(metrics: Iterable[Metric]) -> list[Measure]:
    seen: dict[str, Measure] = {}
    for metric in metrics:
        for m in (metric.numerator, metric.denominator):
            if m is not None:
                seen.setdefault(m.name, m)
    return list(seen.values())


def pre_measures_of(metrics: Iterable[Metric]) -> list[Measure]:
    """The measures needed over the pre-period: numerators of means and proportions.

    Only CUPED and the balance check read the pre-period, and neither applies to ratios.
    """
    seen: dict[str, Measure] = {}
    for metric in metrics:
        if metric.aggregation != "ratio":
            seen.setdefault(metric.numerator.name, metric.numerator)
    return list(seen.values())


def unit_values(
    logs: Any,
    metrics: Sequence[Metric],
    *,
    start: datetime | None,
    pre_period: timedelta | None,
) -> Any:
    """One row per unit seen in the test period: its arm, country, device, every measure,
    and (with a start and a pre-period) the pre-period sum of every measure in
    `pre_measures_of(metrics)`.

    One scan and one aggregation: test and pre-period sums are conditional aggregates.
    A unit's arm, country and device are the greatest value seen (a deterministic pick);
    a unit whose least and greatest arms differ was logged in several arms.
    """
    measures = measures_of(metrics)
    with_pre = start is not None and pre_period is not None
    pre_measures = pre_measures_of(metrics) if with_pre else []
    in_test: Any = None  # every record is in the test period
    if start is None:
        rows = logs
    else:
        earliest = start - pre_period if pre_period is not None else start
        rows = logs.filter(logs.timestamp >= earliest)
        # One comparison per record, read by every conditional sum below.
        rows = rows.mutate(in_test=rows.timestamp >= start)
        in_test = rows.in_test
    columns: dict[str, Any] = {
        "arm": rows.arm.max(where=in_test),
        "first_arm": rows.arm.min(where=in_test),
        "country": rows.country.max(),
        "device": rows.device.max(),
        "test_records": rows.count(where=in_test),
    }
    columns.update({m.name: _measure_expr(rows, m, in_test) for m in measures})
    if pre_measures:
        before = ~in_test
        columns.update({f"pre__{m.name}": _measure_expr(rows, m, before) for m in pre_measures})
    per_unit = rows.group_by("unit").aggregate(**columns)
    per_unit = per_unit.filter(per_unit.test_records > 0)
    filled = [m.name for m in measures] + [f"pre__{m.name}" for m in pre_measures]
    return per_unit.mutate(
        arms_seen=ibis.ifelse(per_unit.arm == per_unit.first_arm, 1, 2),
        **{name: per_unit[name].fill_null(0.0) for name in filled},
    ).drop("first_arm", "test_records")


def unit_x(table: Any, metric: Metric, prefix: str = "") -> Any:
    """The per-unit numerator; a proportion's is 1 when the unit's count is positive."""
    x = table[prefix + metric.numerator.name]
    return (x > 0).cast("float64") if metric.aggregation == "proportion" else x


def winsor_caps(units: Any, metrics: Sequence[Metric], quantile: float) -> dict[str, float]:
    """The q-quantile of each non-proportion numerator over units with a positive value."""
    capped = [m for m in metrics if m.aggregation != "proportion"]
    if not capped:
        return {}
    # Zeros are left out: with sparse counts the quantile of all units would be 0.
    row = units.aggregate(
        **{
            f"cap__{m.key}": unit_x(units, m).quantile(quantile, where=unit_x(units, m) > 0)
            for m in capped
        }
    ).execute()
    return {m.key: float(row[f"cap__{m.key}"].iloc[0] or 0.0) for m in capped}


def arm_sums(
    units: Any,
    metrics: Sequence[Metric],
    *,
    by: Sequence[str],
    caps: dict[str, float],
    with_pre: bool,
) -> Any:
    """Sufficient statistics per group of `by` (arm, and a slice): one aggregation."""
    columns: dict[str, Any] = {"n": units.count()}
    for m in metrics:
        x = unit_x(units, m)
        columns[f"{m.key}__sx"] = x.sum()
        columns[f"{m.key}__sxx"] = (x * x).sum()
        if m.denominator is not None:
            y = units[m.denominator.name]
            columns[f"{m.key}__sy"] = y.sum()
            columns[f"{m.key}__syy"] = (y * y).sum()
            columns[f"{m.key}__sxy"] = (x * y).sum()
        if m.key in caps:
            w = ibis.least(x, caps[m.key])
            columns[f"{m.key}__wx"] = w.sum()
            columns[f"{m.key}__wxx"] = (w * w).sum()
            if m.denominator is not None:
                columns[f"{m.key}__wxy"] = (w * units[m.denominator.name]).sum()
        if with_pre and m.aggregation != "ratio":
            p = unit_x(units, m, prefix="pre__")
            columns[f"{m.key}__sp"] = p.sum()
            columns[f"{m.key}__spp"] = (p * p).sum()
            columns[f"{m.key}__sxp"] = (x * p).sum()
    return units.group_by(list(by)).aggregate(**columns).order_by(list(by))


MICROSECONDS_PER_DAY = 86_400_000_000


def _day_number(t: Any, backend: BaseBackend) -> Any:
    """The UTC day number since 1970-01-01 of each record's timestamp: integer arithmetic
    on the epoch, as truncating to a date goes through the time-zone machinery per row."""
    return (epoch_microseconds(backend, t.timestamp) // MICROSECONDS_PER_DAY).cast("int32")


def daily_sums(
    logs: Any, metrics: Sequence[Metric], *, start: datetime | None, backend: BaseBackend
) -> Any:
    """Per arm and day, in one scan: every measure of `metrics` summed over records as
    logged (a duplicated record counts twice: that is an anomaly to see).

    `day` is the UTC day number since 1970-01-01 (`day_of` turns it into a date). A
    measure that sums a column also gets `<name>__records` (records with a value) and
    `<name>__squares` (Σ value²): the anomaly gate's compound-Poisson noise needs both.
    """
    post = logs if start is None else logs.filter(logs.timestamp >= start)
    post = post.mutate(day=_day_number(post, backend))
    columns = {m.name: _measure_expr(post, m, exact=False) for m in measures_of(metrics)}
    for m in measures_of(metrics):
        if m.value is not None:
            conditions = [] if m.event_type is None else [post.type == m.event_type]
            if m.flag is not None:
                conditions.append(post[m.flag])
            where = ibis.and_(*conditions) if conditions else None
            value = post[m.value].cast("float64")
            columns[f"{m.name}__records"] = value.count(where=where).cast("float64")
            columns[f"{m.name}__squares"] = (value * value).sum(where=where)
    return post.group_by(["arm", "day"]).aggregate(**columns).order_by(["arm", "day"])


def day_of(number: int) -> date:
    """The date of a `daily_sums` day number."""
    return EPOCH_DAY + timedelta(days=number)
