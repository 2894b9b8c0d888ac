"""The analysis of an experiment: gates first, then every planned metric and contrast.

Steps, each on the engine and named for what it computes: per-unit values
(`metrics.unit_values`), winsorisation caps, per-arm sufficient statistics (overall and
per slice), daily series for the anomaly gate, and the concentration of conversions;
then pure statistics in Python. A failed gate blocks the verdict: results are not
returned, the reasons are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import ibis
import numpy as np
from ibis.backends import BaseBackend
from pydantic import BaseModel

from accord.engine.tables import materialise
from accord.experiments import statistics as st
from accord.experiments.metrics import (
    Metric,
    arm_sums,
    daily_sums,
    day_of,
    metric_catalogue,
    unit_values,
    unit_x,
    winsor_caps,
)
from accord.experiments.models import DesignIn, ExperimentView

# Gate thresholds (documented in docs/experiments.md).
SRM_P_VALUE = 0.001
BALANCE_SMD = 0.1
BALANCE_P_VALUE = 0.001
CONTAMINATION_SHARE = 0.01
ANOMALY_Z = 5.0
ANOMALY_MIN_DAYS = 7
WHALE_SHARE = 0.10
WHALE_FAIR_SHARES = 10
TOP_PERCENT_SHARE = 0.50

Variant = Literal["raw", "cuped", "winsorised"]
Group = Literal["primary", "guardrail", "secondary"]


class GateResult(BaseModel):
    key: str
    name: str
    passed: bool
    detail: str


class ArmSummary(BaseModel):
    arm: str
    name: str
    role: str
    weight: float
    units: int
    expected_units: float


class ContrastResult(BaseModel):
    metric: str
    metric_name: str
    group: Group
    variant: Variant
    slice: str  # "all", or "country=GBR"
    treatment: str
    control: str
    n_treatment: int
    n_control: int
    treatment_mean: float
    control_mean: float
    difference: float
    difference_lower: float
    difference_upper: float
    lift: float | None
    lift_lower: float | None
    lift_upper: float | None
    p_value: float
    p_adjusted: float | None  # within the family of its group (main variant, all slice)
    significant: bool | None


class RecoveryResult(BaseModel):
    metric: str
    metric_name: str
    estimate: float
    fieller_lower: float | None
    fieller_upper: float | None
    delta_lower: float
    delta_upper: float
    denominator_significant: bool


class PowerResult(BaseModel):
    metric: str
    treatment: str
    control: str
    planned_relative_mde: float
    achieved_relative_mde: float | None


class Analysis(BaseModel):
    experiment: str
    name: str
    status: str
    plan_hash: str | None
    computed_at: datetime
    engine: str
    correction: str
    alpha: float
    arms: list[ArmSummary]
    gates: list[GateResult]
    blocked: bool
    blocked_reasons: list[str]
    results: list[ContrastResult]
    recoveries: list[RecoveryResult]
    power: list[PowerResult]


def contrasts(design: DesignIn) -> list[tuple[str, str]]:
    """(treatment, control) pairs: the three CMA contrasts, or every arm vs the control."""
    t, c1, c2 = (design.role_arm(r) for r in ("treatment", "control_1", "control_2"))
    if t and c1 and c2:
        return [(t.key, c1.key), (t.key, c2.key), (c2.key, c1.key)]
    control = design.plan.control_arm
    return [(a.key, control) for a in design.arms if a.key != control]


def _start(design: DesignIn, experiment: ExperimentView) -> datetime | None:
    if design.start_day:
        return datetime.fromisoformat(design.start_day).replace(tzinfo=UTC)
    return experiment.started_at


def _moments(row: dict[str, Any], metric: Metric, prefix: str, n: int) -> st.Moments:
    sx = float(row[f"{metric.key}__{prefix}x"])
    if metric.aggregation == "proportion" and prefix == "s":
        return st.ProportionStats(n, sx)
    return st.MeanStats(n, sx, float(row[f"{metric.key}__{prefix}xx"]))


def arm_statistics(row: dict[str, Any], metric: Metric, variant: Variant) -> st.ArmStats:
    """One arm's statistic of a metric from the sums of `metrics.arm_sums`."""
    n = int(row["n"])
    prefix = "w" if variant == "winsorised" else "s"
    x = _moments(row, metric, prefix, n)
    if metric.denominator is not None:
        y = st.MeanStats(n, float(row[f"{metric.key}__sy"]), float(row[f"{metric.key}__syy"]))
        return st.RatioStats(x, y, float(row[f"{metric.key}__{prefix}xy"]))
    if variant == "cuped":
        pre = st.MeanStats(n, float(row[f"{metric.key}__sp"]), float(row[f"{metric.key}__spp"]))
        post = st.MeanStats(n, float(row[f"{metric.key}__sx"]), float(row[f"{metric.key}__sxx"]))
        return st.CupedStats(post, pre, float(row[f"{metric.key}__sxp"]))
    return x


