"""The consent set-up pages: properties, banner designer, texts, purposes, vendors, rules."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.accounts import people, service, team
from accord.accounts.models import Actor, Bootstrap, InvitationIn
from accord.accounts.service import Access
from accord.store.db import Store
from accord.web.auth import SESSION_COOKIE
from accord.web.cmp import default_texts
from tests.accounts.ui import create_business, sign_up

VECTORS = Path(__file__).parent / "vectors"
SYSTEM = Actor(kind="system", label="consent pages test")


def _html(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}", "Accept": "text/html"}


def _api(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def _post(client: TestClient, keys: Bootstrap, path: str, data: Any, **kw: Any) -> Any:
    return client.post(path, data=data, headers=_html(keys), follow_redirects=False, **kw)


def _problem(page: str, field: str) -> str:
    found = re.search(rf'data-problem="{re.escape(field)}">([^<]*)<', page)
    assert found, f"no problem shown next to {field!r}"
    return html.unescape(found.group(1))


def _value(page: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert found, f"no field {name!r}"
    return html.unescape(found.group(1))


def _versions(client: TestClient, keys: Bootstrap, key: str = "shop") -> list[dict[str, Any]]:
    response = client.get(f"/api/consent/properties/{key}/notices", headers=_api(keys))
    assert response.status_code == 200
    notices: list[dict[str, Any]] = response.json()
    return notices


PROPERTY = {
    "key": "shop",
    "name": "Shoe shop",
    "kind": "web",
    "cookie_name": "accord_consent",
    "cookie_max_age_days": "180",
    "cookie_domain": "",
    "cmp_id": "",
    "publisher_cc": "",
}


@pytest.fixture
def shop(client: TestClient, keys: Bootstrap) -> Bootstrap:
    created = _post(client, keys, "/consent/properties", PROPERTY)
    assert created.status_code == 303, created.text
    return keys


def test_landing_lists_properties_and_creates_one(client: TestClient, keys: Bootstrap) -> None:
    empty = client.get("/consent", headers=_html(keys))
    assert empty.status_code == 200 and "No property yet" in empty.text
    created = _post(client, keys, "/consent/properties", PROPERTY)
    assert created.status_code == 303
    assert created.headers["location"].startswith("/consent/properties/shop?notice=")
    landing = client.get("/consent", headers=_html(keys)).text
    assert 'data-property="shop"' in landing and "Shoe shop" in landing
    assert 'id="kpi-properties">1<' in landing and 'id="kpi-purposes">4<' in landing
    assert 'data-chart="' in landing and '<details class="chart-table"' in landing
    listed = client.get("/api/consent/properties", headers=_api(keys)).json()
    assert [p["key"] for p in listed] == ["shop"]
    again = _post(client, keys, "/consent/properties", PROPERTY)
    assert again.status_code == 400
    assert "already exists" in _problem(again.text, "key")


def test_a_refused_property_keeps_what_was_typed_and_creates_nothing(
    client: TestClient, keys: Bootstrap
) -> None:
    typed = {**PROPERTY, "key": "Bad Key!", "name": "My new shop", "cookie_max_age_days": "999"}
    refused = _post(client, keys, "/consent/properties", typed)
    assert refused.status_code == 400
    assert _problem(refused.text, "key") and _problem(refused.text, "cookie_max_age_days")
    assert _value(refused.text, "key") == "Bad Key!"
    assert _value(refused.text, "name") == "My new shop"
    assert _value(refused.text, "cookie_max_age_days") == "999"
    assert client.get("/api/consent/properties", headers=_api(keys)).json() == []


def test_property_settings_are_saved_and_bad_ones_refused(
    client: TestClient, shop: Bootstrap
) -> None:
    page = client.get("/consent/properties/shop", headers=_html(shop))
    assert page.status_code == 200 and 'data-property="shop"' in page.text
    assert 'data-version="1"' in page.text
    changed = {**PROPERTY, "name": "Shoes", "cookie_max_age_days": "30", "publisher_cc": "de"}
    saved = _post(client, shop, "/consent/properties/shop", changed)
    assert saved.status_code == 303
    prop = client.get("/api/consent/properties", headers=_api(shop)).json()[0]
    assert (prop["name"], prop["cookie_max_age_days"], prop["publisher_cc"]) == ("Shoes", 30, "DE")
    bad = {**changed, "name": "Other name", "cmp_id": "abc"}
    refused = _post(client, shop, "/consent/properties/shop", bad)
    assert refused.status_code == 400
    assert "integer" in _problem(refused.text, "cmp_id")
    assert _value(refused.text, "name") == "Other name" and _value(refused.text, "cmp_id") == "abc"
    assert client.get("/api/consent/properties", headers=_api(shop)).json()[0]["name"] == "Shoes"
    assert client.get("/consent/properties/nope", headers=_html(shop)).status_code == 404


def _texts_form(page: str) -> dict[str, str]:
    names = re.findall(r'name="(text_\w+)" value="([^"]*)"', page)
    form = {name: html.unescape(value) for name, value in names}
    description = re.search(r'name="text_description"[^>]*>([^<]*)</textarea>', page)
    assert description
    form["text_description"] = html.unescape(description.group(1))
    return form


def test_publishing_one_language_keeps_the_other_languages(
    client: TestClient, shop: Bootstrap
) -> None:
    german = client.get("/consent/properties/shop/texts?lang=de", headers=_html(shop))
    assert german.status_code == 200
    form = _texts_form(german.text)
    # A shipped language starts from Accord's own translation, and the preview shows it.
    assert form["text_accept_all"] == default_texts("de")["accept_all"] != "Accept all"
    preview = client.get("/consent/properties/shop/preview?lang=de", headers=_html(shop))
    shown = _preview_config(preview.text)["notice"]
    assert shown["language"] == "de" and shown["texts"]["accept_all"] == form["text_accept_all"]
    form["text_title"] = "Ihre Privatsphäre bei Schuhe"
    published = _post(
        client, shop, "/consent/properties/shop/texts", {**form, "language": "de", "variant": "A"}
    )
    assert published.status_code == 303, published.text
    english = _texts_form(client.get("/consent/properties/shop/texts", headers=_html(shop)).text)
    english["text_title"] = "Your privacy at the shoe shop"
    again = _post(client, shop, "/consent/properties/shop/texts", {**english, "language": "en"})
    assert again.status_code == 303
    versions = _versions(client, shop)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert sorted(versions[1]["texts"]) == ["de", "en"]
    latest = versions[2]["texts"]
    assert latest["de"] == versions[1]["texts"]["de"]
    assert latest["de"]["title"] == "Ihre Privatsphäre bei Schuhe"
    assert latest["en"]["title"] == "Your privacy at the shoe shop"
    assert versions[2]["default_language"] == "en"
    page = client.get("/consent/properties/shop/texts?lang=de", headers=_html(shop)).text
    assert all(f'data-version="{n}"' in page for n in (1, 2, 3))
    assert _value(page, "text_title") == "Ihre Privatsphäre bei Schuhe"


def test_refused_texts_keep_what_was_typed_and_publish_nothing(
    client: TestClient, shop: Bootstrap
) -> None:
    form = _texts_form(client.get("/consent/properties/shop/texts", headers=_html(shop)).text)
    typed = {
        **form,
        "text_title": "",
        "text_description": "Typed & kept",
        "text_privacy_policy_url": "javascript:alert(1)",
        "language": "en",
    }
    refused = _post(client, shop, "/consent/properties/shop/texts", typed)
    assert refused.status_code == 400
    assert _problem(refused.text, "text_title") == "must not be empty"
    assert "https://" in _problem(refused.text, "text_privacy_policy_url")
    assert "Typed &amp; kept</textarea>" in refused.text
    assert _value(refused.text, "text_privacy_policy_url") == "javascript:alert(1)"
    bad_language = _post(
        client, shop, "/consent/properties/shop/texts", {**form, "language": "not a language"}
    )
    assert bad_language.status_code == 400 and _problem(bad_language.text, "language")
    assert len(_versions(client, shop)) == 1


def test_the_banner_designer_publishes_a_new_look_with_the_same_texts(
    client: TestClient, shop: Bootstrap
) -> None:
    page = client.get("/consent/properties/shop/banner", headers=_html(shop))
    assert page.status_code == 200
    assert 'src="/consent/properties/shop/preview?variant=A&amp;lang=en"' in page.text
    look = {
        "variant": "A",
        "layout": "box",
        "background": "#102030",
        "text": "#ffffff",
        "accent": "#ff8800",
        "logo_url": "",
    }
    published = _post(client, shop, "/consent/properties/shop/banner", look)
    assert published.status_code == 303
    first, second = _versions(client, shop)
    assert second["version"] == 2 and second["layout"] == "box"
    assert second["colours"] == {"background": "#102030", "text": "#ffffff", "accent": "#ff8800"}
    assert second["texts"] == first["texts"]
    refused = _post(
        client, shop, "/consent/properties/shop/banner", {**look, "background": "dark blue"}
    )
    assert refused.status_code == 400
    assert _problem(refused.text, "background")
    assert _value(refused.text, "background") == "dark blue"
    assert _value(refused.text, "accent") == "#ff8800"
    bad_logo = _post(
        client, shop, "/consent/properties/shop/banner", {**look, "logo_url": "javascript:x"}
    )
    assert bad_logo.status_code == 400 and "https://" in _problem(bad_logo.text, "logo_url")
    assert _value(bad_logo.text, "logo_url") == "javascript:x"
    assert len(_versions(client, shop)) == 2


def _preview_config(page: str) -> dict[str, Any]:
    found = re.search(
        r"<script src=\"/cmp.js\" data-property=\"shop\" data-preview='([^']*)'", page
    )
    assert found, page
    config: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return config


def test_the_preview_shows_the_unsaved_draft_with_cmp_js_and_changes_nothing(
    client: TestClient, shop: Bootstrap
) -> None:
    published = _preview_config(
        client.get("/consent/properties/shop/preview?regime=ccpa", headers=_html(shop)).text
    )
    assert published["notice"]["layout"] == "bar" and published["show_do_not_sell"]
    assert [p["key"] for p in published["purposes"]] == [
        "necessary",
        "preferences",
        "statistics",
        "marketing",
    ]
    draft = client.post(
        "/consent/properties/shop/preview",
        data={
            "variant": "A",
            "layout": "box",
            "background": "#000000",
            "text": "#eeeeee",
            "accent": "#ff0000",
            "logo_url": "",
            "language": "en",
            "regime": "gdpr",
            "text_title": "Draft title <b>",
            "text_description": "Draft description",
        },
        headers=_html(shop),
    )
    assert draft.status_code == 200
    config = _preview_config(draft.text)
    assert config["notice"]["layout"] == "box"
    assert config["notice"]["colours"]["background"] == "#000000"
    assert config["notice"]["texts"]["title"] == "Draft title <b>"
    # Keys the draft leaves out get the defaults, as publishing would give them.
    assert config["notice"]["texts"]["accept_all"] == "Accept all"
    assert config["requires_opt_in"] and not config["show_do_not_sell"]
    broken = client.post(
        "/consent/properties/shop/preview",
        data={"layout": "box", "background": "nope", "text": "#fff", "accent": "#fff"},
        headers=_html(shop),
    )
    assert broken.status_code == 400 and 'id="preview-problem"' in broken.text
    assert 'src="/cmp.js"' not in broken.text
    assert len(_versions(client, shop)) == 1


def test_purposes_are_added_edited_and_bad_input_is_kept(
    client: TestClient, shop: Bootstrap
) -> None:
    listing = client.get("/consent/purposes", headers=_html(shop))
    assert listing.status_code == 200 and 'data-purpose="marketing"' in listing.text
    assert 'id="catalogue-chart"' in listing.text
    added = _post(
        client,
        shop,
        "/consent/purposes",
        {
            "key": "offers",
            "lang": ["en", "de", ""],
            "name": ["Personalised offers", "Persönliche Angebote", ""],
            "description": ["Offers for you.", "Angebote für Sie.", ""],
            "legal_basis": "consent",
            "tcf_purposes": "4",
            "consent_mode": ["ad_personalization"],
            "cookies": "offer_id\n^offer_",
            "position": "5",
        },
    )
    assert added.status_code == 303, added.text
    purposes = {p["key"]: p for p in client.get("/api/consent/purposes", headers=_api(shop)).json()}
    offers = purposes["offers"]
    assert offers["texts"]["de"]["name"] == "Persönliche Angebote"
    assert offers["cookies"] == ["offer_id", "^offer_"] and offers["tcf_purposes"] == [4]
    edit = client.get("/consent/purposes/offers", headers=_html(shop))
    assert edit.status_code == 200 and "Persönliche Angebote" in edit.text
    saved = _post(
        client,
        shop,
        "/consent/purposes/offers",
        {
            "lang": ["en"],
            "name": ["Offers"],
            "description": [""],
            "legal_basis": "legitimate_interest",
            "tcf_purposes": "",
            "cookies": "",
            "position": "6",
        },
    )
    assert saved.status_code == 303
    purposes = {p["key"]: p for p in client.get("/api/consent/purposes", headers=_api(shop)).json()}
    assert purposes["offers"]["texts"] == {"en": {"name": "Offers", "description": ""}}
    assert purposes["offers"]["legal_basis"] == "legitimate_interest"
    refused = _post(
        client,
        shop,
        "/consent/purposes/offers",
        {
            "lang": ["en", "xx yy"],
            "name": ["Typed name", "Other"],
            "description": ["", ""],
            "legal_basis": "consent",
            "tcf_purposes": "4, seven",
            "cookies": "",
            "position": "1",
        },
    )
    assert refused.status_code == 400
    assert "not a number" in _problem(refused.text, "tcf_purposes")
    assert _problem(refused.text, "lang-1")
    assert _value(refused.text, "tcf_purposes") == "4, seven"
    assert 'value="Typed name"' in refused.text
    unknown_tcf = _post(
        client,
        shop,
        "/consent/purposes",
        {
            "key": "more",
            "lang": ["en"],
            "name": ["More"],
            "description": [""],
            "legal_basis": "consent",
            "tcf_purposes": "12",
            "cookies": "",
            "position": "1",
        },
    )
    assert unknown_tcf.status_code == 400 and "TCF" in _problem(unknown_tcf.text, "tcf_purposes")
    after = {p["key"]: p for p in client.get("/api/consent/purposes", headers=_api(shop)).json()}
    assert after["offers"] == purposes["offers"] and "more" not in after


def test_vendors_are_added_edited_and_imported_from_a_gvl_file(
    client: TestClient, shop: Bootstrap
) -> None:
    vendor = {
        "key": "crm",
        "name": "Our CRM",
        "purposes": ["marketing"],
        "tcf_id": "",
        "policy_url": "https://crm.example/privacy",
    }
    assert _post(client, shop, "/consent/vendors", vendor).status_code == 303
    page = client.get("/consent/vendors", headers=_html(shop)).text
    assert 'data-vendor="crm"' in page and 'id="catalogue-chart"' in page
    edited = _post(
        client,
        shop,
        "/consent/vendors/crm",
        {"name": "CRM", "purposes": ["marketing", "statistics"], "tcf_id": "", "policy_url": ""},
    )
    assert edited.status_code == 303
    refused = _post(
        client,
        shop,
        "/consent/vendors/crm",
        {"name": "Typed CRM", "purposes": ["marketing"], "tcf_id": "zero", "policy_url": ""},
    )
    assert refused.status_code == 400 and _problem(refused.text, "tcf_id")
    assert _value(refused.text, "name") == "Typed CRM" and _value(refused.text, "tcf_id") == "zero"
    crm = {v["id"]: v for v in client.get("/api/consent/vendors", headers=_api(shop)).json()}["crm"]
    assert crm["name"] == "CRM" and crm["purposes"] == ["marketing", "statistics"]

    gvl = (VECTORS / "gvl-v3-sample.json").read_bytes()
    imported = _post(
        client,
        shop,
        "/consent/gvl",
        {"tcf_ids": "755"},
        files={"file": ("vendor-list.json", gvl, "application/json")},
    )
    assert imported.status_code == 303, imported.text
    vendors = {v["id"]: v for v in client.get("/api/consent/vendors", headers=_api(shop)).json()}
    assert set(vendors) == {"crm", "755"}
    prop = client.get("/api/consent/properties", headers=_api(shop)).json()[0]
    assert prop["gvl_version"] == 120
    broken = _post(
        client,
        shop,
        "/consent/gvl",
        {"tcf_ids": "755, x"},
        files={"file": ("vendor-list.json", b'{"vendors": 1}', "application/json")},
    )
    assert broken.status_code == 400 and _problem(broken.text, "tcf_ids")
    assert _value(broken.text, "tcf_ids") == "755, x"
    not_json = _post(
        client,
        shop,
        "/consent/gvl",
        {"tcf_ids": ""},
        files={"file": ("vendor-list.json", b"{not json", "application/json")},
    )
    assert not_json.status_code == 400 and "not JSON" in _problem(not_json.text, "file")
    assert len(client.get("/api/consent/vendors", headers=_api(shop)).json()) == 2


def test_geo_rules_are_set_and_removed(client: TestClient, shop: Bootstrap) -> None:
    page = client.get("/consent/geo-rules", headers=_html(shop))
    assert page.status_code == 200 and 'data-region="DE"' in page.text
    assert 'id="regimes-chart"' in page.text
    assert (
        _post(client, shop, "/consent/geo-rules", {"region": "ch", "regime": "gdpr"}).status_code
        == 303
    )
    assert (
        _post(client, shop, "/consent/geo-rules", {"region": "*", "regime": "gdpr"}).status_code
        == 303
    )
    rules = client.get("/api/consent/geo-rules", headers=_api(shop)).json()["rules"]
    assert rules == {"CH": "gdpr", "*": "gdpr"}
    refused = _post(client, shop, "/consent/geo-rules", {"region": "Switzerland", "regime": "gdpr"})
    assert refused.status_code == 400 and _problem(refused.text, "region")
    assert _value(refused.text, "region") == "SWITZERLAND"
    bad_regime = _post(client, shop, "/consent/geo-rules", {"region": "FR", "regime": "nope"})
    assert bad_regime.status_code == 400 and _problem(bad_regime.text, "regime")
    removed = _post(client, shop, "/consent/geo-rules/delete", {"region": "CH"})
    assert removed.status_code == 303
    assert client.get("/api/consent/geo-rules", headers=_api(shop)).json()["rules"] == {"*": "gdpr"}
    missing = _post(client, shop, "/consent/geo-rules/delete", {"region": "CH"})
    assert missing.status_code == 404


def test_the_collection_policy_is_shown_and_saved(client: TestClient, shop: Bootstrap) -> None:
    page = client.get("/consent/policy", headers=_html(shop))
    assert page.status_code == 200 and 'id="policy-chart"' in page.text
    saved = _post(
        client,
        shop,
        "/consent/policy",
        {
            "event": ["Order Completed", "$identify", ""],
            "purpose": ["necessary", "necessary", ""],
            "default_purpose": "statistics",
            "anonymous_counting": "on",
        },
    )
    assert saved.status_code == 303
    policy = client.get("/api/consent/policy", headers=_api(shop)).json()
    assert policy["event_purposes"] == {"Order Completed": "necessary", "$identify": "necessary"}
    assert policy["anonymous_counting"] and not policy["honour_gpc"]
    refused = _post(
        client,
        shop,
        "/consent/policy",
        {
            "event": ["Ad Clicked", ""],
            "purpose": ["adverts", "marketing"],
            "default_purpose": "statistics",
        },
    )
    assert refused.status_code == 400
    assert _problem(refused.text, "purpose-0") and _problem(refused.text, "event-1")
    assert _value(refused.text, "event") == "Ad Clicked"
    assert client.get("/api/consent/policy", headers=_api(shop)).json() == policy


def _employee(store: Store, keys: Bootstrap, email: str, tasks: list[str]) -> tuple[str, str]:
    """A signed-in employee holding `tasks` on the business's pixel: (session, CSRF token)."""
    with store.write() as conn:
        owner = people.sign_up(conn, email=f"owner-{email}", name="Owner", password="p" * 12)
        conn.execute(
            service.memberships.insert().values(
                business_id=keys.business_id,
                person_id=owner.id,
                role="admin",
                created_at=service.utcnow(),
            )
        )
        person = people.sign_up(conn, email=email, name="Employee", password="p" * 12)
        invitation = team.invite(
            conn,
            business_id=keys.business_id,
            data=InvitationIn(email=email, role="employee", grants={keys.source_id: tasks}),
            invited_by=owner.id,
            days=7,
            by=Access(business_id=keys.business_id, role="admin"),
            actor=SYSTEM,
            ip=None,
        )
        team.accept_invitation(conn, token=invitation.token, person_id=person.id, ip=None)
        token = people.start_session(conn, person_id=person.id, stage="full", ip=None, hours=1)
        session = people.session_for(conn, token=token)
    assert session is not None
    return token, session.csrf_token


