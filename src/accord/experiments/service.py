"""Experiments: save designs, freeze their plan at start, assign units, analyse, report."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from ibis.backends import BaseBackend
from sqlalchemy import Connection, RowMapping, insert, select, update

from accord.core.errors import ExperimentState, FieldProblem, InvalidInput, NotFound
from accord.core.ids import new_id
from accord.experiments import adlogs
from accord.experiments.adlogs import AdLogReport, RawRecord
from accord.experiments.analysis import Analysis, analyse
from accord.experiments.assignment import arm_for, in_namespace_range
from accord.experiments.metrics import metric_catalogue
from accord.experiments.models import Assignment, DesignIn, ExperimentView, experiments

ASSIGNMENT_EVENT = "Experiment Viewed"  # the Segment spec's name for an exposure


def _design_json(design: DesignIn) -> str:
    return orjson.dumps(design.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def _view(row: RowMapping) -> ExperimentView:
    return ExperimentView(
        id=row["id"],
        key=row["key"],
        name=row["name"],
        status=row["status"],
        seed=row["seed"],
        plan_hash=row["plan_hash"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
        design=DesignIn.model_validate_json(row["design"]),
    )


def _check_metrics(design: DesignIn) -> None:
    known = metric_catalogue(design.metrics)
    plan = design.plan
    problems = [
        FieldProblem(f"plan.{group}[{i}]", f"unknown metric {key!r}")
        for group, keys in (
            ("primary_metrics", plan.primary_metrics),
            ("guardrail_metrics", plan.guardrail_metrics),
            ("secondary_metrics", plan.secondary_metrics),
        )
        for i, key in enumerate(keys)
        if key not in known
    ]
    if problems:
        raise InvalidInput(problems)


def _check_namespace(
    conn: Connection, *, business_id: str, design: DesignIn, exclude_key: str | None
) -> None:
    if design.namespace is None:
        return
    start, end = design.namespace_range
    rows = conn.execute(
        select(experiments.c.key, experiments.c.namespace_start, experiments.c.namespace_end).where(
            experiments.c.business_id == business_id,
            experiments.c.namespace == design.namespace,
            experiments.c.status != "stopped",
        )
    ).all()
    for key, other_start, other_end in rows:
        if key != exclude_key and start < other_end and other_start < end:
            raise InvalidInput(
                [
                    FieldProblem(
                        "namespace_range",
                        f"overlaps buckets [{other_start}, {other_end}) of experiment {key!r} "
                        f"in namespace {design.namespace!r}",
                    )
                ]
            )


def create_experiment(
    conn: Connection, *, business_id: str, design: DesignIn, now: datetime
) -> ExperimentView:
    _check_metrics(design)
    exists = conn.execute(
        select(experiments.c.id).where(
            experiments.c.business_id == business_id, experiments.c.key == design.key
        )
    ).first()
    if exists:
        raise InvalidInput([FieldProblem("key", f"an experiment {design.key!r} already exists")])
    _check_namespace(conn, business_id=business_id, design=design, exclude_key=None)
    conn.execute(
        insert(experiments).values(
            id=new_id("exp"),
            business_id=business_id,
            key=design.key,
            name=design.name,
            status="draft",
            namespace=design.namespace,
            namespace_start=design.namespace_range[0],
            namespace_end=design.namespace_range[1],
            seed=secrets.token_hex(16),
            design=_design_json(design),
            created_at=now,
            updated_at=now,
        )
    )
    return get_experiment(conn, business_id=business_id, key=design.key)


def _row(conn: Connection, *, business_id: str, key: str) -> RowMapping:
    row = (
        conn.execute(
            select(experiments).where(
                experiments.c.business_id == business_id, experiments.c.key == key
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"experiment {key!r}")
    return row


def get_experiment(conn: Connection, *, business_id: str, key: str) -> ExperimentView:
    return _view(_row(conn, business_id=business_id, key=key))


def list_experiments(conn: Connection, *, business_id: str) -> list[ExperimentView]:
    rows = conn.execute(
        select(experiments)
        .where(experiments.c.business_id == business_id)
        .order_by(experiments.c.created_at, experiments.c.key)
    ).mappings()
    return [_view(row) for row in rows]


def update_design(
    conn: Connection, *, business_id: str, key: str, design: DesignIn, now: datetime
) -> ExperimentView:
    """Replace a draft's design; once started, the plan is frozen and edits are refused."""
    row = _row(conn, business_id=business_id, key=key)
    if row["status"] != "draft":
        raise ExperimentState(
            "plan",
            f"experiment {key!r} started at {row['started_at'].isoformat()}: its design and "
            "pre-registered analysis plan are frozen; create a new experiment to change them",
        )
    if design.key != key:
        raise InvalidInput([FieldProblem("key", "the key of an experiment cannot change")])
    _check_metrics(design)
    _check_namespace(conn, business_id=business_id, design=design, exclude_key=key)
    conn.execute(
        update(experiments)
        .where(experiments.c.id == row["id"])
        .values(
            name=design.name,
            namespace=design.namespace,
            namespace_start=design.namespace_range[0],
            namespace_end=design.namespace_range[1],
            design=_design_json(design),
            updated_at=now,
        )
    )
    return get_experiment(conn, business_id=business_id, key=key)