def _variants(metric: Metric, *, cuped: bool, winsorised: bool) -> list[Variant]:
    variants: list[Variant] = ["raw"]
    if cuped and metric.aggregation != "ratio":
        variants.append("cuped")
    if winsorised and metric.aggregation != "proportion":
        variants.append("winsorised")
    return variants


def _records(frame: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in frame.to_dict(orient="records")]


def _number(value: Any) -> float:
    """A summed column as a float: a sum over no records is NULL (NaN in pandas), i.e. 0."""
    number = float(value) if value is not None else 0.0
    return 0.0 if math.isnan(number) else number


def _srm_gate(design: DesignIn, counts: dict[str, int]) -> tuple[GateResult, list[ArmSummary]]:
    observed = [counts.get(a.key, 0) for a in design.arms]
    srm = st.sample_ratio_mismatch(observed, [a.weight for a in design.arms])
    arms = [
        ArmSummary(
            arm=a.key,
            name=a.name,
            role=a.role,
            weight=a.weight,
            units=o,
            expected_units=e,
        )
        for a, o, e in zip(design.arms, observed, srm.expected, strict=True)
    ]
    split = ", ".join(
        f"{a.key} {o} (expected {e:.0f})"
        for a, o, e in zip(design.arms, observed, srm.expected, strict=True)
    )
    passed = srm.p_value >= SRM_P_VALUE and sum(observed) > 0
    detail = (
        f"units per arm: {split}; chi-square {srm.chi_square:.2f}, p = {srm.p_value:.2g} "
        f"(fails below {SRM_P_VALUE})"
    )
    if not sum(observed):
        detail = "no units in the ad logs"
    return GateResult(key="srm", name="Sample ratio", passed=passed, detail=detail), arms


def _balance_gate(
    units: Any, design: DesignIn, pre_metrics: Sequence[Metric], has_pre: bool
) -> GateResult:
    problems: list[str] = []
    notes: list[str] = []
    control = design.plan.control_arm
    mix = _records(
        units.group_by(["arm", "country", "device"]).aggregate(n=units.count()).execute()
    )
    for column in ("country", "device"):
        table: dict[str, dict[str, int]] = {}
        for r in mix:
            cell = table.setdefault(str(r["arm"]), {})
            cell[str(r[column])] = cell.get(str(r[column]), 0) + int(r["n"])
        categories = sorted({c for row in table.values() for c in row})
        matrix = [[table[a].get(c, 0) for c in categories] for a in sorted(table)]
        p = st.contingency_p_value(matrix)
        notes.append(f"{column} χ² p = {p:.2g}")
        if p < BALANCE_P_VALUE:
            problems.append(f"{column} mix differs between arms (χ² p = {p:.2g})")
    if has_pre and pre_metrics:
        sums = arm_sums(units, list(pre_metrics), by=["arm"], caps={}, with_pre=True).execute()
        rows = {str(r["arm"]): r for r in _records(sums)}
        if control in rows:
            for metric in pre_metrics:
                c = rows[control]
                pre_c = st.MeanStats(
                    int(c["n"]), float(c[f"{metric.key}__sp"]), float(c[f"{metric.key}__spp"])
                )
                for arm, r in rows.items():
                    if arm == control:
                        continue
                    pre_a = st.MeanStats(
                        int(r["n"]), float(r[f"{metric.key}__sp"]), float(r[f"{metric.key}__spp"])
                    )
                    smd = st.standardised_mean_difference(pre_a, pre_c)
                    if abs(smd) > BALANCE_SMD:
                        problems.append(
                            f"pre-period {metric.name} of {arm} vs {control}: SMD {smd:.3f}"
                        )
        notes.append(f"pre-period SMD checked on {', '.join(m.key for m in pre_metrics)}")
    passed = not problems
    detail = "; ".join(problems) if problems else "balanced: " + "; ".join(notes)
    return GateResult(key="balance", name="Covariate balance", passed=passed, detail=detail)


