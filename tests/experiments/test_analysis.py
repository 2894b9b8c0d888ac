"""The gated analysis on simulated logs: healthy data, a broken split, a whale, a bad day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from accord.experiments.analysis import Analysis, analyse, contrasts
from accord.experiments.models import AnalysisPlan, Arm, DesignIn, ExperimentView, cma_three_arm
from accord.experiments.report import render_csv, render_html
from accord.experiments.simulate import Scenario, simulate

START = datetime(2026, 10, 1, tzinfo=UTC)
ARMS = ["treatment", "control_1", "control_2"]


def _experiment(design: DesignIn) -> ExperimentView:
    return ExperimentView(
        id="exp_1",
        key=design.key,
        name=design.name,
        status="running",
        seed="seed",
        plan_hash="0" * 64,
        created_at=START,
        started_at=START,
        stopped_at=None,
        design=design,
    )


def _cma() -> DesignIn:
    design = cma_three_arm(
        key="cma",
        name="CMA test",
        primary_metrics=["ctr", "conversions_per_unit"],
        guardrail_metrics=["auction_latency"],
    )
    design.plan.secondary_metrics = ["unique_users_reached"]
    design.plan.slices = ["device"]
    design.start_day = "2026-10-01"
    return design


def _run(table: pa.Table, design: DesignIn) -> Analysis:
    backend = ibis.duckdb.connect()
    logs = backend.create_table("logs", table)
    return analyse(backend, logs, _experiment(design), now=START)


def _scenario(**changes: Any) -> Scenario:
    base = {
        "arms": ARMS,
        "weights": [3, 1, 3],
        "users": 14_000,
        "start": START,
        "effects": {"control_2": 0.7, "treatment": 0.9},
        "topics_arms": ["treatment"],
        "seed": 3,
    }
    return Scenario(**{**base, **changes})


@pytest.fixture(scope="module")
def healthy() -> Analysis:
    return _run(simulate(_scenario()), _cma())


def test_healthy_experiment_passes_every_gate(healthy: Analysis) -> None:
    assert not healthy.blocked, healthy.blocked_reasons
    assert [g.key for g in healthy.gates] == [
        "srm",
        "contamination",
        "balance",
        "anomalies",
        "concentration",
    ]
    assert {a.arm: a.weight for a in healthy.arms} == {
        "treatment": 3,
        "control_1": 1,
        "control_2": 3,
    }


def test_all_three_contrasts_with_one_correction(healthy: Analysis) -> None:
    assert contrasts(_cma()) == [
        ("treatment", "control_1"),
        ("treatment", "control_2"),
        ("control_2", "control_1"),
    ]
    primary = [r for r in healthy.results if r.group == "primary" and r.p_adjusted is not None]
    # ctr (raw) and conversions per unit (CUPED) × three contrasts, one Holm family.
    assert len(primary) == 6
    assert {(r.metric, r.variant) for r in primary} == {
        ("ctr", "raw"),
        ("conversions_per_unit", "cuped"),
    }
    assert all(r.p_adjusted >= r.p_value for r in primary)
    ctr = {(r.treatment, r.control): r for r in primary if r.metric == "ctr"}
    # Injected: control 2 has 0.7× and the treatment 0.9× the CTR of control 1.
    for (t, c), true_lift in {
        ("treatment", "control_1"): -0.1,
        ("treatment", "control_2"): 0.9 / 0.7 - 1,
        ("control_2", "control_1"): -0.3,
    }.items():
        r = ctr[(t, c)]
        assert r.lift_lower is not None and r.lift_upper is not None
        assert r.lift_lower <= true_lift <= r.lift_upper
    assert ctr[("control_2", "control_1")].significant
    variants = {r.variant for r in healthy.results if r.metric == "conversions_per_unit"}
    assert variants == {"raw", "cuped", "winsorised"}
    assert {r.slice for r in healthy.results} >= {"all", "device=phone", "device=desktop"}


def test_recovery_ratio_and_power(healthy: Analysis) -> None:
    ctr = next(r for r in healthy.recoveries if r.metric == "ctr")
    # (0.9 − 0.7) / (1 − 0.7) of the gap recovered.
    assert ctr.denominator_significant
    assert ctr.fieller_lower is not None and ctr.fieller_upper is not None
    assert ctr.fieller_lower <= 2 / 3 <= ctr.fieller_upper
    assert {(p.treatment, p.control) for p in healthy.power} == set(contrasts(_cma()))
    assert all(p.achieved_relative_mde and p.achieved_relative_mde > 0 for p in healthy.power)


def test_broken_split_blocks_the_verdict() -> None:
    analysis = _run(simulate(_scenario(split_bias={"control_1": 0.8})), _cma())
    assert analysis.blocked and analysis.results == []
    srm = next(g for g in analysis.gates if g.key == "srm")
    assert not srm.passed and "control_1" in srm.detail
    assert analysis.blocked_reasons[0].startswith("Sample ratio: units per arm")


def test_one_whale_blocks_the_verdict() -> None:
    analysis = _run(simulate(_scenario(whale=True)), _cma())
    assert analysis.blocked
    gate = next(g for g in analysis.gates if g.key == "concentration")
    assert not gate.passed and "one unit holds" in gate.detail
    assert [g.key for g in analysis.gates if not g.passed] == ["concentration"]


def test_units_seen_in_two_arms_block_the_verdict() -> None:
    table = simulate(_scenario(users=3000))
    arm = table.column("arm")
    # Mislabel a fifth of the impressions: their units now appear in two arms.
    mask = pc.equal(table.column("type"), "impression")
    flip = pa.array(np.random.default_rng(1).random(table.num_rows) < 0.2)
    relabelled = pc.if_else(pc.and_(mask, flip), pa.scalar("control_2"), arm)
    analysis = _run(
        table.set_column(table.schema.get_field_index("arm"), "arm", relabelled), _cma()
    )
    gate = next(g for g in analysis.gates if g.key == "contamination")
    assert not gate.passed and analysis.blocked


def test_a_bad_day_is_an_anomaly() -> None:
    table = simulate(_scenario(users=6000))
    day = pc.cast(table.column("timestamp"), pa.date32())
    bad = pc.and_(
        pc.equal(day, pa.scalar(datetime(2026, 10, 5).date(), pa.date32())),
        pc.and_(
            pc.equal(table.column("type"), "click"), pc.equal(table.column("arm"), "treatment")
        ),
    )
    # The treatment's clicks of one day are logged ten times (a pipeline fault).
    copies = [
        table.filter(bad).set_column(
            0,
            "record_id",
            pc.binary_join_element_wise(
                table.filter(bad).column("record_id"), pa.scalar(f"-dup{i}"), ""
            ),
        )
        for i in range(9)
    ]
    analysis = _run(pa.concat_tables([table, *copies]), _cma())
    gate = next(g for g in analysis.gates if g.key == "anomalies")
    assert not gate.passed and "2026-10-05" in gate.detail


def _day(table: pa.Table, event: str, arm: str, day: str) -> pc.Expression:
    days = pc.cast(table.column("timestamp"), pa.date32())
    return pc.and_(
        pc.equal(days, pa.scalar(datetime.fromisoformat(day).date(), pa.date32())),
        pc.and_(pc.equal(table.column("type"), event), pc.equal(table.column("arm"), arm)),
    )


def _logged_again(table: pa.Table, mask: Any, times: int) -> pa.Table:
    """The masked records logged `times` more times under new record ids."""
    bad = table.filter(mask)
    copies = [
        bad.set_column(
            0,
            "record_id",
            pc.binary_join_element_wise(bad.column("record_id"), pa.scalar(f"-dup{i}"), ""),
        )
        for i in range(times)
    ]
    return pa.concat_tables([table, *copies])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sparse_conversions_at_default_rates_do_not_block(seed: int) -> None:
    # 3000 units at the default rates: about one conversion a day per arm, most days none;
    # a MAD of 0 must not turn the first conversion into an anomaly.
    analysis = _run(simulate(_scenario(users=3000, seed=seed)), _cma())
    gate = next(g for g in analysis.gates if g.key == "anomalies")
    assert gate.passed, gate.detail
    assert not analysis.blocked, analysis.blocked_reasons


@pytest.mark.parametrize("seed", [107, 117])
def test_sparse_conversion_rate_does_not_block(seed: int) -> None:
    # Conversions over clicks at 2000 units: a day with few clicks and one or two
    # conversions has a high rate, and its own Poisson noise to match.
    design = _cma()
    design.plan.primary_metrics = ["conversion_rate"]
    gate = next(
        g
        for g in _run(simulate(_scenario(users=2000, seed=seed)), design).gates
        if g.key == "anomalies"
    )
    assert gate.passed, gate.detail


@pytest.mark.parametrize("seed", [1, 2])
def test_sparse_conversion_value_does_not_block(seed: int) -> None:
    # A sum of values over sparse records: the compound-Poisson floor, not the MAD of 0.
    design = _cma()
    design.plan.primary_metrics = ["conversion_value_per_unit"]
    table = simulate(_scenario(users=3000, seed=seed))
    gate = next(g for g in _run(table, design).gates if g.key == "anomalies")
    assert gate.passed, gate.detail


def test_a_burst_of_conversions_in_a_sparse_series_is_an_anomaly() -> None:
    table = simulate(_scenario(users=3000, seed=1))
    mask = _day(table, "conversion", "control_2", "2026-10-07")
    assert 0 < pc.sum(pc.cast(mask, pa.int64())).as_py() <= 3  # sparse indeed
    analysis = _run(_logged_again(table, mask, 49), _cma())
    gate = next(g for g in analysis.gates if g.key == "anomalies")
    assert not gate.passed
    assert "Conversions per unit of control_2 on 2026-10-07" in gate.detail
    # The same burst in a sum of values (1 conversion that day, 50 after the fault).
    design = _cma()
    design.plan.primary_metrics = ["conversion_value_per_unit"]
    mask = _day(table, "conversion", "treatment", "2026-10-03")
    gate = next(
        g for g in _run(_logged_again(table, mask, 49), design).gates if g.key == "anomalies"
    )
    assert not gate.passed
    assert "Conversion value per unit of treatment on 2026-10-03" in gate.detail


def test_a_day_without_impressions_is_an_anomaly() -> None:
    table = simulate(_scenario(users=3000, seed=1))
    design = _cma()
    design.plan.primary_metrics = ["unique_users_reached"]
    lost = table.filter(pc.invert(_day(table, "impression", "treatment", "2026-10-09")))
    gate = next(g for g in _run(lost, design).gates if g.key == "anomalies")
    assert not gate.passed
    assert "Unique users reached of treatment on 2026-10-09" in gate.detail
    # The same series without the loss is clean.
    gate = next(g for g in _run(table, design).gates if g.key == "anomalies")
    assert gate.passed, gate.detail


def test_ab_design_compares_every_arm_with_the_control() -> None:
    design = DesignIn(
        key="abn",
        name="A/B/n",
        arms=[
            Arm(key="a", name="A", role="control", weight=1),
            Arm(key="b", name="B", role="variant", weight=1),
            Arm(key="c", name="C", role="variant", weight=2),
        ],
        plan=AnalysisPlan(
            control_arm="a",
            primary_metrics=["ctr"],
            minimum_detectable_effect=0.1,
            correction="benjamini-hochberg",
            cuped=False,
            winsorise_quantile=None,
        ),
    )
    assert contrasts(design) == [("b", "a"), ("c", "a")]
    table = simulate(
        Scenario(arms=["a", "b", "c"], weights=[1, 1, 2], users=4000, start=START, seed=9)
    )
    analysis = _run(table, design)
    assert not analysis.blocked
    assert {r.variant for r in analysis.results} == {"raw"}
    assert analysis.recoveries == []


def test_report_html_and_csv(healthy: Analysis) -> None:
    html = render_html(healthy, _experiment(_cma()), plotly_src="/static/plotly.min.js")
    assert '<script src="/static/plotly.min.js"></script>' in html
    assert "% change [95 % interval]" in html and "Methodology" in html and "Caveats" in html
    assert "Recovery ratio" in html and "Fieller" in html
    embedded = render_html(healthy, _experiment(_cma()))
    assert "<script src=" not in embedded and "Plotly" in embedded
    lines = render_csv(healthy).splitlines()
    assert lines[0].startswith("section,name,passed,detail,metric")
    assert sum(line.startswith("gate,") for line in lines) == 5
    assert sum(line.startswith("result,") for line in lines) == len(healthy.results)


def test_blocked_report_withholds_results() -> None:
    analysis = _run(simulate(_scenario(users=4000, whale=True)), _cma())
    html = render_html(analysis, _experiment(_cma()), plotly_src="/p.js")
    assert "No verdict: the gates failed" in html and "one unit holds" in html
    assert "chart-primary" not in html
