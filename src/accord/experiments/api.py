"""Experiments over HTTP: admin routes for designs, plans, analysis and reports; public
routes (write key) for assignment and ad-log collection."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError

from accord.accounts.models import SourceRef
from accord.collect import service as collect
from accord.core.clock import utcnow
from accord.core.errors import FieldProblem, InvalidInput, PayloadTooLarge
from accord.engine.connection import connect
from accord.experiments import report, service, statistics
from accord.experiments.adlogs import RawRecord
from accord.experiments.analysis import Analysis
from accord.experiments.models import (
    KEY_PATTERN,
    Assignment,
    DesignIn,
    ExperimentView,
    cma_three_arm,
)
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.bodies import read_limited
from accord.web.downloads import attachment
from accord.web.errors import json_response, validation_problems
from accord.web.state import AppState, State

router = APIRouter(tags=["experiments"])

Reader = Annotated[Caller, Depends(requires("experiments.read"))]
Manager = Annotated[Caller, Depends(requires("experiments.manage"))]


class CmaTemplateIn(BaseModel):
    # The same rules as the design it fills in, so a bad key is refused here, by name.
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    primary_metrics: list[str] = Field(min_length=1)
    guardrail_metrics: list[str] = Field(default_factory=list)
    minimum_detectable_effect: float = Field(default=0.05, gt=0)


class PowerIn(BaseModel):
    baseline_mean: float
    baseline_variance: float = Field(gt=0)
    total_units: int = Field(gt=1)
    treatment_weight: float = Field(gt=0, lt=1, description="share of all units in the arm")
    control_weight: float = Field(gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    comparisons: int = Field(default=1, ge=1, le=100)


class PowerOut(BaseModel):
    minimum_detectable_effect: float
    relative_mde: float | None
    # Treatment, then control. A list, not a tuple: OpenAPI tools read its schema.
    units_per_arm: list[int] = Field(min_length=2, max_length=2)


class AdLogsOut(BaseModel):
    read: int
    stored: int
    rejected: list[dict[str, Any]]


def _experiment(state: AppState, business_id: str, key: str) -> ExperimentView:
    with state.store.read() as conn:
        return service.get_experiment(conn, business_id=business_id, key=key)


def _analysis(state: AppState, business_id: str, key: str) -> tuple[Analysis, ExperimentView]:
    experiment = _experiment(state, business_id, key)
    backend = connect(state.settings.engine_url)
    analysis = service.analyse_experiment(
        backend,
        state.settings.resolved_lake_url(),
        business_id=business_id,
        experiment=experiment,
        now=utcnow(),
    )
    return analysis, experiment


@router.post("/api/experiments", status_code=201, summary="Create an experiment design (a draft)")
def create(state: State, caller: Manager, design: DesignIn) -> ExperimentView:
    with state.store.write() as conn:
        return service.create_experiment(
            conn, business_id=caller.business_id, design=design, now=utcnow()
        )


@router.post("/api/experiments/templates/cma", summary="A CMA three-arm design (3:1:3), not saved")
async def cma_template(_caller: Reader, body: CmaTemplateIn) -> DesignIn:
    try:
        return cma_three_arm(
            key=body.key,
            name=body.name,
            primary_metrics=body.primary_metrics,
            guardrail_metrics=body.guardrail_metrics,
            minimum_detectable_effect=body.minimum_detectable_effect,
        )
    except ValidationError as exc:
        # The design's own rules (metric names…) refuse what the template was given.
        raise validation_problems(exc.errors()) from None


@router.post("/api/experiments/power", summary="Minimum detectable effect for unequal arms")
async def power(_caller: Reader, body: PowerIn) -> PowerOut:
    result = statistics.minimum_detectable_effect(**body.model_dump())
    # Found by the fuzz: both cases answered an infinite effect, sent as null.
    if min(result.units_per_arm) < 1:
        raise InvalidInput(
            [FieldProblem("total_units", "leaves an arm without units at these weights")]
        )
    if not math.isfinite(result.minimum_detectable_effect):
        raise InvalidInput(
            [FieldProblem("baseline_variance", "is too large: the detectable effect overflows")]
        )
    return PowerOut(**result.__dict__)


@router.get("/api/experiments", summary="List experiments")
def list_all(state: State, caller: Reader) -> list[ExperimentView]:
    with state.store.read() as conn:
        return service.list_experiments(conn, business_id=caller.business_id)


@router.get("/api/experiments/{key}", summary="One experiment with its design and plan")
async def get(state: State, caller: Reader, key: str) -> ExperimentView:
    return await store_work.run(_experiment, state, caller.business_id, key)


@router.put(
    "/api/experiments/{key}",
    summary="Replace a draft's design; 409 once started (the plan is frozen)",
)
def update(state: State, caller: Manager, key: str, design: DesignIn) -> ExperimentView:
    with state.store.write() as conn:
        return service.update_design(
            conn, business_id=caller.business_id, key=key, design=design, now=utcnow()
        )


@router.post("/api/experiments/{key}/start", summary="Freeze the plan and open assignment")
def start(state: State, caller: Manager, key: str) -> ExperimentView:
    with state.store.write() as conn:
        return service.start_experiment(conn, business_id=caller.business_id, key=key, now=utcnow())


@router.post("/api/experiments/{key}/stop", summary="Close assignment")
def stop(state: State, caller: Manager, key: str) -> ExperimentView:
    with state.store.write() as conn:
        return service.stop_experiment(conn, business_id=caller.business_id, key=key, now=utcnow())


@router.get("/api/experiments/{key}/analysis", summary="Gates, then results (if the gates pass)")
async def analysis(state: State, caller: Reader, key: str) -> Analysis:
    result, _ = await store_work.run(_analysis, state, caller.business_id, key)
    return result


@router.get(
    "/api/experiments/{key}/report.html",
    response_class=HTMLResponse,
    summary="The report as one self-contained HTML page",
)
async def report_html(state: State, caller: Reader, key: str) -> HTMLResponse:
    result, experiment = await store_work.run(_analysis, state, caller.business_id, key)
    return HTMLResponse(report.render_html(result, experiment))


@router.get(
    "/api/experiments/{key}/report.csv",
    response_class=PlainTextResponse,
    summary="Gates and results as CSV",
)
async def report_csv(state: State, caller: Reader, key: str) -> Response:
    result, _ = await store_work.run(_analysis, state, caller.business_id, key)
    return Response(
        report.render_csv(result),
        media_type="text/csv",
        headers=attachment(f"{key}.csv"),
    )


def _source(state: AppState, request: Request, body: Any, write_key: str | None) -> SourceRef:
    key = collect.write_key_from(request.headers.get("authorization"), body) or write_key
    return state.write_keys.resolve(key, origin=request.headers.get("origin"))


@router.get(
    "/v1/experiments/{key}/assignment",
    summary="The arm of a unit (write key); the exposure is recorded as an event",
)
async def assignment(
    request: Request,
    state: State,
    key: str,
    unit: Annotated[str, Query(description="the user, browser or device id")],
    write_key: Annotated[str | None, Query(alias="writeKey")] = None,
) -> Response:
    received_at = utcnow()

    def work() -> Assignment:
        source = _source(state, request, None, write_key)
        experiment = _experiment(state, source.business_id, key)
        result = service.assign(experiment, unit=unit)
        if result.in_experiment:
            events = collect.normalise_request(
                service.assignment_event(experiment, result),
                kind="track",
                received_at=received_at,
                limits=state.limits,
                max_batch_events=state.settings.max_batch_events,
            )
            collect.append(
                state.inbox_writer,
                source=source,
                events=events,
                gate=state.gate,
                received_at=received_at,
            )
        return result

    result = await store_work.run(work)
    # Assignment is per unit: shared caches must not hand one unit's arm to another.
    return json_response(result.model_dump(), headers={"Cache-Control": "private, no-store"})


@router.post(
    "/v1/experiments/{key}/ad-logs",
    summary="Collect ad-log records (write key); valid ones are stored, others reported",
)
async def collect_ad_logs(request: Request, state: State, key: str) -> AdLogsOut:
    settings = state.settings
    body = await read_limited(request, limit=settings.max_ad_log_bytes)

    def work() -> AdLogsOut:
        payload = collect.decode_body(
            body,
            content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"),
            max_bytes=settings.max_ad_log_bytes,
        )
        source = _source(state, request, payload, None)
        records = payload.get("records") if isinstance(payload, dict) else None
        if not isinstance(records, list) or not records:
            raise InvalidInput([FieldProblem("records", "must be a non-empty list of records")])
        if len(records) > settings.max_ad_log_records:
            raise PayloadTooLarge(
                "records", f"holds {len(records)}; the limit is {settings.max_ad_log_records}"
            )
        experiment = _experiment(state, source.business_id, key)
        result = service.load_ad_logs(
            settings.resolved_lake_url(),
            business_id=source.business_id,
            experiment=experiment,
            records=(RawRecord(i, r) for i, r in enumerate(records)),
        )
        rejected = [
            {"field": f"records[{r['line']}].{r['field']}", "reason": r["reason"]}
            for r in result.rejected
        ]
        if rejected and not result.stored:
            raise InvalidInput([FieldProblem(r["field"], r["reason"]) for r in rejected])
        return AdLogsOut(read=result.read, stored=result.stored, rejected=rejected)

    return await store_work.run(work)