def _anomaly_gate(
    logs: Any,
    design: DesignIn,
    metrics: Sequence[Metric],
    start: datetime | None,
    units_per_arm: dict[str, int],
    backend: BaseBackend,
) -> GateResult:
    problems: list[str] = []
    days_seen = 0
    pairs = contrasts(design)
    rows = _records(daily_sums(logs, metrics, start=start, backend=backend).execute())
    for metric in metrics:
        # Each arm's daily figure by ISO day: numerator, denominator, and for a sum of
        # values its records and Σ value².
        raw: dict[str, dict[str, tuple[float, float, float, float]]] = {}
        summed = metric.numerator.value is not None
        for r in rows:
            # A mean or proportion per day: the day's sum over the arm's units.
            if metric.denominator is not None:
                den = _number(r[metric.denominator.name])
            else:
                den = float(units_per_arm.get(str(r["arm"]), 0))
            if den > 0:
                name = metric.numerator.name
                num = _number(r[name])
                records = _number(r[f"{name}__records"]) if summed else num
                squares = _number(r[f"{name}__squares"]) if summed else num
                day = day_of(int(r["day"])).isoformat()
                raw.setdefault(str(r["arm"]), {})[day] = (num, den, records, squares)
        # Value and sampling variance of each arm's daily figure. A count is Poisson at
        # the arm's pooled rate (see `st.poisson_point_variances` for why not the observed
        # count); a sum of values is compound Poisson: its records are Poisson and each
        # adds a value, so the variance is that of the record count times the pooled
        # mean of value² (Var Σ v = λ · E[v²]).
        series: dict[str, dict[str, tuple[float, float]]] = {}
        for arm, by_day in raw.items():
            days = sorted(by_day)
            dens = [by_day[d][1] for d in days]
            counts = [by_day[d][2] for d in days]
            variances = st.poisson_point_variances(counts, dens)
            if summed:
                total = sum(counts)
                mean_square = sum(by_day[d][3] for d in days) / total if total > 0 else 0.0
                variances = [v * mean_square for v in variances]
            series[arm] = {
                d: (by_day[d][0] / e, v) for d, e, v in zip(days, dens, variances, strict=True)
            }
        for arm, points in series.items():
            days_seen = max(days_seen, len(points))
            if len(points) < ANOMALY_MIN_DAYS:
                continue
            days = sorted(points)
            noise = [math.sqrt(points[d][1]) for d in days]
            scores = st.robust_z_scores([points[d][0] for d in days], noise=noise)
            for day, z in zip(days, scores, strict=True):
                if abs(z) > ANOMALY_Z:
                    problems.append(f"{metric.name} of {arm} on {day}: robust z {z:.1f}")
        for treatment, control in pairs:
            a, b = series.get(treatment, {}), series.get(control, {})
            days = sorted(set(a) & set(b))
            if len(days) < ANOMALY_MIN_DAYS:
                continue
            noise = [math.sqrt(a[d][1] + b[d][1]) for d in days]
            scores = st.robust_z_scores([a[d][0] - b[d][0] for d in days], noise=noise)
            for day, z in zip(days, scores, strict=True):
                if abs(z) > ANOMALY_Z:
                    problems.append(
                        f"{metric.name} {treatment} − {control} on {day}: robust z {z:.1f}"
                    )
    if days_seen < ANOMALY_MIN_DAYS:
        return GateResult(
            key="anomalies",
            name="Daily anomalies",
            passed=True,
            detail=f"not checked: fewer than {ANOMALY_MIN_DAYS} days of data",
        )
    return GateResult(
        key="anomalies",
        name="Daily anomalies",
        passed=not problems,
        detail="; ".join(problems[:10])
        or f"no day beyond |robust z| {ANOMALY_Z} in any arm or difference",
    )


