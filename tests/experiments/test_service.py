"""Designs in the state store (SQLite and PostgreSQL): drafts, frozen plans, namespaces."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from accord.accounts.models import Bootstrap
from accord.core.errors import ExperimentState, InvalidInput, NotFound
from accord.experiments import service
from accord.experiments.models import (
    AnalysisPlan,
    Arm,
    Attribution,
    DesignIn,
    MetricDefinition,
    cma_three_arm,
)
from accord.store.db import Store

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _ab(key: str = "ab", **changes: object) -> DesignIn:
    design = DesignIn(
        key=key,
        name="A/B",
        arms=[
            Arm(key="control", name="Control", role="control", weight=1),
            Arm(key="variant", name="Variant", role="variant", weight=1),
        ],
        plan=AnalysisPlan(
            control_arm="control", primary_metrics=["ctr"], minimum_detectable_effect=0.05
        ),
    )
    return design.model_copy(update=changes)


def test_design_lifecycle(store: Store, keys: Bootstrap) -> None:
    business = keys.business_id
    design = cma_three_arm(key="cma", name="CMA", primary_metrics=["ctr", "conversions_per_euro"])
    assert [a.weight for a in design.arms] == [3, 1, 3]
    with store.write() as conn:
        created = service.create_experiment(conn, business_id=business, design=design, now=NOW)
    assert created.status == "draft" and created.plan_hash is None
    edited = design.model_copy(update={"name": "CMA relevance test"})
    with store.write() as conn:
        assert (
            service.update_design(
                conn, business_id=business, key="cma", design=edited, now=NOW
            ).name
            == "CMA relevance test"
        )
        started = service.start_experiment(conn, business_id=business, key="cma", now=NOW)
    assert started.status == "running" and len(started.plan_hash or "") == 64
    with store.write() as conn, pytest.raises(ExperimentState) as frozen:
        service.update_design(conn, business_id=business, key="cma", design=design, now=NOW)
    assert frozen.value.field == "plan" and "frozen" in frozen.value.reason
    with store.read() as conn:
        assert [e.key for e in service.list_experiments(conn, business_id=business)] == ["cma"]
        assert service.get_experiment(conn, business_id=business, key="cma").design == edited
        with pytest.raises(NotFound):
            service.get_experiment(conn, business_id="someone-else", key="cma")
    with store.write() as conn:
        assert service.stop_experiment(conn, business_id=business, key="cma", now=NOW).stopped_at


def test_invalid_designs_name_the_field(store: Store, keys: Bootstrap) -> None:
    business = keys.business_id
    bad_metric = _ab(
        plan=AnalysisPlan(
            control_arm="control",
            primary_metrics=["ctr", "reach_of_dreams"],
            minimum_detectable_effect=0.1,
        )
    )
    with store.write() as conn, pytest.raises(InvalidInput) as unknown:
        service.create_experiment(conn, business_id=business, design=bad_metric, now=NOW)
    assert unknown.value.problems[0].field == "plan.primary_metrics[1]"
    with store.write() as conn:
        service.create_experiment(conn, business_id=business, design=_ab(), now=NOW)
    with store.write() as conn, pytest.raises(InvalidInput) as duplicate:
        service.create_experiment(conn, business_id=business, design=_ab(), now=NOW)
    assert duplicate.value.problems[0].field == "key"
    bad_column = _ab(
        "custom",
        metrics=[
            MetricDefinition(
                key="m", name="M", aggregation="mean", event_type="click", value="colour"
            )
        ],
    )
    with store.write() as conn, pytest.raises(InvalidInput) as column:
        service.create_experiment(conn, business_id=business, design=bad_column, now=NOW)
    assert column.value.problems[0].field == "metrics[0].value"


def test_model_rules() -> None:
    with pytest.raises(ValidationError, match="attribution_differs_because"):
        _ab().model_validate(
            {
                **_ab().model_dump(),
                "arms": [
                    {"key": "control", "name": "C", "role": "control", "weight": 1},
                    {
                        "key": "variant",
                        "name": "V",
                        "role": "variant",
                        "weight": 1,
                        "attribution": Attribution(window_days=7).model_dump(),
                    },
                ],
            }
        )
    with pytest.raises(ValidationError, match="control_arm"):
        DesignIn.model_validate(
            {**_ab().model_dump(), "plan": {**_ab().plan.model_dump(), "control_arm": "x"}}
        )
    with pytest.raises(ValidationError, match="unique"):
        DesignIn.model_validate({**_ab().model_dump(), "arms": [_ab().arms[0].model_dump()] * 2})


def test_namespaces_refuse_overlapping_ranges(store: Store, keys: Bootstrap) -> None:
    business = keys.business_id
    with store.write() as conn:
        service.create_experiment(
            conn,
            business_id=business,
            design=_ab("first", namespace="homepage", namespace_range=(0, 5000)),
            now=NOW,
        )
        service.create_experiment(
            conn,
            business_id=business,
            design=_ab("second", namespace="homepage", namespace_range=(5000, 10_000)),
            now=NOW,
        )
    with store.write() as conn, pytest.raises(InvalidInput) as overlap:
        service.create_experiment(
            conn,
            business_id=business,
            design=_ab("third", namespace="homepage", namespace_range=(4000, 6000)),
            now=NOW,
        )
    assert overlap.value.problems[0].field == "namespace_range"


def test_assignment_needs_a_running_experiment(store: Store, keys: Bootstrap) -> None:
    business = keys.business_id
    with store.write() as conn:
        draft = service.create_experiment(conn, business_id=business, design=_ab(), now=NOW)
    with pytest.raises(ExperimentState):
        service.assign(draft, unit="u-1")
    with store.write() as conn:
        running = service.start_experiment(conn, business_id=business, key="ab", now=NOW)
    result = service.assign(running, unit="u-1")
    assert result.in_experiment and result.arm in ("control", "variant")
    assert service.assign(running, unit="u-1") == result
    event = service.assignment_event(running, result)
    assert event["userId"] == "u-1" and event["properties"]["variation_id"] == result.arm
    assert event["messageId"] == service.assignment_event(running, result)["messageId"]
    with pytest.raises(InvalidInput):
        service.assign(running, unit="")