def _state(client: TestClient, keys: Bootstrap) -> list[Any]:
    return [
        client.get(path, headers=_api(keys)).json()
        for path in (
            "/api/consent/properties",
            "/api/consent/properties/shop/notices",
            "/api/consent/purposes",
            "/api/consent/vendors",
            "/api/consent/geo-rules",
            "/api/consent/policy",
        )
    ]


def test_an_employee_without_the_consent_task_changes_nothing(
    client: TestClient, shop: Bootstrap, store: Store
) -> None:
    before = _state(client, shop)
    posts = [
        ("/consent/properties", {**PROPERTY, "key": "other"}),
        ("/consent/properties/shop", {**PROPERTY, "name": "Hijacked"}),
        (
            "/consent/properties/shop/banner",
            {"layout": "box", "background": "#000", "text": "#fff", "accent": "#f00"},
        ),
        (
            "/consent/properties/shop/texts",
            {
                "language": "fr",
                "text_title": "Pirate",
                "text_description": "x",
                "text_accept_all": "x",
                "text_reject_all": "x",
                "text_customise": "x",
                "text_save": "x",
            },
        ),
        ("/consent/purposes", {"key": "evil", "lang": "en", "name": "Evil", "position": "1"}),
        ("/consent/purposes/marketing", {"lang": "en", "name": "Renamed", "position": "1"}),
        ("/consent/vendors", {"key": "evil", "name": "Evil"}),
        ("/consent/vendors/evil", {"name": "Evil"}),
        ("/consent/geo-rules", {"region": "*", "regime": "default"}),
        ("/consent/geo-rules/delete", {"region": "DE"}),
        ("/consent/policy", {"default_purpose": "necessary"}),
    ]
    # An employee who may analyse one pixel reaches no consent page (they are the whole
    # business's: issue 19 item 4), and changes nothing.
    analyst, analyst_csrf = _employee(store, shop, "analyst@acme.test", ["analyse"])
    client.cookies.set(SESSION_COOKIE, analyst)
    headers = {"accept": "text/html", "x-csrf-token": analyst_csrf}
    for path in ("/consent", "/consent/properties/shop/banner", "/consent/purposes"):
        assert client.get(path, headers=headers).status_code == 403, path
    for path, data in posts:
        response = client.post(path, data=data, headers=headers, follow_redirects=False)
        assert response.status_code in (403, 404), (path, response.status_code)
    gvl = client.post(
        "/consent/gvl",
        files={"file": ("v.json", (VECTORS / "gvl-v3-sample.json").read_bytes())},
        headers=headers,
    )
    assert gvl.status_code == 403
    # One without any task reaches no consent page at all.
    nobody, nobody_csrf = _employee(store, shop, "nobody@acme.test", [])
    client.cookies.set(SESSION_COOKIE, nobody)
    headers = {"accept": "text/html", "x-csrf-token": nobody_csrf}
    for path in (
        "/consent",
        "/consent/properties/shop/texts",
        "/consent/vendors",
        "/consent/properties/shop/preview",
    ):
        assert client.get(path, headers=headers).status_code == 403, path
    for path, data in posts:
        response = client.post(path, data=data, headers=headers, follow_redirects=False)
        assert response.status_code in (403, 404), (path, response.status_code)
    client.cookies.clear()
    assert _state(client, shop) == before


def test_a_signed_in_admin_uses_the_forms_with_their_csrf_token(client: TestClient) -> None:
    browser = sign_up(client, "dpo@acme.test")
    create_business(browser)
    nav = browser.get("/consent").text
    assert 'href="/consent/purposes"' in nav and 'href="/consent/geo-rules"' in nav
    forged = client.post(
        "/consent/properties",
        data=PROPERTY,
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    created = browser.submit("/consent", "/consent/properties", PROPERTY)
    assert created.status_code == 200 and "Property shop created" in created.text
    rule = browser.submit(
        "/consent/geo-rules", "/consent/geo-rules", {"region": "CH", "regime": "gdpr"}
    )
    assert rule.status_code == 200 and "CH now follows gdpr" in rule.text