def _concentration_gate(units: Any, metrics: dict[str, Metric]) -> GateResult:
    problems: list[str] = []
    notes: list[str] = []
    watched = [metrics["conversions_per_unit"], metrics["conversion_value_per_unit"]]
    values = {m.key: unit_x(units, m) for m in watched}
    contributing = units.filter(ibis.or_(*(v > 0 for v in values.values())))
    frame = contributing.select(**{m.key: unit_x(contributing, m) for m in watched}).to_pyarrow()
    for metric in watched:
        column = np.asarray(frame.column(metric.key).to_numpy(zero_copy_only=False), dtype=float)
        column = np.sort(column[column > 0])[::-1]
        total = float(column.sum())
        contributors = len(column)
        if total <= 0:
            notes.append(f"no {metric.name.lower()}")
            continue
        top_share = float(column[0]) / total
        top_percent_share = float(column[: max(1, math.ceil(contributors / 100))].sum()) / total
        notes.append(
            f"{metric.name}: largest unit {top_share:.1%}, top 1 % of {contributors} "
            f"contributing units {top_percent_share:.1%}"
        )
        # With few contributors a large share is chance, not a whale: ten times the fair share.
        limit = max(WHALE_SHARE, WHALE_FAIR_SHARES / contributors)
        if top_share > limit:
            problems.append(
                f"one unit holds {top_share:.1%} of {metric.name.lower()} "
                f"(limit {limit:.0%}): single-touch attribution makes such whales decide "
                "the result"
            )
        elif top_percent_share > TOP_PERCENT_SHARE and contributors >= 100:
            problems.append(
                f"the top 1 % of units hold {top_percent_share:.1%} of {metric.name.lower()} "
                f"(limit {TOP_PERCENT_SHARE:.0%})"
            )
    return GateResult(
        key="concentration",
        name="Concentration of conversions",
        passed=not problems,
        detail="; ".join(problems) if problems else "; ".join(notes),
    )


def _contamination_gate(units: Any) -> GateResult:
    frame = units.aggregate(
        total=units.count(), mixed=(units.arms_seen > 1).cast("int64").sum()
    ).execute()
    total = int(frame["total"].iloc[0] or 0)
    mixed = int(frame["mixed"].iloc[0] or 0)
    share = mixed / total if total else 0.0
    return GateResult(
        key="contamination",
        name="Units in one arm only",
        passed=share <= CONTAMINATION_SHARE,
        detail=f"{mixed} of {total} units appear in more than one arm ({share:.2%}; "
        f"limit {CONTAMINATION_SHARE:.0%})",
    )


