"""The lead scoring page: rules, decay and thresholds shown and saved through a form, leads
per score band, refusals next to the field, and nothing for an employee without the task."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import update

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.leads import service
from accord.leads.models import leads
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.charts import chart
from tests.profiles.test_pages import employee_session
from tests.web.sessions import admin_session

RULES = [
    {"kind": "fit", "points": 5, "condition": {"kind": "trait", "trait": "phone", "op": "exists"}},
    {"kind": "email", "points": 10, "condition": {"kind": "event", "event": "click"}},
]


def _form(**changes: str) -> dict[str, str]:
    form = {
        "rules": json.dumps(RULES),
        "half_life_days": "14",
        "consideration_at": "10",
        "prospect_at": "40",
    }
    return {**form, **changes}


def _config(store: Store, business_id: str) -> str:
    with store.read() as conn:
        return service.scoring_config(conn, business_id=business_id).model_dump_json()


def _import(client: TestClient, keys: Bootstrap) -> None:
    csv = b"E-mail,Full name\nada@people.example,Ada\ncy@people.example,Cy\n"
    response = client.post(
        "/leads/import",
        data={"kind": "csv", "name": "fair", "map_email": "E-mail", "map_name": "Full name"},
        files={"file": ("fair.csv", csv, "text/csv")},
        headers={"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"},
    )
    assert response.status_code == 200, response.text


def test_the_scoring_is_shown_and_saved_through_the_form(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    _import(client, keys)
    with store.write() as conn:
        conn.execute(
            update(leads)
            .where(leads.c.email == "ada@people.example")
            .values(score=45.0, scored_at=utcnow())
        )
    admin = admin_session(client, store, keys.business_id)
    page = admin.get("/leads/scoring")
    assert page.status_code == 200, page.text
    bands = chart(page.text, "Leads per score band now")
    # Ada's 45 points: consideration under the default thresholds (decision from 50).
    assert bands.trace("Leads")["x"] == ["awareness", "consideration", "decision"]
    assert bands.trace("Leads")["y"] == [1, 1, 0]

    saved = admin.post("/leads/scoring", _form())
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/leads/scoring?notice=")
    with store.read() as conn:
        config = service.scoring_config(conn, business_id=keys.business_id)
    assert config.half_life_days == 14 and config.prospect_at == 40
    assert [r.points for r in config.rules] == [5, 10]
    shown = admin.get("/leads/scoring").text
    assert '<span class="value" id="kpi-rules">2</span>' in shown
    # From 40 points on, Ada is in the decision band.
    assert chart(shown, "Leads per score band now").trace("Leads")["y"] == [1, 0, 1]


def test_bad_scoring_is_refused_next_to_its_field_and_nothing_changes(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = admin_session(client, store, keys.business_id)
    before = _config(store, keys.business_id)
    cases = [
        ({"rules": "[{oops"}, "rules", "is not JSON"),
        ({"rules": '[{"kind": "fit", "points": 5000, "condition": {}}]'}, "rules", ""),
        ({"half_life_days": "soon"}, "half_life_days", "must be a number"),
        ({"half_life_days": "0"}, "half_life_days", "greater than 0"),
        ({"consideration_at": "60"}, "consideration_at", "must not be above prospect_at"),
    ]
    for changes, field, reason in cases:
        refused = admin.post("/leads/scoring", _form(**changes))
        assert refused.status_code == 400, (changes, refused.text)
        assert f'id="e-{field}"' in refused.text, (changes, refused.text)
        assert reason in refused.text
        typed = next(iter(changes.values()))
        assert typed.replace('"', "&#34;") in refused.text or typed in refused.text
    assert _config(store, keys.business_id) == before


def test_without_the_permission_nothing_is_shown_or_changed(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    before = _config(store, keys.business_id)
    session, csrf = employee_session(store, keys.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    headers = {"Accept": "text/html"}
    assert client.get("/leads/scoring", headers=headers).status_code == 403
    posted = client.post("/leads/scoring", data={**_form(), "csrf_token": csrf}, headers=headers)
    assert posted.status_code == 403
    assert _config(store, keys.business_id) == before
