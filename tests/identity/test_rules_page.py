"""The identity rules page: the rules shown and edited through a form, probabilistic
matching's dry run and undo, and nothing for an employee without the profile tasks."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.settings import Settings
from accord.identity import service
from accord.identity.matching import run_match
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from tests.identity.helpers import groups, process
from tests.identity.matching_data import MATCHING, base
from tests.profiles.test_pages import employee_session, html, reader_token
from tests.web.sessions import admin_session


def _rules(store: Store, business_id: str) -> str:
    with store.read() as conn:
        return service.get_rules(conn, business_id=business_id).model_dump_json()


def _form(**changes: str) -> dict[str, str]:
    form = {
        "custom_kinds": "",
        "priority": "",
        "hard_kinds": "user_id",
        "blocked_values": "null\nundefined",
        "blocked_patterns": "^[0-]*$",
        "limits": json.dumps({"email": {"max": 5}}),
        "trait_policies": "",
        "matching": "",
        "max_component_identifiers": "100",
        "default_phone_region": "",
    }
    return {**form, **changes}


def test_the_rules_are_shown_and_saved_through_the_form(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = admin_session(client, store, keys.business_id)
    page = admin.get("/identity/rules")
    assert page.status_code == 200, page.text
    assert '<span class="value" id="kpi-matching">off</span>' in page.text
    assert 'id="chart-limits"' in page.text and 'name="priority"' in page.text
    saved = admin.post(
        "/identity/rules",
        _form(
            custom_kinds="crm_id",
            trait_policies='{"plan": "max"}',
            default_phone_region="fr",
            max_component_identifiers="40",
            blocked_values="null\ntest@example.com",
        ),
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].startswith("/identity/rules?notice=")
    with store.read() as conn:
        rules = service.get_rules(conn, business_id=keys.business_id)
    assert rules.custom_kinds == ["crm_id"]
    assert rules.priority[-2:] == ["crm_id", "anonymous_id"]
    assert rules.trait_policies == {"plan": "max"}
    assert rules.default_phone_region == "FR"
    assert rules.max_component_identifiers == 40
    assert rules.blocked_values == ["null", "test@example.com"]
    assert rules.limits["email"].max == 5
    shown = admin.get("/identity/rules").text
    assert "crm_id" in shown and '<span class="value" id="kpi-max">40</span>' in shown


def test_bad_rules_are_refused_next_to_their_field_and_nothing_changes(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = admin_session(client, store, keys.business_id)
    before = _rules(store, keys.business_id)
    cases = [
        ({"limits": "{not json"}, "limits", "is not JSON"),
        ({"max_component_identifiers": "many"}, "max_component_identifiers", "whole number"),
        ({"max_component_identifiers": "1"}, "max_component_identifiers", "greater than"),
        ({"default_phone_region": "XX"}, "rules", "unknown phone region"),
        ({"custom_kinds": "Email!"}, "custom_kinds", "not a valid new identifier type"),
        ({"matching": '{"link_threshold": 2}'}, "matching", ""),
    ]
    for changes, field, reason in cases:
        refused = admin.post("/identity/rules", _form(**changes))
        assert refused.status_code == 400, (changes, refused.text)
        assert f'id="e-{field}"' in refused.text, (changes, refused.text)
        assert reason in refused.text
        # What was typed is kept.
        typed = next(iter(changes.values()))
        assert typed.replace('"', "&#34;") in refused.text or typed in refused.text
    assert _rules(store, keys.business_id) == before


def test_a_dry_run_changes_nothing_and_undo_removes_the_last_run(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    biz = keys.business_id
    admin = admin_session(client, store, biz)
    missing = admin.post("/identity/match/dry-run", {})
    assert missing.status_code == 400
    assert 'id="e-matching"' in missing.text and "no matching section" in missing.text

    events, _ = base()
    saved = admin.post("/identity/rules", _form(matching=json.dumps(MATCHING)))
    assert saved.status_code == 303, saved.text
    process(store, keys, settings.resolved_lake_url(), events, batch=50)
    before = groups(store, biz)
    dry = admin.post("/identity/match/dry-run", {})
    assert dry.status_code == 200, dry.text
    assert 'id="match-report"' in dry.text and 'id="chart-match"' in dry.text
    linked = int(dry.text.split('id="kpi-linked">', 1)[1].split("<", 1)[0])
    assert linked >= 10
    assert groups(store, biz) == before

    nothing = admin.post("/identity/match/undo", {}, follow=True)
    assert "No matching run left to undo" in nothing.text
    report = run_match(store, business_id=biz, engine_url=settings.engine_url)
    assert report.linked == linked and groups(store, biz) != before
    undone = admin.post("/identity/match/undo", {}, follow=True)
    assert f"Run {report.run_id} undone: {linked} link(s) removed" in undone.text
    assert groups(store, biz) == before


def test_without_the_permission_nothing_is_shown_or_changed(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    before = _rules(store, keys.business_id)
    session, csrf = employee_session(store, keys.business_id)
    client.cookies.set(SESSION_COOKIE, session)
    headers = {"Accept": "text/html"}
    assert client.get("/identity/rules", headers=headers).status_code == 403
    paths = (
        "/identity/rules",
        "/identity/match/dry-run",
        "/identity/match/run",
        "/identity/match/undo",
    )
    for path in paths:
        posted = client.post(path, data={**_form(), "csrf_token": csrf}, headers=headers)
        assert posted.status_code == 403, path
    client.cookies.clear()

    # Reading profiles shows the rules but no editor, and may not change them.
    reader = reader_token(store, keys.business_id)
    page = client.get("/identity/rules", headers=html(reader))
    assert page.status_code == 200 and 'id="rules-form"' not in page.text
    refused = client.post("/identity/rules", data=_form(), headers=html(reader))
    assert refused.status_code == 403
    assert client.post("/identity/match/run", headers=html(reader)).status_code == 403
    assert _rules(store, keys.business_id) == before
