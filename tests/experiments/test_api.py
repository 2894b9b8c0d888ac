"""The experiments API: admin routes, assignment and ad-log collection with a write key."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap
from accord.collect.models import inbox
from accord.core.settings import Settings
from accord.experiments import adlogs
from accord.experiments.models import cma_three_arm
from accord.experiments.simulate import Scenario, simulate
from accord.store.db import Store

# Events here carry no consent and no location; this business keeps them, as its
# rule for unknown locations ("XX") says (the default is the strictest regime).
pytestmark = pytest.mark.keeps_unknown_location


def _admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def _basic(keys: Bootstrap) -> dict[str, str]:
    token = base64.b64encode(f"{keys.write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _design() -> dict[str, Any]:
    design = cma_three_arm(key="cma", name="CMA", primary_metrics=["ctr"])
    design.start_day = "2026-10-01"
    return design.model_dump(mode="json")


def test_design_routes(client: TestClient, keys: Bootstrap) -> None:
    admin = _admin(keys)
    assert client.post("/api/experiments", json=_design()).status_code == 401
    created = client.post("/api/experiments", json=_design(), headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "draft"
    bad = client.post(
        "/api/experiments",
        json={**_design(), "key": "other", "plan": {**_design()["plan"], "primary_metrics": ["x"]}},
        headers=admin,
    )
    assert bad.status_code == 400
    assert bad.json()["problems"] == [
        {"field": "plan.primary_metrics[0]", "reason": "unknown metric 'x'"}
    ]
    assert client.put("/api/experiments/cma", json=_design(), headers=admin).status_code == 200
    started = client.post("/api/experiments/cma/start", headers=admin)
    assert started.json()["status"] == "running" and started.json()["plan_hash"]
    frozen = client.put("/api/experiments/cma", json=_design(), headers=admin)
    assert frozen.status_code == 409
    assert frozen.json()["error"] == "experiment_state"
    assert frozen.json()["problems"][0]["field"] == "plan"
    listed = client.get("/api/experiments", headers=admin).json()
    assert [e["key"] for e in listed] == ["cma"]
    assert client.get("/api/experiments/nope", headers=admin).status_code == 404
    template = client.post(
        "/api/experiments/templates/cma",
        json={"key": "t", "name": "T", "primary_metrics": ["ctr"]},
        headers=admin,
    ).json()
    assert [a["weight"] for a in template["arms"]] == [3, 1, 3]
    power = client.post(
        "/api/experiments/power",
        json={
            "baseline_mean": 0.02,
            "baseline_variance": 0.0196,
            "total_units": 70_000,
            "treatment_weight": 3 / 7,
            "control_weight": 1 / 7,
        },
        headers=admin,
    ).json()
    assert 0 < power["relative_mde"] < 1 and power["units_per_arm"] == [30000, 10000]


def test_assignment_is_sticky_and_recorded_once(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = _admin(keys)
    client.post("/api/experiments", json=_design(), headers=admin)
    draft = client.get("/v1/experiments/cma/assignment?unit=u-1", headers=_basic(keys))
    assert draft.status_code == 409
    client.post("/api/experiments/cma/start", headers=admin)
    assert client.get("/v1/experiments/cma/assignment?unit=u-1").status_code == 401
    first = client.get("/v1/experiments/cma/assignment?unit=u-1", headers=_basic(keys)).json()
    again = client.get(f"/v1/experiments/cma/assignment?unit=u-1&writeKey={keys.write_key}").json()
    assert (
        first == again
        and first["in_experiment"]
        and first["arm"]
        in (
            "treatment",
            "control_1",
            "control_2",
        )
    )
    with store.read() as conn:
        payloads = conn.execute(select(inbox.c.payload)).scalars().all()
    assert len(payloads) == 1
    event = orjson.loads(payloads[0])
    assert event["event"] == "Experiment Viewed" and event["userId"] == "u-1"
    assert event["properties"]["variation_id"] == first["arm"]


def test_ad_log_collection_keeps_valid_rows(
    client: TestClient, keys: Bootstrap, settings: Settings
) -> None:
    admin = _admin(keys)
    client.post("/api/experiments", json=_design(), headers=admin)
    client.post("/api/experiments/cma/start", headers=admin)
    record = {
        "type": "impression",
        "id": "imp-1",
        "timestamp": "2026-10-02T10:00:00Z",
        "arm": "treatment",
        "user": {"id": "u-1"},
        "cost": 0.01,
    }
    response = client.post(
        "/v1/experiments/cma/ad-logs",
        json={"records": [record, {**record, "id": "imp-2", "arm": None, "cost": -1}]},
        headers=_basic(keys),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] == 1
    assert body["rejected"] == [
        {"field": "records[1].arm", "reason": "is required"},
        {"field": "records[1].cost", "reason": "must be a finite number ≥ 0, got -1"},
    ]
    all_bad = client.post(
        "/v1/experiments/cma/ad-logs",
        json={"records": [{**record, "type": "swipe"}]},
        headers=_basic(keys),
    )
    assert all_bad.status_code == 400
    assert all_bad.json()["problems"][0]["field"] == "records[0].type"
    assert (
        client.post(
            "/v1/experiments/cma/ad-logs", json={"records": []}, headers=_basic(keys)
        ).status_code
        == 400
    )


def test_analysis_and_reports(client: TestClient, keys: Bootstrap, settings: Settings) -> None:
    admin = _admin(keys)
    client.post("/api/experiments", json=_design(), headers=admin)
    started = client.post("/api/experiments/cma/start", headers=admin).json()
    table = simulate(
        Scenario(
            arms=["treatment", "control_1", "control_2"],
            weights=[3, 1, 3],
            users=3000,
            effects={"control_2": 0.8},
            seed=2,
        )
    )
    adlogs.write_table(
        settings.resolved_lake_url(),
        business_id=keys.business_id,
        experiment_key="cma",
        table=table,
    )
    analysis = client.get("/api/experiments/cma/analysis", headers=admin)
    assert analysis.status_code == 200, analysis.text
    body = analysis.json()
    assert body["plan_hash"] == started["plan_hash"]
    assert not body["blocked"], body["blocked_reasons"]
    assert {(r["treatment"], r["control"]) for r in body["results"]} == {
        ("treatment", "control_1"),
        ("treatment", "control_2"),
        ("control_2", "control_1"),
    }
    html = client.get("/api/experiments/cma/report.html", headers=admin)
    assert html.status_code == 200 and "% change [95 % interval]" in html.text
    csv = client.get("/api/experiments/cma/report.csv", headers=admin)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.startswith("section,name,passed")
    assert client.get("/api/experiments/cma/analysis").status_code == 401


def test_a_started_experiment_without_ad_logs_says_so(client: TestClient, keys: Bootstrap) -> None:
    admin = _admin(keys)
    assert client.post("/api/experiments", json=_design(), headers=admin).status_code == 201
    client.post("/api/experiments/cma/start", headers=admin)
    analysis = client.get("/api/experiments/cma/analysis", headers=admin)
    assert analysis.status_code in (200, 409), analysis.text
