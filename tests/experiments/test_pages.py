"""The experiment pages: list, design with the power calculator, detail with the frozen
plan, gates and results, the report with Accord's own plotly.js, and tenant isolation."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.experiments import adlogs
from accord.experiments.models import cma_three_arm
from accord.experiments.simulate import Scenario, simulate
from accord.store.db import Store
from tests.accounts.ui import create_business, sign_up
from tests.charts import chart


def _html(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "text/html"}


def _api(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def _design(**changes: Any) -> str:
    design = cma_three_arm(key="cma", name="Cookieless relevance", primary_metrics=["ctr"])
    design.start_day = "2026-10-01"
    data = design.model_dump(mode="json")
    data.update(changes)
    return json.dumps(data)


def _create_and_start(client: TestClient, keys: Bootstrap) -> None:
    saved = client.post(
        "/experiments/new",
        data={"design": [_design()]},
        headers=_html(keys.admin_token),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/experiments/cma?notice=")
    started = client.post(
        "/experiments/cma/start", headers=_html(keys.admin_token), follow_redirects=False
    )
    assert started.status_code == 303 and "notice=" in started.headers["location"]


def _logs(settings: Settings, keys: Bootstrap, **changes: Any) -> None:
    scenario = Scenario(
        arms=["treatment", "control_1", "control_2"], weights=[3, 1, 3], users=3000, seed=2
    )
    for name, value in changes.items():
        setattr(scenario, name, value)
    adlogs.write_table(
        settings.resolved_lake_url(),
        business_id=keys.business_id,
        experiment_key="cma",
        table=simulate(scenario),
    )


def test_design_page_offers_templates_and_the_power_calculator(
    client: TestClient, keys: Bootstrap
) -> None:
    page = client.get("/experiments/new", headers=_html(keys.admin_token))
    assert page.status_code == 200
    assert "&#34;key&#34;: &#34;relevance-test&#34;" in page.text
    assert "<td>42.9 %</td>" in page.text and "<td>14.3 %</td>" in page.text  # 3:1:3
    assert "<code>clicks_per_euro</code>" in page.text  # the metric catalogue
    ab = client.get("/experiments/new?template=ab", headers=_html(keys.admin_token))
    assert "&#34;key&#34;: &#34;variant&#34;" in ab.text and "<td>50.0 %</td>" in ab.text
    calculated = client.get(
        "/experiments/new?baseline_mean=0.02&baseline_variance=0.0196&total_units=70000"
        "&treatment_weight=0.428571&control_weight=0.142857&alpha=0.05&power=0.8&comparisons=1",
        headers=_html(keys.admin_token),
    )
    assert calculated.status_code == 200
    assert "with 29999 units in the treatment arm and 9999 in the control arm" in calculated.text
    # (1.95996 + 0.84162) * sqrt(0.0196 * (1/30000 + 1/10000)) = 0.004529 = 22.64 % of 0.02
    assert "<strong>0.004529</strong>" in calculated.text
    assert "<strong>22.64 %</strong>" in calculated.text
    bad = client.get(
        "/experiments/new?baseline_mean=0.02&baseline_variance=-1&total_units=x",
        headers=_html(keys.admin_token),
    )
    assert bad.status_code == 200 and 'id="power-result"' not in bad.text
    assert "<code>baseline_variance</code>" in bad.text and "<code>total_units</code>" in bad.text


def test_check_and_save_a_design(client: TestClient, keys: Bootstrap) -> None:
    checked = client.post(
        "/experiments/new/check", data={"design": [_design()]}, headers=_html(keys.admin_token)
    )
    assert checked.status_code == 200
    assert "The design is valid" in checked.text and 'id="design-summary"' in checked.text
    assert client.get("/api/experiments", headers=_api(keys)).json() == []
    _create_and_start(client, keys)
    listing = client.get("/experiments", headers=_html(keys.admin_token))
    assert listing.status_code == 200
    assert 'href="/experiments/cma"' in listing.text
    assert '<span class="badge ok">running</span>' in listing.text
    assert "treatment (3.0), control_1 (1.0), control_2 (3.0)" in listing.text


def test_an_invalid_design_shows_the_error_and_saves_nothing(
    client: TestClient, keys: Bootstrap
) -> None:
    plan = json.loads(_design())["plan"]
    cases = [
        (
            _design(plan={**plan, "primary_metrics": ["shoe_size"]}),
            "plan.primary_metrics[0]",
            "unknown metric &#39;shoe_size&#39;",
        ),
        (_design(key="Not A Key"), "key", "pattern"),
        (_design(arms=[]), "arms", "at least 2"),
        ("{oops", "design", "not valid JSON"),
    ]
    for design, field, reason in cases:
        for action in ("/experiments/new/check", "/experiments/new"):
            response = client.post(
                action,
                data={"design": [design]},
                headers=_html(keys.admin_token),
                follow_redirects=False,
            )
            assert response.status_code == 400, (action, field, response.text)
            assert "nothing was saved" in response.text
            assert f"<li><code>{field}</code>" in response.text
            assert reason in response.text
    assert client.get("/api/experiments", headers=_api(keys)).json() == []


def test_detail_shows_the_frozen_plan_gates_and_results(
    client: TestClient, keys: Bootstrap, settings: Settings
) -> None:
    client.post("/experiments/new", data={"design": [_design()]}, headers=_html(keys.admin_token))
    draft = client.get("/experiments/cma", headers=_html(keys.admin_token))
    assert draft.status_code == 200
    assert "the plan is frozen when the experiment starts" in draft.text
    assert "Ad logs are accepted once the experiment has started" in draft.text
    started = client.post("/experiments/cma/start", headers=_html(keys.admin_token))
    assert started.status_code == 200 and 'id="no-logs"' in started.text
    plan_hash = client.get("/api/experiments/cma", headers=_api(keys)).json()["plan_hash"]
    _logs(settings, keys)
    detail = client.get("/experiments/cma", headers=_html(keys.admin_token))
    assert detail.status_code == 200, detail.text
    assert f'<code id="plan-hash">{plan_hash}</code>' in detail.text
    assert "<dt>Primary metrics</dt><dd>ctr</dd>" in detail.text
    assert '<span class="badge warn">failed</span>' not in detail.text
    assert detail.text.count('<span class="badge ok">passed</span>') >= 3
    assert "<td>treatment vs control_1</td>" in detail.text
    assert "<td>control_2 vs control_1</td>" in detail.text
    units = chart(detail.text, "Units per arm")
    assert [t["name"] for t in units.traces] == ["Units", "Expected from the weights"]
    assert sum(int(v[0].replace(",", "")) for v in units.rows.values()) > 0
    lifts = chart(detail.text, "% change against the control, with 95 % intervals")
    assert lifts.traces[0]["orientation"] == "h" and "error_x" in lifts.traces[0]
    assert len(lifts.rows) == 3  # the three CMA contrasts of the one primary metric
    lift = lifts.rows["Click-through rate: treatment vs control_1"][0]
    assert re.fullmatch(r"-?[\d.]+ % \[-?[\d.]+ % – -?[\d.]+ %\]", lift)
    assert f"{lift.split(' [')[0]} [" in detail.text  # as the results table reads it
    assert 'href="/experiments/cma/report"' in detail.text
    report = client.get("/experiments/cma/report", headers=_html(keys.admin_token))
    assert report.status_code == 200
    assert '<script src="/ui/plotly.js"></script>' in report.text
    assert "cdn" not in report.text.lower()
    script = client.get("/ui/plotly.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "plotly" in script.text[:2000].lower() and len(script.content) > 1_000_000
    stopped = client.post(
        "/experiments/cma/stop", headers=_html(keys.admin_token), follow_redirects=False
    )
    assert "notice=" in stopped.headers["location"]
    again = client.post(
        "/experiments/cma/stop", headers=_html(keys.admin_token), follow_redirects=False
    )
    assert "error=" in again.headers["location"]


def test_a_broken_split_is_blocked_with_its_reason(
    client: TestClient, keys: Bootstrap, settings: Settings
) -> None:
    _create_and_start(client, keys)
    _logs(settings, keys, split_bias={"control_1": 0.8})
    detail = client.get("/experiments/cma", headers=_html(keys.admin_token))
    assert detail.status_code == 200
    assert 'id="blocked"' in detail.text and "No verdict: the gates failed" in detail.text
    assert "Sample ratio: units per arm" in detail.text
    assert '<span class="badge warn">failed</span>' in detail.text
    assert 'id="results"' not in detail.text


def test_another_business_sees_none_of_the_pages_data(
    client: TestClient, keys: Bootstrap, settings: Settings, store: Store
) -> None:
    _create_and_start(client, keys)
    _logs(settings, keys)
    other = _html(bootstrap(store, name="Other Business").admin_token)
    listing = client.get("/experiments", headers=other)
    assert listing.status_code == 200 and "/experiments/cma" not in listing.text
    for path in ("/experiments/cma", "/experiments/cma/report"):
        assert client.get(path, headers=other).status_code == 404, path
    for path in ("/experiments/cma/start", "/experiments/cma/stop"):
        assert client.post(path, headers=other).status_code == 404, path
    # The same key is free in the other business: designs are per business.
    created = client.post(
        "/experiments/new", data={"design": [_design()]}, headers=other, follow_redirects=False
    )
    assert created.status_code == 303
    mine = client.get("/experiments/cma", headers=_html(keys.admin_token))
    assert '<span class="badge ok">running</span>' in mine.text


def test_a_signed_in_person_uses_the_forms_with_their_csrf_token(client: TestClient) -> None:
    browser = sign_up(client, "ann@acme.test")
    create_business(browser)
    forged = client.post(
        "/experiments/new", data={"design": [_design()]}, headers={"accept": "text/html"}
    )
    assert forged.status_code == 403
    saved = browser.submit("/experiments/new", "/experiments/new", {"design": _design()})
    assert saved.status_code == 200 and "Experiment saved as a draft" in saved.text
    started = browser.submit("/experiments/cma", "/experiments/cma/start", {})
    assert started.status_code == 200 and "Experiment is now running" in started.text
