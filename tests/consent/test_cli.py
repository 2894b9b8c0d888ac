"""`accord consent verify | proof | export | report` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from typer.testing import CliRunner

from accord.accounts.models import Bootstrap
from accord.cli import app
from accord.consent import config, ledger
from accord.consent.models import PropertyIn, consent_records
from accord.consent.service import record_consent
from accord.core.settings import Settings
from accord.core.signing import Signer
from accord.leads import confirmation, forms, submissions
from accord.leads.models import FormIn, lead_consents
from accord.leads.validation import CleanSubmission
from accord.process.email import default_wiring
from accord.store.db import Store, open_store


@pytest.fixture
def env(store: Store, keys: Bootstrap, settings: Settings, tmp_path: Path) -> dict[str, str]:
    with store.write() as conn:
        config.create_property(
            conn, business_id=keys.business_id, spec=PropertyIn(key="web", name="Web")
        )
        for subject, marketing in (("a1", True), ("a2", False), ("a1", False), ("a3", True)):
            record_consent(
                conn,
                business_id=keys.business_id,
                property_key="web",
                anonymous_id=subject,
                purposes={"marketing": marketing, "statistics": True},
                source="banner",
                country="DE",
            )
    return {
        "ACCORD_DATA_DIR": str(tmp_path / "data"),
        "ACCORD_DATABASE_URL": settings.resolved_database_url(),
        "ACCORD_LAKE_URL": settings.resolved_lake_url(),
        "ACCORD_ENGINE_URL": "duckdb://",
        "COLUMNS": "200",
    }


def run(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, ["consent", *args], env=env)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_verify_passes_then_names_the_altered_record(
    env: dict[str, str], store: Store, keys: Bootstrap
) -> None:
    ok = json.loads(run(env, "verify", "--json").stdout)
    assert ok == [
        {
            "business_id": keys.business_id,
            "ok": True,
            "records": 4,
            "head_hash": ok[0]["head_hash"],
            "first_bad_record": None,
        }
    ]
    with store.write() as conn:
        conn.execute(text("UPDATE consent_records SET regime = 'ccpa' WHERE position = 2"))
    failed = run(env, "verify", "--business", keys.business_id, code=1)
    assert "FAILED at record 2" in failed.output and "altered" in failed.output


def test_proof_as_json_and_html(env: dict[str, str], tmp_path: Path) -> None:
    proof = json.loads(run(env, "proof", "a1").stdout)
    assert [r["record"]["purposes"]["marketing"] for r in proof["records"]] == [True, False]
    assert proof["chain"]["ok"]
    page = tmp_path / "a1.html"
    run(env, "proof", "a1", "--format", "html", "--out", str(page))
    assert "Proof of consent" in page.read_text()
    run(env, "proof", "nobody", code=1)


def test_export_lists_current_grants(env: dict[str, str]) -> None:
    lines = run(env, "export", "--purpose", "marketing").stdout.strip().splitlines()
    assert lines[0].startswith("identifier_kind,identifier")
    assert [line.split(",")[1] for line in lines[1:]] == ["a3"]
    statistics = run(env, "export", "--purpose", "statistics").stdout.strip().splitlines()
    assert len(statistics) == 4


def test_report_by_country(env: dict[str, str]) -> None:
    rows = json.loads(run(env, "report", "--by", "country", "--json").stdout)
    marketing = next(r for r in rows if r["purpose"] == "marketing")
    assert marketing == {
        "purpose": "marketing",
        "country": "DE",
        "decisions": 4,
        "granted": 2,
        "opt_in_rate": 0.5,
    }
    run(env, "report", "--by", "nonsense", code=2)


def test_the_demo_has_a_banner(settings: Settings, tmp_path: Path) -> None:
    env = {
        "ACCORD_DATA_DIR": str(tmp_path / "data"),
        "ACCORD_DATABASE_URL": settings.resolved_database_url(),
        "ACCORD_LAKE_URL": settings.resolved_lake_url(),
        "ACCORD_SQLITE_SYNCHRONOUS": "NORMAL",
    }
    for _ in range(2):  # idempotent
        result = CliRunner().invoke(app, ["demo", "--events", "5", "--json"], env=env)
        assert result.exit_code == 0, (result.output, result.exception)
    business_id = json.loads(result.stdout.strip().splitlines()[-1])["business_id"]
    store = open_store(settings.resolved_database_url())
    try:
        with store.read() as conn:
            assert config.get_property(conn, business_id=business_id, key="web")["name"]
            notices = config.notice_versions(conn, business_id=business_id, property_key="web")
            # The first notice, then the banner A/B test (variants A and B), made once.
            assert sorted((n["version"], n["variant"]) for n in notices) == [
                (1, "A"),
                (2, "A"),
                (2, "B"),
            ]
    finally:
        store.dispose()


def test_item_15_consent_proof_finds_a_lead_by_email(
    env: dict[str, str], store: Store, keys: Bootstrap, client: TestClient
) -> None:
    form_in = FormIn.model_validate(
        {
            "slug": "news",
            "title": {"en": "News"},
            "fields": [{"key": "email", "kind": "email"}],
            "consents": [{"purpose": "marketing", "label": {"en": "Email me"}}],
            "privacy_policy_url": "https://shop.example/privacy",
            "from_address": "hello@shop.example",
        }
    )
    with store.write() as conn:
        form = forms.create_form(conn, business_id=keys.business_id, data=form_in)
        done = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="giulia@people.example", purposes=["marketing"]),
            anonymous_id=None,
            ip="198.51.100.4",
            user_agent="Firefox",
        )
        confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip="198.51.100.9",
            wiring=default_wiring(),
            signer=Signer("k" * 32),
        )
    proof = json.loads(run(env, "proof", "Giulia@People.example").stdout)
    [item] = proof["records"]
    assert item["record"]["purposes"]["marketing"] is True
    assert item["record"]["anonymous_id"] == done.anonymous_id
    run(env, "proof", "nobody@people.example", code=1)
    admin = {"Authorization": f"Bearer {keys.admin_token}"}
    found = client.get("/api/consent/subjects/Giulia@People.example/proof", headers=admin)
    assert found.status_code == 200, found.text
    assert found.json()["records"][0]["record"]["anonymous_id"] == done.anonymous_id
    missing = client.get("/api/consent/subjects/nobody@people.example/proof", headers=admin)
    assert missing.status_code == 404


def test_item_15_double_opt_in_evidence_is_in_the_hashed_ledger_record(
    env: dict[str, str], store: Store, keys: Bootstrap
) -> None:
    form_in = FormIn.model_validate(
        {
            "slug": "news",
            "title": {"en": "News", "it": "Novità"},
            "fields": [{"key": "email", "kind": "email"}],
            "consents": [{"purpose": "marketing", "label": {"en": "Email me", "it": "Scrivetemi"}}],
            "privacy_policy_url": "https://shop.example/privacy",
            "from_address": "hello@shop.example",
        }
    )
    with store.write() as conn:
        form = forms.create_form(conn, business_id=keys.business_id, data=form_in)
        done = submissions.submit(
            conn,
            form=form,
            submission=CleanSubmission(email="giulia@people.example", purposes=["marketing"]),
            anonymous_id=None,
            ip="198.51.100.4",
            user_agent="Firefox",
        )
        conn.execute(
            update(lead_consents)
            .where(lead_consents.c.lead_id == done.lead_id)
            .values(confirmation_message_id="<msg-1@shop.example>")
        )
        confirmation.confirm(
            conn,
            lead_id=done.lead_id,
            ip="198.51.100.9",
            wiring=default_wiring(),
            signer=Signer("k" * 32),
            lang="it",
        )
    proof = json.loads(run(env, "proof", "giulia@people.example").stdout)
    [item] = proof["records"]
    record = item["record"]
    evidence = record["evidence"]
    assert evidence["form_id"] == form.id and evidence["form_version"] == form.version
    assert evidence["language"] == "it" and record["language"] == "it"
    assert evidence["checkbox_text"] == "Scrivetemi"
    assert evidence["confirmation_message_id"] == "<msg-1@shop.example>"
    assert evidence["confirmed_at"]
    html = run(env, "proof", "giulia@people.example", "--format", "html").stdout
    assert "&lt;msg-1@shop.example&gt;" in html and "Scrivetemi" in html
    # The evidence is covered by the record's hash: the chain verifies, and a changed
    # checkbox text does not.
    with store.read() as conn:
        assert ledger.verify(conn, business_id=keys.business_id).ok
    with store.write() as conn:
        conn.execute(
            update(consent_records)
            .where(consent_records.c.id == record["id"])
            .values(evidence=json.dumps({**evidence, "checkbox_text": "Email me"}))
        )
    with store.read() as conn:
        failed = ledger.verify(conn, business_id=keys.business_id)
    assert not failed.ok
