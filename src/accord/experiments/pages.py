"""Experiment pages of the admin UI: list, design with the power calculator, and the detail
with the pre-registered plan, the gates and the results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from accord.core.clock import utcnow
from accord.core.errors import ExperimentState, FieldProblem, InvalidInput
from accord.engine.connection import connect
from accord.experiments import adlogs, report, service, statistics
from accord.experiments.analysis import Analysis, ContrastResult
from accord.experiments.api import PowerIn, PowerOut
from accord.experiments.metrics import metric_catalogue
from accord.experiments.models import DesignIn, ExperimentView, cma_three_arm
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.charts import PLOTLY_PATH, Chart, Series
from accord.web.state import AppState, State
from accord.web.ui import NavEntry, arender, redirect

router = APIRouter(include_in_schema=False)
nav = [NavEntry("Experiments", "/experiments", "experiments.read", "Activation", 50)]

Reader = Annotated[Caller, Depends(requires("experiments.read"))]
Manager = Annotated[Caller, Depends(requires("experiments.manage"))]

POWER_FIELDS = tuple(PowerIn.model_fields)


def _problems(exc: ValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(".".join(str(part) for part in e["loc"]) or "design", str(e["msg"]))
        for e in exc.errors()
    ]


def template_design(kind: str) -> DesignIn:
    """A starting design: the CMA's three arms weighted 3:1:3, or a plain A/B test."""
    design = cma_three_arm(
        key="relevance-test", name="Relevance test", primary_metrics=["ctr", "conversion_rate"]
    )
    if kind == "ab":
        arms = [design.arms[1].model_copy(), design.arms[0].model_copy()]
        arms[0] = arms[0].model_copy(
            update={"key": "control", "name": "Control", "role": "control"}
        )
        arms[1] = arms[1].model_copy(
            update={"key": "variant", "name": "Variant", "role": "variant", "weight": 1}
        )
        plan = design.plan.model_copy(update={"control_arm": "control"})
        design = design.model_copy(
            update={"key": "ab-test", "name": "A/B test", "arms": arms, "plan": plan}
        )
    return design


def parse_design(text: str) -> DesignIn:
    """The design page's JSON as a design, every problem named by its field; metric keys
    are checked against the catalogue the way creating the experiment checks them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidInput([FieldProblem("design", reason)]) from None
    try:
        design = DesignIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    known = metric_catalogue(design.metrics)
    unknown = [
        FieldProblem(f"plan.{group}[{i}]", f"unknown metric {key!r}")
        for group in ("primary_metrics", "guardrail_metrics", "secondary_metrics")
        for i, key in enumerate(getattr(design.plan, group))
        if key not in known
    ]
    if unknown:
        raise InvalidInput(unknown)
    return design


def _power(params: dict[str, str]) -> tuple[dict[str, str], PowerOut | None, list[FieldProblem]]:
    """The calculator's fields, its answer when they were submitted, and its problems."""
    fields = {
        "baseline_mean": "0.02",
        "baseline_variance": "0.0196",
        "total_units": "70000",
        "treatment_weight": f"{3 / 7:.4f}",
        "control_weight": f"{1 / 7:.4f}",
        "alpha": "0.05",
        "power": "0.8",
        "comparisons": "3",
    }
    if not any(name in params for name in POWER_FIELDS):
        return fields, None, []
    fields.update({name: params[name] for name in POWER_FIELDS if name in params})
    try:
        body = PowerIn.model_validate(fields)
    except ValidationError as exc:
        return fields, None, _problems(exc)
    result = statistics.minimum_detectable_effect(**body.model_dump())
    return fields, PowerOut(**result.__dict__), []


async def _design_page(
    request: Request,
    caller: Caller,
    *,
    design_json: str,
    design: DesignIn | None,
    problems: Sequence[FieldProblem] = (),
    status: int = 200,
    notice: str | None = None,
) -> Response:
    fields, power, power_problems = _power(dict(request.query_params))
    return await arender(
        request,
        "experiments/design.html",
        caller=caller,
        design_json=design_json,
        design=design,
        shares=_shares(design),
        problems=problems,
        catalogue=list(metric_catalogue().values()),
        power_fields=fields,
        power=power,
        power_problems=power_problems,
        status=status,
        notice=notice,
    )


def _shares(design: DesignIn | None) -> dict[str, float]:
    if design is None:
        return {}
    total = sum(a.weight for a in design.arms)
    return {a.key: a.weight / total for a in design.arms}


@router.get("/experiments")
async def experiments_page(request: Request, state: State, caller: Reader) -> Response:
    def work(conn: Connection) -> list[ExperimentView]:
        return service.list_experiments(conn, business_id=caller.business_id)

    rows = await store_work.read(state, work)
    return await arender(request, "experiments/list.html", caller=caller, experiments=rows)


@router.get("/experiments/new")
async def design_page(request: Request, caller: Reader, template: str = "cma") -> Response:
    design = template_design(template)
    return await _design_page(
        request, caller, design_json=design.model_dump_json(indent=2), design=design
    )


@router.post("/experiments/new/check")
async def design_check(
    request: Request, caller: Reader, design: Annotated[str, Form()] = ""
) -> Response:
    try:
        parsed = parse_design(design)
    except InvalidInput as exc:
        return await _design_page(
            request, caller, design_json=design, design=None, problems=exc.problems, status=400
        )
    return await _design_page(
        request, caller, design_json=design, design=parsed, notice="The design is valid"
    )