def _compare_rows(
    rows: dict[str, dict[str, Any]],
    metric: Metric,
    group: Group,
    variant: Variant,
    slice_name: str,
    pairs: Sequence[tuple[str, str]],
    alpha: float,
) -> list[ContrastResult]:
    out = []
    for treatment, control in pairs:
        if treatment not in rows or control not in rows:
            continue
        a = arm_statistics(rows[control], metric, variant)
        b = arm_statistics(rows[treatment], metric, variant)
        if a.n < 2 or b.n < 2:
            continue
        if isinstance(a, st.CupedStats) and isinstance(b, st.CupedStats):
            a, b = st.with_theta([a, b])
        result = st.compare(a, b, alpha=alpha)
        rel = result.relative
        out.append(
            ContrastResult(
                metric=metric.key,
                metric_name=metric.name,
                group=group,
                variant=variant,
                slice=slice_name,
                treatment=treatment,
                control=control,
                n_treatment=b.n,
                n_control=a.n,
                treatment_mean=result.treatment_mean,
                control_mean=result.control_mean,
                difference=result.absolute.estimate,
                difference_lower=result.absolute.lower,
                difference_upper=result.absolute.upper,
                lift=rel.estimate if rel else None,
                lift_lower=rel.lower if rel else None,
                lift_upper=rel.upper if rel else None,
                p_value=result.p_value,
                p_adjusted=None,
                significant=None,
            )
        )
    return out


def analyse(
    backend: BaseBackend, logs: Any, experiment: ExperimentView, *, now: datetime
) -> Analysis:
    """Gates, then (only if all pass) every planned metric, contrast, variant and slice."""
    design = experiment.design
    plan = design.plan
    catalogue = metric_catalogue(design.metrics)
    groups: list[tuple[Group, list[str]]] = [
        ("primary", plan.primary_metrics),
        ("guardrail", plan.guardrail_metrics),
        ("secondary", plan.secondary_metrics),
    ]
    planned = [catalogue[k] for _, keys in groups for k in keys]
    gate_metrics = [catalogue["conversions_per_unit"], catalogue["conversion_value_per_unit"]]
    all_metrics = list({m.key: m for m in planned + gate_metrics}.values())
    start = _start(design, experiment)
    pre_period = timedelta(days=design.pre_period_days) if design.pre_period_days else None
    units = unit_values(logs, all_metrics, start=start, pre_period=pre_period)
    # Every later step reads the per-unit table: compute it once.
    units = materialise(backend, units)
    has_pre = start is not None and pre_period is not None
    counts_frame = units.group_by("arm").aggregate(n=units.count()).execute()
    counts = {str(r["arm"]): int(r["n"]) for r in _records(counts_frame)}

    srm, arms = _srm_gate(design, counts)
    pre_metrics = [m for m in all_metrics if m.aggregation == "mean"][:3]
    gates = [
        srm,
        _contamination_gate(units),
        _balance_gate(units, design, pre_metrics, has_pre),
        _anomaly_gate(
            logs,
            design,
            [catalogue[k] for k in plan.primary_metrics],
            start,
            counts,
            backend,
        ),
        _concentration_gate(units, catalogue),
    ]
    blocked_reasons = [f"{g.name}: {g.detail}" for g in gates if not g.passed]
    analysis = Analysis(
        experiment=experiment.key,
        name=experiment.name,
        status=experiment.status,
        plan_hash=experiment.plan_hash,
        computed_at=now,
        engine=backend.name,
        correction=plan.correction,
        alpha=plan.alpha,
        arms=arms,
        gates=gates,
        blocked=bool(blocked_reasons),
        blocked_reasons=blocked_reasons,
        results=[],
        recoveries=[],
        power=[],
    )
    if blocked_reasons:
        return analysis

    metrics = list({m.key: m for m in planned}.values())
    caps = winsor_caps(units, metrics, plan.winsorise_quantile) if plan.winsorise_quantile else {}
    by_arm = _records(arm_sums(units, metrics, by=["arm"], caps=caps, with_pre=has_pre).execute())
    rows = {str(r["arm"]): r for r in by_arm}
    pairs = contrasts(design)
    results: list[ContrastResult] = []
    for group, keys in groups:
        for key in keys:
            metric = catalogue[key]
            for variant in _variants(metric, cuped=plan.cuped and has_pre, winsorised=bool(caps)):
                results.extend(
                    _compare_rows(rows, metric, group, variant, "all", pairs, plan.alpha)
                )
    for slice_column in plan.slices:
        frame = arm_sums(units, metrics, by=["arm", slice_column], caps={}, with_pre=False)
        by_slice: dict[str, dict[str, dict[str, Any]]] = {}
        for r in _records(frame.execute()):
            by_slice.setdefault(str(r[slice_column]), {})[str(r["arm"])] = r
        for value, slice_rows in sorted(by_slice.items()):
            for group, keys in groups:
                for key in keys:
                    results.extend(
                        _compare_rows(
                            slice_rows,
                            catalogue[key],
                            group,
                            "raw",
                            f"{slice_column}={value}",
                            pairs,
                            plan.alpha,
                        )
                    )
    _adjust(results, plan.correction, plan.alpha)
    analysis.results = results
    analysis.recoveries = _recoveries(design, rows, metrics, plan.alpha)
    analysis.power = _power(design, rows, [catalogue[k] for k in plan.primary_metrics], pairs)
    return analysis


