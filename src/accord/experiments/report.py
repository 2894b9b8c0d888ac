"""The experiment report: self-contained HTML (Jinja2 + Plotly, no CDN) and CSV."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from accord.core.bundles import plotly_js
from accord.core.csvfile import csv_text
from accord.experiments.analysis import Analysis, ContrastResult
from accord.experiments.metrics import metric_catalogue
from accord.experiments.models import ExperimentView
from accord.experiments.statistics import Correction

CSV_COLUMNS = (
    "section",
    "name",
    "passed",
    "detail",
    "metric",
    "group",
    "variant",
    "slice",
    "treatment",
    "control",
    "n_treatment",
    "n_control",
    "treatment_mean",
    "control_mean",
    "difference",
    "difference_lower",
    "difference_upper",
    "lift",
    "lift_lower",
    "lift_upper",
    "p_value",
    "p_adjusted",
    "significant",
)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("accord.experiments", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["percent"] = percent
    env.filters["interval"] = interval
    env.filters["number"] = number
    return env


def percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value * 100:+.{digits}f} %"


def interval(result: ContrastResult) -> str:
    """'+3.2 % [−1.0 %, +7.4 %]' for a lift; the difference when the control mean is 0."""
    if result.lift is None:
        return (
            f"{result.difference:+.4g} [{result.difference_lower:+.4g}, "
            f"{result.difference_upper:+.4g}] (absolute)"
        )
    return f"{percent(result.lift)} [{percent(result.lift_lower)}, {percent(result.lift_upper)}]"


def number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}"


def _forest(results: list[ContrastResult], title: str) -> dict[str, Any]:
    """A Plotly figure (as JSON data): lifts with their intervals, one row per metric and
    contrast (the CUPED result where there is one)."""
    main: dict[tuple[str, str, str], ContrastResult] = {}
    for r in results:
        if r.slice != "all" or r.variant == "winsorised" or r.lift is None:
            continue
        key = (r.metric_name, r.treatment, r.control)
        if r.variant == "cuped" or key not in main:
            main[key] = r
    rows = list(main.values())
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": [100 * (r.lift or 0.0) for r in rows],
        "y": [f"{r.metric_name}: {r.treatment} vs {r.control}" for r in rows],
        "error_x": {
            "type": "data",
            "symmetric": False,
            "array": [100 * ((r.lift_upper or 0.0) - (r.lift or 0.0)) for r in rows],
            "arrayminus": [100 * ((r.lift or 0.0) - (r.lift_lower or 0.0)) for r in rows],
        },
    }
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": "% change [95 % interval]"}, "zeroline": True},
        "shapes": [
            {
                "type": "line",
                "x0": 0,
                "x1": 0,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"dash": "dot"},
            }
        ],
        "height": 120 + 40 * len(rows),
        "margin": {"l": 360},
    }
    return {"data": [trace], "layout": layout}


def _split(analysis: Analysis) -> dict[str, Any]:
    arms = [a.arm for a in analysis.arms]
    return {
        "data": [
            {"type": "bar", "name": "units", "x": arms, "y": [a.units for a in analysis.arms]},
            {
                "type": "bar",
                "name": "expected from the weights",
                "x": arms,
                "y": [a.expected_units for a in analysis.arms],
            },
        ],
        "layout": {"title": {"text": "Units per arm"}, "barmode": "group", "height": 320},
    }


def render_html(
    analysis: Analysis, experiment: ExperimentView, *, plotly_src: str | None = None
) -> str:
    """The report; plotly.js is embedded unless `plotly_src` names Accord's own copy."""
    catalogue = metric_catalogue(experiment.design.metrics)
    planned = [
        *experiment.design.plan.primary_metrics,
        *experiment.design.plan.guardrail_metrics,
        *experiment.design.plan.secondary_metrics,
    ]
    charts = {"split": _split(analysis)}
    if not analysis.blocked:
        charts["primary"] = _forest(
            [r for r in analysis.results if r.group == "primary"], "Primary metrics"
        )
        others = [r for r in analysis.results if r.group != "primary"]
        if others:
            charts["others"] = _forest(others, "Guardrail and secondary metrics")
    correction: Correction = analysis.correction  # type: ignore[assignment]
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            analysis=analysis,
            experiment=experiment,
            design=experiment.design,
            metrics=[catalogue[k] for k in dict.fromkeys(planned)],
            # "</" inside a script would end it: user-named metrics must not.
            charts_json={k: json.dumps(v).replace("</", "<\\/") for k, v in charts.items()},
            plotly_src=plotly_src,
            plotly_inline=None if plotly_src else plotly_js(),
            correction_name="Holm" if correction == "holm" else "Benjamini–Hochberg",
            results=analysis.results,
        )
    )


def render_csv(analysis: Analysis) -> str:
    rows: list[dict[str, Any]] = [
        {"section": "gate", "name": gate.key, "passed": gate.passed, "detail": gate.detail}
        for gate in analysis.gates
    ]
    for result in analysis.results:
        row = result.model_dump()
        row.pop("metric_name")
        rows.append({"section": "result", **row})
    return csv_text(CSV_COLUMNS, rows)