@router.post("/experiments/new")
async def design_save(
    request: Request, state: State, caller: Manager, design: Annotated[str, Form()] = ""
) -> Response:
    def work() -> ExperimentView:
        parsed = parse_design(design)
        with state.store.write() as conn:
            return service.create_experiment(
                conn, business_id=caller.business_id, design=parsed, now=utcnow()
            )

    try:
        created = await store_work.run(work)
    except InvalidInput as exc:
        return await _design_page(
            request, caller, design_json=design, design=None, problems=exc.problems, status=400
        )
    return redirect(request, f"/experiments/{created.key}", notice="Experiment saved as a draft")


def _analysis(
    state: AppState, business_id: str, key: str
) -> tuple[ExperimentView, Analysis | None]:
    with state.store.read() as conn:
        experiment = service.get_experiment(conn, business_id=business_id, key=key)
    if experiment.status == "draft":
        return experiment, None  # no data before the plan is frozen
    backend = connect(state.settings.engine_url)
    lake_url = state.settings.resolved_lake_url()
    logs = adlogs.ad_logs(backend, lake_url, business_id=business_id, experiment_key=key)
    if int(logs.count().execute()) == 0:
        return experiment, None  # nothing to analyse yet
    analysis = service.analyse_experiment(
        backend, lake_url, business_id=business_id, experiment=experiment, now=utcnow()
    )
    return experiment, analysis


def _main_results(analysis: Analysis) -> list[ContrastResult]:
    """One row per metric and contrast over everyone: CUPED when it ran, raw otherwise."""
    chosen: dict[tuple[str, str, str], ContrastResult] = {}
    for r in analysis.results:
        if r.slice != "all" or r.variant not in ("raw", "cuped"):
            continue
        key = (r.metric, r.treatment, r.control)
        if r.variant == "cuped" or key not in chosen:
            chosen[key] = r
    order = {"primary": 0, "guardrail": 1, "secondary": 2}
    return sorted(chosen.values(), key=lambda r: (order.get(r.group, 3), r.metric))


def units_chart(analysis: Analysis) -> Chart:
    """Units per arm against what the weights lead to expect (the sample-ratio check)."""
    return Chart(
        title="Units per arm",
        x=[f"{a.name} ({a.arm})" for a in analysis.arms],
        series=[
            Series("Units", [a.units for a in analysis.arms]),
            Series("Expected from the weights", [round(a.expected_units) for a in analysis.arms]),
        ],
        kind="bar",
        x_title="Arm",
        y_title="Units",
        id="arm-units",
    )


def lifts_chart(results: Sequence[ContrastResult]) -> Chart:
    """Each metric's % change of an arm against its control, with its 95 % interval."""
    shown = [r for r in results if r.lift is not None]
    return Chart(
        title="% change against the control, with 95 % intervals",
        x=[f"{r.metric_name}: {r.treatment} vs {r.control}" for r in shown],
        series=[
            Series(
                "% change",
                [r.lift for r in shown],
                low=[r.lift_lower for r in shown],
                high=[r.lift_upper for r in shown],
            )
        ],
        kind="hbar",
        fmt="percent",
        y_title="Metric and contrast",
        height=max(160, 36 * len(shown) + 80),
        id="arm-lifts",
        notes=["A bar whose interval crosses 0 is no evidence of a difference."],
    )


@router.get("/experiments/{key}")
async def experiment_page(request: Request, state: State, caller: Reader, key: str) -> Response:
    experiment, analysis = await store_work.run(_analysis, state, caller.business_id, key)
    catalogue = metric_catalogue(experiment.design.metrics)
    results = _main_results(analysis) if analysis else []
    return await arender(
        request,
        "experiments/detail.html",
        caller=caller,
        experiment=experiment,
        design=experiment.design,
        shares=_shares(experiment.design),
        catalogue=catalogue,
        analysis=analysis,
        results=results,
        units=units_chart(analysis) if analysis else None,
        lifts=lifts_chart(results),
        interval=report.interval,
        percent=report.percent,
    )


@router.get("/experiments/{key}/report")
async def report_page(state: State, caller: Reader, key: str) -> Response:
    """The context's full report (charts, methodology, every slice), with Accord's plotly.js."""
    experiment, analysis = await store_work.run(_analysis, state, caller.business_id, key)
    if analysis is None:
        raise ExperimentState("status", f"experiment {key!r} has no ad logs to report on yet")
    return HTMLResponse(report.render_html(analysis, experiment, plotly_src=PLOTLY_PATH))


async def _transition(
    request: Request, state: AppState, caller: Caller, key: str, action: str
) -> Response:
    def work(conn: Connection) -> ExperimentView:
        change = service.start_experiment if action == "start" else service.stop_experiment
        return change(conn, business_id=caller.business_id, key=key, now=utcnow())

    try:
        view = await store_work.write(state, work)
    except (InvalidInput, ExperimentState) as exc:
        return redirect(request, f"/experiments/{key}", error=str(exc))
    return redirect(request, f"/experiments/{key}", notice=f"Experiment is now {view.status}")


@router.post("/experiments/{key}/start")
async def start(request: Request, state: State, caller: Manager, key: str) -> Response:
    return await _transition(request, state, caller, key, "start")


@router.post("/experiments/{key}/stop")
async def stop(request: Request, state: State, caller: Manager, key: str) -> Response:
    return await _transition(request, state, caller, key, "stop")