def _adjust(results: list[ContrastResult], method: st.Correction, alpha: float) -> None:
    """One correction per group over its metrics × contrasts, on all units.

    A metric with a CUPED result is judged on it (its raw result is shown beside);
    winsorised and per-slice results are descriptive and not adjusted.
    """
    for group in ("primary", "guardrail", "secondary"):
        main: dict[tuple[str, str, str], ContrastResult] = {}
        for r in results:
            if r.group != group or r.slice != "all":
                continue
            key = (r.metric, r.treatment, r.control)
            if r.variant == "cuped" or (r.variant == "raw" and key not in main):
                main[key] = r
        chosen = list(main.values())
        if not chosen:
            continue
        for r, p in zip(chosen, st.adjust([r.p_value for r in chosen], method), strict=True):
            r.p_adjusted = p
            r.significant = p < alpha


def _recoveries(
    design: DesignIn, rows: dict[str, dict[str, Any]], metrics: Sequence[Metric], alpha: float
) -> list[RecoveryResult]:
    t, c1, c2 = (design.role_arm(r) for r in ("treatment", "control_1", "control_2"))
    if not (t and c1 and c2) or not all(a.key in rows for a in (t, c1, c2)):
        return []
    out = []
    for metric in metrics:
        stats = [arm_statistics(rows[a.key], metric, "raw") for a in (t, c1, c2)]
        if any(s.n < 2 for s in stats):
            continue
        r = st.recovery_ratio(stats[0], stats[1], stats[2], alpha=alpha)
        if math.isnan(r.estimate):
            continue
        out.append(
            RecoveryResult(
                metric=metric.key,
                metric_name=metric.name,
                estimate=r.estimate,
                fieller_lower=r.lower,
                fieller_upper=r.upper,
                delta_lower=r.delta_lower,
                delta_upper=r.delta_upper,
                denominator_significant=r.denominator_significant,
            )
        )
    return out


def _power(
    design: DesignIn,
    rows: dict[str, dict[str, Any]],
    metrics: Sequence[Metric],
    pairs: Sequence[tuple[str, str]],
) -> list[PowerResult]:
    """The relative effect each contrast could detect with the units it got (80 % power)."""
    plan = design.plan
    out = []
    for metric in metrics:
        for treatment, control in pairs:
            if treatment not in rows or control not in rows:
                continue
            c = arm_statistics(rows[control], metric, "raw")
            n_t, n_c = int(rows[treatment]["n"]), int(rows[control]["n"])
            total = n_t + n_c
            achieved = None
            if total and c.mean:
                power = st.minimum_detectable_effect(
                    baseline_mean=c.mean,
                    baseline_variance=c.variance,
                    total_units=total,
                    treatment_weight=n_t / total,
                    control_weight=n_c / total,
                    alpha=plan.alpha,
                    power=plan.power,
                    comparisons=len(pairs),
                )
                achieved = power.relative_mde
            out.append(
                PowerResult(
                    metric=metric.key,
                    treatment=treatment,
                    control=control,
                    planned_relative_mde=plan.minimum_detectable_effect,
                    achieved_relative_mde=achieved,
                )
            )
    return out