def start_experiment(
    conn: Connection, *, business_id: str, key: str, now: datetime
) -> ExperimentView:
    """Freeze the design and plan (their hash goes in every report) and open assignment."""
    row = _row(conn, business_id=business_id, key=key)
    if row["status"] != "draft":
        raise ExperimentState("status", f"experiment {key!r} is already {row['status']}")
    plan_hash = hashlib.sha256(row["design"].encode()).hexdigest()
    conn.execute(
        update(experiments)
        .where(experiments.c.id == row["id"])
        .values(status="running", plan_hash=plan_hash, started_at=now, updated_at=now)
    )
    return get_experiment(conn, business_id=business_id, key=key)


def stop_experiment(
    conn: Connection, *, business_id: str, key: str, now: datetime
) -> ExperimentView:
    row = _row(conn, business_id=business_id, key=key)
    if row["status"] != "running":
        raise ExperimentState("status", f"experiment {key!r} is {row['status']}, not running")
    conn.execute(
        update(experiments)
        .where(experiments.c.id == row["id"])
        .values(status="stopped", stopped_at=now, updated_at=now)
    )
    return get_experiment(conn, business_id=business_id, key=key)


def assign(experiment: ExperimentView, *, unit: str) -> Assignment:
    """The unit's arm: a pure function of (seed, unit), the same on every call."""
    if not unit or len(unit) > 255:
        raise InvalidInput([FieldProblem("unit", "must be 1 to 255 characters")])
    if experiment.status != "running":
        raise ExperimentState(
            "status",
            f"experiment {experiment.key!r} is {experiment.status}; assignment is open "
            "only while it runs",
        )
    design = experiment.design
    start, end = design.namespace_range
    index, position = arm_for(experiment.seed, unit, [a.weight for a in design.arms])
    if not in_namespace_range(design.namespace, unit, start, end):
        return Assignment(
            experiment=experiment.key, unit=unit, in_experiment=False, arm=None, bucket=position
        )
    return Assignment(
        experiment=experiment.key,
        unit=unit,
        in_experiment=True,
        arm=design.arms[index].key,
        bucket=position,
    )


def assignment_event(experiment: ExperimentView, assignment: Assignment) -> dict[str, Any]:
    """The exposure as a Segment track call; one messageId per unit, so it is stored once."""
    assert assignment.arm is not None
    arm = experiment.design.arm(assignment.arm)
    identity = "userId" if experiment.design.unit == "user" else "anonymousId"
    digest = hashlib.sha256(f"{experiment.id}\x00{assignment.unit}".encode()).hexdigest()[:32]
    return {
        "type": "track",
        "event": ASSIGNMENT_EVENT,
        identity: assignment.unit,
        "messageId": f"assign-{digest}",
        "properties": {
            "experiment_id": experiment.key,
            "experiment_name": experiment.name,
            "variation_id": arm.key,
            "variation_name": arm.name,
            "unit_type": experiment.design.unit,
        },
    }


def load_ad_logs(
    lake_url: str, *, business_id: str, experiment: ExperimentView, records: Iterable[RawRecord]
) -> AdLogReport:
    """Check every record, store the valid ones, report the others by line and field.

    Data are accepted only once the experiment has started, i.e. once its plan is frozen.
    """
    if experiment.status == "draft":
        raise ExperimentState(
            "status",
            f"experiment {experiment.key!r} is a draft: start it (which freezes its analysis "
            "plan) before loading its ad logs",
        )
    rows, report = adlogs.validate(records, arms=[a.key for a in experiment.design.arms])
    report.files = adlogs.write_rows(
        lake_url, business_id=business_id, experiment_key=experiment.key, rows=rows
    )
    report.stored = len(rows)
    return report


def analyse_experiment(
    backend: BaseBackend,
    lake_url: str,
    *,
    business_id: str,
    experiment: ExperimentView,
    now: datetime,
) -> Analysis:
    """Gates and results of the experiment from its ad logs in the lake."""
    logs = adlogs.ad_logs(backend, lake_url, business_id=business_id, experiment_key=experiment.key)
    return analyse(backend, logs, experiment, now=now)
