"""The statistics core against GrowthBook's gbstats on shared cases (to 1e-6).

gbstats 0.8.0 pins numpy < 2 and pandas < 2, which clash with Accord's pins, so this
test builds it in a virtual environment of its own under the temporary directory
(kept between runs) and runs it there on the same sufficient statistics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from accord.experiments.statistics import compare, sample_ratio_mismatch, with_theta
from tests.experiments.cases import CASES, case_arms

GBSTATS = "gbstats==0.8.0"
TOL = 1e-6

_SCRIPT = r"""
import json, sys
from gbstats.frequentist.tests import TwoSidedTTest, FrequentistConfig
from gbstats.models.statistics import (
    SampleMeanStatistic, ProportionStatistic, RatioStatistic,
    RegressionAdjustedStatistic, compute_theta,
)
from gbstats.utils import check_srm

def mean(s): return SampleMeanStatistic(n=s["n"], sum=s["total"], sum_squares=s["squares"])

def build(kind, s):
    if kind == "mean": return mean(s)
    if kind == "proportion": return ProportionStatistic(n=s["n"], sum=s["total"])
    if kind == "ratio":
        return RatioStatistic(n=s["n"], m_statistic=mean(s["num"]), d_statistic=mean(s["den"]),
                              m_d_sum_of_products=s["cross"])
    return RegressionAdjustedStatistic(n=s["n"], post_statistic=mean(s["post"]),
        pre_statistic=mean(s["pre"]), post_pre_sum_of_products=s["cross"], theta=0)

out = {"tests": [], "srm": []}
payload = json.load(sys.stdin)
for case in payload["tests"]:
    a, b = build(case["kind"], case["control"]), build(case["kind"], case["treatment"])
    if case["kind"] == "cuped":
        theta = compute_theta(a, b)
        a.theta = theta; b.theta = theta
    r = TwoSidedTTest(a, b, FrequentistConfig(alpha=0.05)).compute_result()
    out["tests"].append({"expected": r.expected, "ci": list(r.ci), "p": r.p_value})
for counts, weights in payload["srm"]:
    out["srm"].append(check_srm(counts, weights))
print(json.dumps(out))
"""


def _gbstats_python() -> Path:
    venv = Path(tempfile.gettempdir()) / "accord-gbstats-0.8.0"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--no-input", GBSTATS],
            check=True,
            timeout=900,
        )
        (venv / ".complete").touch()
    return python


def _mean(m: Any) -> dict[str, float]:
    return {"n": m.n, "total": m.total, "squares": m.total_squares}


def _payload(kind: str, stats: Any) -> dict[str, Any]:
    if kind == "mean":
        return _mean(stats)
    if kind == "proportion":
        return {"n": stats.n, "total": stats.total}
    if kind == "ratio":
        return {
            "n": stats.n,
            "num": _mean(stats.numerator),
            "den": _mean(stats.denominator),
            "cross": stats.cross,
        }
    return {"n": stats.n, "post": _mean(stats.post), "pre": _mean(stats.pre), "cross": stats.cross}


@pytest.mark.slow
def test_relative_lifts_and_srm_match_gbstats() -> None:
    cases = []
    ours = []
    for index in range(len(CASES)):
        control, treatment = case_arms(index)
        pairs = {
            "mean": (control.mean_stats(), treatment.mean_stats()),
            "proportion": (control.proportion_stats(), treatment.proportion_stats()),
            "ratio": (control.ratio_stats(), treatment.ratio_stats()),
            "cuped": tuple(with_theta([control.cuped_stats(), treatment.cuped_stats()])),
        }
        for kind, (c, t) in pairs.items():
            cases.append(
                {"kind": kind, "control": _payload(kind, c), "treatment": _payload(kind, t)}
            )
            ours.append((kind, compare(c, t)))
    srm_cases = [([3050, 980, 2970], [3, 1, 3]), ([5000, 5210], [0.5, 0.5]), ([10, 0], [1, 1])]
    completed = subprocess.run(
        [str(_gbstats_python()), "-c", _SCRIPT],
        input=json.dumps({"tests": cases, "srm": srm_cases}),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    theirs = json.loads(completed.stdout)
    for (kind, result), reference in zip(ours, theirs["tests"], strict=True):
        assert result.relative is not None
        assert result.relative.estimate == pytest.approx(reference["expected"], abs=TOL), kind
        if kind == "cuped":
            # gbstats 0.8.0 scales the whole CUPED control variance by (T/C)²; Accord takes
            # the delta method term by term (issue 19 item 13, checked by simulation in
            # test_statistics.py), so only the estimate is shared.
            continue
        assert result.relative.lower == pytest.approx(reference["ci"][0], abs=TOL), kind
        assert result.relative.upper == pytest.approx(reference["ci"][1], abs=TOL), kind
        assert result.p_value == pytest.approx(reference["p"], abs=TOL), kind
    for (counts, weights), reference in zip(srm_cases, theirs["srm"], strict=True):
        assert sample_ratio_mismatch(counts, weights).p_value == pytest.approx(reference, abs=TOL)
