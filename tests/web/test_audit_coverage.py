"""Item 15 of issue 19: consent configuration, forms, sends, suppressions and exports are
audited, each under its action, naming who did it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from accord.accounts.models import Bootstrap, audit_log
from accord.cli import app as cli_app
from accord.core.settings import Settings
from accord.store.db import Store
from tests.web.sessions import admin_session

LEAD_FORM = {
    "slug": "news",
    "title": {"en": "News"},
    "fields": [{"key": "email", "kind": "email"}],
    "consents": [{"purpose": "marketing", "label": {"en": "Email me"}}],
    "privacy_policy_url": "https://shop.example/privacy",
    "from_address": "hello@shop.example",
}


def _actions(store: Store, business_id: str) -> list[tuple[str, str]]:
    with store.read() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.actor_kind)
            .where(audit_log.c.business_id == business_id)
            .order_by(audit_log.c.id)
        ).all()
    return [(r.action, r.actor_kind) for r in rows]


def test_item_15_audit_of_consent_config_forms_sends_suppressions_and_exports(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    purpose = {"texts": {"en": {"name": "Surveys"}}}
    steps = [
        ("put", "/api/consent/purposes/feedback", purpose),
        ("put", "/api/consent/purposes/surveys", purpose),
        ("post", "/api/consent/properties", {"key": "web", "name": "Web"}),
        ("put", "/api/consent/geo-rules/DE", {"regime": "gdpr"}),
        ("delete", "/api/consent/geo-rules/DE", None),
        ("post", "/api/leads/forms", LEAD_FORM),
        ("post", "/api/suppressions", {"kind": "email", "value": "x@people.example"}),
        ("delete", "/api/suppressions/email/x@people.example", None),
        ("get", "/api/consent/export?purpose=marketing", None),
    ]
    for method, path, body in steps:
        kwargs = {"json": body} if body is not None else {}
        response = client.request(method.upper(), path, headers=admin, **kwargs)
        assert response.status_code < 300, (path, response.text)
    template = client.post(
        "/api/email/templates",
        json={"name": "t", "subject": "Hi", "html": "<p>Hi</p>"},
        headers=admin,
    ).json()
    mailing = client.post("/api/email/lists", json={"name": "news"}, headers=admin).json()
    campaign = client.post(
        "/api/email/campaigns",
        json={
            "name": "c",
            "template_id": template["id"],
            "list_id": mailing["id"],
            "from_address": "news@shop.example",
        },
        headers=admin,
    ).json()
    sent = client.post(f"/api/email/campaigns/{campaign['id']}/send", headers=admin)
    assert sent.status_code == 200, sent.text
    actions = _actions(store, keys.business_id)
    for expected in (
        "consent_purpose.save",
        "consent_property.create",
        "consent_geo_rule.set",
        "consent_geo_rule.delete",
        "lead_form.create",
        "suppression.add",
        "suppression.remove",
        "consent.export",
        "email_campaign.send",
    ):
        assert (expected, "token") in actions, expected
    assert actions.count(("consent_purpose.save", "token")) == 2


def test_item_15_audit_refused_requests_leave_no_entry(
    client: TestClient, keys: Bootstrap, store: Store
) -> None:
    before = _actions(store, keys.business_id)
    refused = client.put(
        "/api/consent/purposes/surveys", json={"texts": {}}, headers={"Authorization": "Bearer x"}
    )
    assert refused.status_code == 401
    bad = client.put(
        "/api/consent/purposes/surveys",
        json={"texts": {}},
        headers={"Authorization": f"Bearer {keys.admin_token}"},
    )
    assert bad.status_code == 400
    assert _actions(store, keys.business_id) == before


def test_item_15_pages_cli_and_test_sends_write_the_same_entries(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    """One writer (`accounts.audit.record_action`): a console page names the person, a
    command the operator, and a test send is audited wherever it is asked for."""
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    session = admin_session(client, store, keys.business_id)
    assert session.post("/consent/geo-rules", {"region": "CH", "regime": "gdpr"}).status_code == 303
    suppressed = {"kind": "email", "value": "page@people.example", "reason": "manual"}
    assert session.post("/suppressions", suppressed).status_code == 303
    template = client.post(
        "/api/email/templates",
        json={"name": "t", "subject": "Hi", "html": "<p>Hi</p>"},
        headers=admin,
    ).json()
    mailing = client.post("/api/email/lists", json={"name": "news"}, headers=admin).json()
    campaign = client.post(
        "/api/email/campaigns",
        json={
            "name": "c",
            "template_id": template["id"],
            "list_id": mailing["id"],
            "from_address": "news@shop.example",
        },
        headers=admin,
    ).json()
    tested = client.post(
        f"/api/email/campaigns/{campaign['id']}/test",
        json={"to": ["me@shop.example"]},
        headers=admin,
    )
    assert tested.status_code == 200, tested.text
    page_test = session.post(f"/email/campaigns/{campaign['id']}/test", {"to": "me@shop.example"})
    assert page_test.status_code == 303
    env = {
        "ACCORD_DATA_DIR": str(settings.data_dir),
        "ACCORD_DATABASE_URL": settings.resolved_database_url(),
        "ACCORD_SQLITE_SYNCHRONOUS": "NORMAL",
    }
    for command in (
        ["consent", "export", "--purpose", "marketing", "--business", keys.business_id],
        ["audiences", "suppress", "email", "cli@people.example", "--business", keys.business_id],
    ):
        result = CliRunner().invoke(cli_app, command, env=env)
        assert result.exit_code == 0, (command, result.output, result.exception)
    actions = _actions(store, keys.business_id)
    for expected in (
        ("consent_geo_rule.set", "person"),
        ("suppression.add", "person"),
        ("email_campaign.test_send", "token"),
        ("email_campaign.test_send", "person"),
        ("consent.export", "cli"),
        ("suppression.add", "cli"),
    ):
        assert expected in actions, (expected, actions)
