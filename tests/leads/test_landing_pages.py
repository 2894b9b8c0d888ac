"""Hosted landing pages over HTTP: validation, spam limits, double opt-in, lead magnets."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from typing import Any

import itsdangerous.timed
import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.web.app import create_app
from tests.charts import chart
from tests.smtp_sink import SmtpSink, body_text, mail_settings


@pytest.fixture
def app_client(settings: Settings, keys: Bootstrap, sink: SmtpSink) -> Iterator[TestClient]:
    configured = mail_settings(settings, sink, form_rate_limit=4)
    with TestClient(create_app(configured)) as test_client:
        yield test_client


def admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


FORM: dict[str, Any] = {
    "slug": "autumn-catalogue",
    "title": {"en": "Get the autumn catalogue", "it": "Ricevi il catalogo d'autunno"},
    "welcome": {"en": "Ten pages of boots and tents."},
    "fields": [
        {"key": "email", "kind": "email", "label": {"en": "Email", "it": "Email"}},
        {"key": "name", "kind": "name", "label": {"en": "Name", "it": "Nome"}, "required": True},
        {"key": "phone", "kind": "phone", "label": {"en": "Phone"}},
        {"key": "company", "kind": "company", "label": {"en": "Company"}},
        {"key": "size", "kind": "choice", "options": ["S", "M", "L"], "required": True},
        {"key": "likes", "kind": "checkboxes", "options": ["boots", "tents"]},
        {"key": "note", "kind": "text", "label": {"en": "Anything to add?"}},
        {"key": "ref", "kind": "hidden"},
    ],
    "consents": [
        {
            "purpose": "marketing",
            "label": {"en": "Send me offers by email", "it": "Inviatemi offerte via email"},
        },
        {"purpose": "statistics", "label": {"en": "Measure my visits"}},
    ],
    "privacy_policy_url": "https://shop.example/privacy",
    "next_url": "https://shop.example/",
    "from_address": "hello@shop.example",
    "languages": ["en", "it"],
}


def _setup(client: TestClient, keys: Bootstrap, **changes: Any) -> dict[str, Any]:
    pool = client.post(
        "/api/leads/coupon-pools",
        json={"name": "autumn", "codes": ["AUT-001", "AUT-002"]},
        headers=admin(keys),
    )
    assert pool.status_code == 201
    mailing = client.post("/api/email/lists", json={"name": "news"}, headers=admin(keys))
    magnet = client.put(
        "/api/leads/magnets/catalogue.pdf", content=b"%PDF-1.4 catalogue", headers=admin(keys)
    )
    assert magnet.status_code == 204
    body = {
        **FORM,
        "coupon_pool_id": pool.json()["id"],
        "list_id": mailing.json()["id"],
        "download_name": "catalogue.pdf",
        **changes,
    }
    created = client.post("/api/leads/forms", json=body, headers=admin(keys))
    assert created.status_code == 201, created.text
    return {**created.json(), "list_id": mailing.json()["id"]}


GOOD = {
    "email": "Giulia.Rossi@Example.it",
    "name": "Giulia",
    "phone": "+39 347 123 4567",
    "size": "M",
    "likes": ["boots", "tents"],
    "ref": "spring-flyer",
    "utm_source": "newsletter",
    "consent_marketing": "yes",
}


def test_forms_are_created_only_by_managers(app_client: TestClient) -> None:
    refused = app_client.post("/api/leads/forms", json=FORM)
    assert refused.status_code == 401
    bad = {**FORM, "fields": [{"key": "name", "kind": "name"}]}
    assert (
        app_client.post(
            "/api/leads/forms", json=bad, headers={"Authorization": "Bearer x"}
        ).status_code
        == 401
    )


def test_page_is_in_the_visitors_language_with_nothing_pre_ticked(
    app_client: TestClient, keys: Bootstrap
) -> None:
    created = _setup(app_client, keys)
    assert created["snippet"].startswith('<iframe src="http://testserver/l/autumn-catalogue')
    page = app_client.get(
        "/l/autumn-catalogue?utm_campaign=autumn",
        headers={"Accept-Language": "it-IT,it;q=0.9,en;q=0.5"},
    )
    assert page.status_code == 200
    html = page.text
    assert '<html lang="it">' in html and "Ricevi il catalogo" in html
    assert "Inviatemi offerte via email" in html
    assert 'href="https://shop.example/privacy"' in html
    assert 'name="utm_campaign" value="autumn"' in html
    assert "checked" not in html
    assert 'name="viewport"' in html and "<script" not in html and "http://cdn" not in html
    english = app_client.get("/l/autumn-catalogue", headers={"Accept-Language": "de-DE"})
    assert '<html lang="en">' in english.text  # fallback
    assert app_client.get("/l/nothing-here").status_code == 404


def test_bad_inputs_get_clear_errors_and_store_nothing(
    app_client: TestClient, keys: Bootstrap, sink: SmtpSink
) -> None:
    created = _setup(app_client, keys)
    bad = {**GOOD, "email": "giulia@", "size": "XXL", "name": ""}
    page = app_client.post("/l/autumn-catalogue", data=bad)
    assert page.status_code == 400
    assert 'role="alert"' in page.text and 'aria-invalid="true"' in page.text
    as_json = app_client.post(
        "/l/autumn-catalogue", data=bad, headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 400
    problems = {p["field"]: p["reason"] for p in as_json.json()["problems"]}
    assert set(problems) == {"email", "name", "size"}
    assert problems["name"] == "this answer is required"
    honeypot = app_client.post(
        "/l/autumn-catalogue",
        data={**GOOD, "website": "http://spam"},
        headers={"Accept": "application/json"},
    )
    assert honeypot.status_code == 400
    assert honeypot.json()["problems"][0]["field"] == "website"
    # A flood: the fifth submission within the window is one too many (limit 4).
    assert app_client.post("/l/autumn-catalogue", data=bad).status_code == 400
    flood = app_client.post("/l/autumn-catalogue", data=bad)
    assert flood.status_code == 429 and int(flood.headers["Retry-After"]) > 0
    assert flood.json()["code"] == "too_many_requests"
    assert sink.messages == []
    lead = app_client.get("/api/email/campaigns/none/kpis", headers=admin(keys))
    assert lead.status_code == 404
    del created


def test_double_opt_in_then_coupon_download_and_proof(
    app_client: TestClient, keys: Bootstrap, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = _setup(app_client, keys)
    thanks = app_client.post("/l/autumn-catalogue?lang=en", data=GOOD)
    assert thanks.status_code == 200 and 'id="check-inbox"' in thanks.text
    message = sink.wait_for("giulia.rossi@example.it")
    assert message["Subject"] == "Please confirm your email address"
    assert "List-Unsubscribe" not in message
    link = re.search(r"http://testserver(/l/confirm/\S+)", body_text(message))
    assert link

    # Not mailable before confirming.
    with_json = app_client.post(
        "/l/autumn-catalogue", data=GOOD, headers={"Accept": "application/json"}
    )
    lead_id = with_json.json()["lead_id"]
    view = app_client.get(f"/api/leads/leads/{lead_id}", headers=admin(keys)).json()
    assert view["status"] == "pending" and view["coupons"] == []
    assert {c["status"] for c in view["consents"]} == {"pending"}

    tampered = app_client.get(link.group(1)[:-3] + "abc")
    assert tampered.status_code == 400 and tampered.json()["code"] == "invalid_link"

    confirmed = app_client.get(link.group(1))
    assert confirmed.status_code == 200
    coupon = re.search(r'id="coupon">([^<]+)<', confirmed.text)
    assert coupon and coupon.group(1) == "AUT-001"
    assert 'href="https://shop.example/"' in confirmed.text
    download = re.search(r'href="http://testserver(/l/download/[^"]+)"', confirmed.text)
    assert download
    got = app_client.get(download.group(1))
    assert got.status_code == 200 and got.content == b"%PDF-1.4 catalogue"

    again = app_client.get(link.group(1))  # the link works twice, same coupon
    assert re.search(r'id="coupon">AUT-001<', again.text)

    view = app_client.get(f"/api/leads/leads/{lead_id}", headers=admin(keys)).json()
    assert view["status"] == "confirmed" and view["phone"] == "+393471234567"
    assert view["answers"] == {"size": "M", "likes": ["boots", "tents"], "ref": "spring-flyer"}
    assert view["utm"] == {"utm_source": "newsletter"}
    assert [c["code"] for c in view["coupons"]] == ["AUT-001"]
    consents = view["consents"]
    assert {c["purpose"] for c in consents} == {"marketing"}
    assert all(c["status"] == "recorded" and c["form_version"] == 1 for c in consents)
    assert all(c["confirmation_message_id"] and c["confirmed_at"] for c in consents)
    assert all(c["ip"] == "testclient" for c in consents)

    redeemed = app_client.post("/api/leads/coupons/AUT-001/redeem", headers=admin(keys))
    assert redeemed.status_code == 200
    twice = app_client.post("/api/leads/coupons/AUT-001/redeem", headers=admin(keys))
    assert twice.status_code == 409 and "already redeemed" in twice.json()["message"]

    # A download link older than its lifetime is refused as expired, not as forged.
    past = types.SimpleNamespace(time=lambda: 1_000_000_000.0)
    monkeypatch.setattr(itsdangerous.timed, "time", past)
    signer = app_client.app.state.accord.email.mailer.signer  # type: ignore[attr-defined]
    old_token = signer.dumps_timed("download", [lead_id, created["id"], "catalogue.pdf"])
    monkeypatch.undo()
    expired = app_client.get(f"/l/download/{old_token}")
    assert expired.status_code == 410 and expired.json()["code"] == "link_expired"
    forged = app_client.get(download.group(1)[:-4] + "AAAA")
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_link"


def test_scoring_and_funnel_over_http(app_client: TestClient, keys: Bootstrap) -> None:
    headers = admin(keys)
    rules = {
        "rules": [{"kind": "answer", "name": "size", "value": "L", "points": 60}],
        "prospect_at": 50,
    }
    assert app_client.put("/api/leads/scoring", json=rules, headers=headers).status_code == 204
    bad = {**rules, "consideration_at": 80}
    assert app_client.put("/api/leads/scoring", json=bad, headers=headers).status_code == 400
    shown = app_client.get("/api/leads/scoring", headers=headers).json()
    assert shown["prospect_at"] == 50
    # The old rule form is taken and shown as the audience condition it means.
    assert shown["rules"][0]["condition"] == {
        "kind": "trait",
        "trait": "size",
        "op": "=",
        "value": "L",
    }
    ordering = {"kind": "trait", "trait": "size", "op": ">", "value": "L"}
    wrong = {"rules": [{"kind": "answer", "condition": ordering, "points": 1}]}
    refused = app_client.put("/api/leads/scoring", json=wrong, headers=headers)
    assert refused.status_code == 400 and "cannot order a string" in refused.text
    form = _setup(app_client, keys, double_opt_in=False)
    big = {**GOOD, "size": "L", "utm_campaign": "spring"}
    assert app_client.post("/l/autumn-catalogue", data=big).status_code == 200
    small = {**GOOD, "email": "bo@people.example", "utm_campaign": "spring"}
    assert app_client.post("/l/autumn-catalogue", data=small).status_code == 200
    spend = app_client.put(
        "/api/leads/spend", json={"campaign": "spring", "amount": 40}, headers=headers
    )
    assert spend.status_code == 204
    [row] = app_client.get("/api/leads/funnel?by=campaign", headers=headers).json()
    assert (row["group"], row["leads"], row["prospects"], row["customers"]) == ("spring", 2, 1, 0)
    assert row["cost_per_lead"] == 20.0 and row["lead_to_prospect"]["value"] == 0.5
    lead = app_client.get(
        "/api/leads/leads", params={"email": "bo@people.example"}, headers=headers
    ).json()
    moved = app_client.post(
        f"/api/leads/leads/{lead['id']}/stage",
        json={"stage": "customer", "reason": "bought in store"},
        headers=headers,
    )
    assert moved.status_code == 204
    [row] = app_client.get("/api/leads/funnel?by=campaign", headers=headers).json()
    assert row["customers"] == 1 and row["cost_per_customer"] == 40.0
    assert app_client.get("/api/leads/funnel?by=planet", headers=headers).status_code == 400
    # The pages draw the same numbers, each chart with its table.
    pages = {**headers, "Accept": "text/html"}
    funnel_page = app_client.get("/leads/funnel?by=campaign", headers=pages).text
    stages = chart(funnel_page, "Leads, prospects and customers by campaign")
    assert stages.rows["spring"] == [str(row[k]) for k in ("leads", "prospects", "customers")]
    converted = chart(funnel_page, "Lead → customer by campaign")
    assert converted.rows["spring"][0].startswith("50.0 % [")
    assert converted.trace("Lead → customer")["error_y"]["type"] == "data"
    today = utcnow().date().isoformat()
    by_form = chart(
        app_client.get("/leads/forms", headers=pages).text,
        "New leads per day by form, last 30 days (UTC)",
    )
    assert by_form.trace("autumn-catalogue")["y"][-1] == 2 and by_form.rows[today] == ["2"]
    one_form = app_client.get(f"/leads/forms/{form['id']}", headers=pages).text
    assert chart(one_form, "New leads per day, last 30 days (UTC)").rows[today] == ["2"]
    by_source = chart(
        app_client.get("/leads/people", headers=pages).text,
        "New leads per day by source, last 30 days (UTC)",
    )
    assert by_source.trace("Forms")["y"][-1] == 2


def test_item_15_utm_campaign_survives_a_failed_first_submit(
    app_client: TestClient, keys: Bootstrap
) -> None:
    fields = [*FORM["fields"], {"key": "utm_campaign", "kind": "hidden"}]
    _setup(app_client, keys, double_opt_in=False, fields=fields)
    page = app_client.get("/l/autumn-catalogue?utm_campaign=spring").text
    assert page.count('name="utm_campaign"') == 1
    failed = app_client.post(
        "/l/autumn-catalogue", data={**GOOD, "name": "", "utm_campaign": "spring"}
    )
    assert failed.status_code == 400
    assert failed.text.count('name="utm_campaign" value="spring"') == 1
    assert "[&#39;spring&#39;" not in failed.text and "['spring'" not in failed.text
    again = re.findall(r'name="utm_campaign" value="([^"]*)"', failed.text)
    sent = app_client.post("/l/autumn-catalogue", data={**GOOD, "utm_campaign": again})
    assert sent.status_code == 200
    lead = app_client.get(
        "/api/leads/leads", params={"email": "giulia.rossi@example.it"}, headers=admin(keys)
    ).json()
    assert lead["utm"]["utm_campaign"] == "spring"


def test_item_15_form_builder_refuses_an_unknown_consent_purpose(
    app_client: TestClient, keys: Bootstrap
) -> None:
    consents = [*FORM["consents"], {"purpose": "telepathy", "label": {"en": "Read my mind"}}]
    refused = app_client.post(
        "/api/leads/forms", json={**FORM, "consents": consents}, headers=admin(keys)
    )
    assert refused.status_code == 400, refused.text
    [problem] = refused.json()["problems"]
    assert problem["field"] == "consents.2.purpose" and "telepathy" in problem["reason"]
    assert app_client.get("/l/autumn-catalogue").status_code == 404
    # A purpose the business added itself is fine.
    purpose = {"texts": {"en": {"name": "Mind", "description": "Reading"}}}
    saved = app_client.put("/api/consent/purposes/telepathy", json=purpose, headers=admin(keys))
    assert saved.status_code in (200, 201), saved.text
    made = app_client.post(
        "/api/leads/forms", json={**FORM, "consents": consents}, headers=admin(keys)
    )
    assert made.status_code == 201, made.text
