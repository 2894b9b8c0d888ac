"""Consent over HTTP: configuration, the banner's config, decisions, errors, proofs, exports."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap
from accord.consent.ledger import canonical_json
from accord.consent.models import NOTICE_TEXT_KEYS
from accord.web.cmp import default_texts


def admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}"}


def basic(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


@pytest.fixture
def shop(client: TestClient, keys: Bootstrap) -> TestClient:
    response = client.post(
        "/api/consent/properties", json={"key": "shop-web", "name": "Shop"}, headers=admin(keys)
    )
    assert response.status_code == 200, response.text
    response = client.post(
        "/api/consent/properties/shop-web/notices",
        json={
            "variants": [
                {
                    "texts": {
                        "en": {"title": "Privacy", "accept_all": "Accept all"},
                        "de": {"title": "Datenschutz", "accept_all": "Alle akzeptieren"},
                    }
                }
            ]
        },
        headers=admin(keys),
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    return client


def config_of(client: TestClient, keys: Bootstrap, **headers: str) -> dict[str, Any]:
    response = client.get(
        "/v1/consent/config",
        params={"writeKey": keys.write_key, "property": "shop-web"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_config_follows_language_country_and_gpc(shop: TestClient, keys: Bootstrap) -> None:
    body = config_of(shop, keys, **{"Accept-Language": "de-DE,de;q=0.9", "CF-IPCountry": "DE"})
    assert body["regime"] == "gdpr" and body["requires_opt_in"] and body["country"] == "DE"
    notice = body["notice"]
    assert notice["language"] == "de" and notice["languages"] == ["de", "en"]
    assert notice["texts"]["title"] == "Datenschutz"
    assert notice["texts"]["reject_all"] == "Reject all"  # missing keys fall back
    shown = [
        {"description": p["description"], "key": p["key"], "name": p["name"]}
        for p in body["purposes"]
    ]
    # The hash covers the published notice's own texts, what the ledger and a proof can
    # check against the stored version; the GPC sentence is Accord's shipped text, added
    # for the banner alongside them and not part of the notice.
    assert notice["texts"]["gpc_notice"] == default_texts("de")["gpc_notice"]
    own = {key: value for key, value in notice["texts"].items() if key != "gpc_notice"}
    assert set(own) == set(NOTICE_TEXT_KEYS)
    expected = hashlib.sha256(canonical_json({"purposes": shown, "texts": own})).hexdigest()
    assert notice["text_hash"] == expected
    assert [p["key"] for p in body["purposes"]] == [
        "necessary",
        "preferences",
        "statistics",
        "marketing",
    ]
    marketing = body["purposes"][-1]
    assert marketing["tcf_purposes"] == [1, 2, 3, 4] and "ad_storage" in marketing["consent_mode"]

    ccpa = config_of(shop, keys, **{"CF-IPCountry": "US", "Sec-GPC": "1"})
    assert ccpa["regime"] == "ccpa" and ccpa["show_do_not_sell"] and ccpa["gpc"]
    assert not ccpa["requires_opt_in"]
    # Without the header the offline IP table is used; the test client has no IP.
    assert config_of(shop, keys)["regime"] == "gdpr"


def test_item_14_the_banner_is_strictest_where_the_location_is_unknown(
    shop: TestClient, keys: Bootstrap
) -> None:
    """No country (the test client has no IP): opt-in, so no marketing tag runs before a
    choice; each business may set its own rule for unknown locations ("XX") or "*"."""
    unknown = config_of(shop, keys)
    assert unknown["regime"] == "gdpr" and unknown["requires_opt_in"]
    assert config_of(shop, keys, **{"CF-IPCountry": "JP"})["regime"] == "default"
    h = {"Authorization": f"Bearer {keys.admin_token}"}
    shop.put("/api/consent/geo-rules/XX", json={"regime": "ccpa"}, headers=h).raise_for_status()
    assert config_of(shop, keys)["regime"] == "ccpa"
    shop.delete("/api/consent/geo-rules/XX", headers=h).raise_for_status()
    shop.put("/api/consent/geo-rules/*", json={"regime": "default"}, headers=h).raise_for_status()
    assert config_of(shop, keys)["regime"] == "default"


def test_config_response_headers_and_errors(shop: TestClient, keys: Bootstrap) -> None:
    response = shop.get(
        "/v1/consent/config", params={"writeKey": keys.write_key, "property": "shop-web"}
    )
    assert "Accept-Language" in response.headers["vary"]
    assert response.headers["access-control-allow-origin"] == "*"
    wrong = shop.get("/v1/consent/config", params={"writeKey": "nope", "property": "shop-web"})
    assert wrong.status_code == 401
    missing = shop.get(
        "/v1/consent/config", params={"writeKey": keys.write_key, "property": "other"}
    )
    assert missing.status_code == 404


def decision(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "anonymousId": "anon-1",
        "property": "shop-web",
        "language": "en",
        "source": "banner",
        "purposes": {"statistics": True, "marketing": False},
    }
    body.update(overrides)
    return body


def test_a_decision_is_recorded_and_readable(shop: TestClient, keys: Bootstrap) -> None:
    config = config_of(shop, keys, **{"CF-IPCountry": "FR"})
    notice = config["notice"]
    response = shop.post(
        "/v1/consent",
        json=decision(
            notice={
                "id": notice["id"],
                "version": notice["version"],
                "variant": notice["variant"],
                "text_hash": notice["text_hash"],
            }
        ),
        headers={**basic(keys.write_key), "CF-IPCountry": "FR", "User-Agent": "Mozilla/5.0"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["hash"]) == 64 and body["record_id"].startswith("cr_")
    state = body["state"]
    assert state["regime"] == "gdpr" and state["notice_version"] == 2
    assert state["purposes"] == {"necessary": True, "statistics": True, "marketing": False}
    assert state["text_hash"] == notice["text_hash"]

    # The write key may also come in the body, as for collection.
    again = shop.post(
        "/v1/consent",
        json=decision(writeKey=keys.write_key, purposes={"marketing": True}),
    )
    assert again.status_code == 200, again.text
    read = shop.get("/v1/consent/anon-1", headers=basic(keys.write_key))
    assert read.status_code == 200
    assert read.json()["purposes"]["marketing"] is True
    assert shop.get("/v1/consent/nobody", headers=basic(keys.write_key)).status_code == 404
    assert shop.get("/v1/consent/anon-1", headers=basic("wk_wrong")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (decision(purposes={"astrology": True}), "purposes.astrology"),
        (decision(property="unknown-site"), "property"),
        (decision(tcString="this is not base64url"), "tcString"),
        (decision(purposes={"necessary": False}), "purposes.necessary"),
        (decision(anonymousId=None), "anonymousId"),
        (decision(source="fax"), "source"),
        (decision(notice={"id": "ntc_unknown"}), "notice.id"),
        (decision(purposes={"marketing": "yes please"}), "purposes.marketing"),
        (decision(extra=1), "extra"),
    ],
)
def test_bad_decisions_get_a_clear_400(
    shop: TestClient, keys: Bootstrap, body: dict[str, Any], field: str
) -> None:
    response = shop.post("/v1/consent", json=body, headers=basic(keys.write_key))
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["code"] == "invalid_input"
    assert field in [p["field"] for p in payload["problems"]], payload


def test_a_laxer_regime_than_the_place_is_refused(shop: TestClient, keys: Bootstrap) -> None:
    here = {**basic(keys.write_key), "CF-IPCountry": "DE"}
    lax = shop.post("/v1/consent", json=decision(regime="ccpa"), headers=here)
    assert lax.status_code == 400 and lax.json()["problems"][0]["field"] == "regime"
    strict = shop.post("/v1/consent", json=decision(regime="gdpr"), headers=here)
    assert strict.status_code == 200
    elsewhere = shop.post(
        "/v1/consent", json=decision(regime="uk_gdpr"), headers=basic(keys.write_key)
    )
    assert elsewhere.json()["state"]["regime"] == "uk_gdpr"


def test_transport_errors(shop: TestClient, keys: Bootstrap) -> None:
    wrong_key = shop.post("/v1/consent", json=decision(), headers=basic("wk_nope"))
    assert wrong_key.status_code == 401 and wrong_key.json()["code"] == "unknown_write_key"
    big = decision(vendors={str(i): True for i in range(1, 4000)})
    too_big = shop.post(
        "/v1/consent",
        content=orjson.dumps(big),
        headers={**basic(keys.write_key), "Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    form = shop.post(
        "/v1/consent",
        content=b"a=b",
        headers={**basic(keys.write_key), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    forged_hash = shop.post(
        "/v1/consent",
        json=decision(notice={"id": config_of(shop, keys)["notice"]["id"], "text_hash": "0" * 64}),
        headers=basic(keys.write_key),
    )
    assert forged_hash.status_code == 400
    assert forged_hash.json()["problems"][0]["field"] == "notice.text_hash"
    german = config_of(shop, keys, **{"Accept-Language": "de"})["notice"]
    wrong_language = shop.post(
        "/v1/consent",
        json=decision(notice={"id": german["id"], "text_hash": german["text_hash"]}),
        headers=basic(keys.write_key),
    )
    assert wrong_language.status_code == 400
    assert "'de' text, not of 'en'" in wrong_language.json()["problems"][0]["reason"]
    verify = shop.get("/api/consent/verify", headers=admin(keys)).json()
    assert verify["ok"] and verify["records"] == 0  # nothing refused was recorded


def test_published_versions_never_change(shop: TestClient, keys: Bootstrap) -> None:
    before = shop.get("/api/consent/properties/shop-web/notices", headers=admin(keys)).json()
    shop.put(
        "/api/consent/purposes/marketing",
        json={"texts": {"en": {"name": "Ads", "description": "Changed"}}, "tcf_purposes": [1]},
        headers=admin(keys),
    ).raise_for_status()
    shop.post(
        "/api/consent/properties/shop-web/notices",
        json={"variants": [{"texts": {"en": {"title": "New"}}}]},
        headers=admin(keys),
    ).raise_for_status()
    after = shop.get("/api/consent/properties/shop-web/notices", headers=admin(keys)).json()
    assert after[: len(before)] == before
    assert [n["version"] for n in after] == [1, 2, 3]
    newest = config_of(shop, keys)
    assert newest["notice"]["version"] == 3
    assert newest["purposes"][-1]["name"] == "Ads"
    assert newest["notice"]["text_hash"] != before[-1]["text_hashes"]["en"]


def test_admin_configuration_routes(shop: TestClient, keys: Bootstrap) -> None:
    h = admin(keys)
    custom = shop.put(
        "/api/consent/purposes/personalised_offers",
        json={"texts": {"en": {"name": "Offers"}}, "consent_mode": ["ad_personalization"]},
        headers=h,
    )
    assert custom.status_code == 200, custom.text
    bad = shop.put("/api/consent/purposes/x", json={"texts": {}, "tcf_purposes": [12]}, headers=h)
    assert bad.status_code == 400
    vendor = shop.put(
        "/api/consent/vendors/crm",
        json={"name": "Our CRM", "purposes": ["marketing", "personalised_offers"]},
        headers=h,
    )
    assert vendor.status_code == 200, vendor.text
    assert (
        shop.put(
            "/api/consent/vendors/x", json={"name": "X", "purposes": ["nope"]}, headers=h
        ).status_code
        == 400
    )
    gvl = {
        "gvlSpecificationVersion": 3,
        "tcfPolicyVersion": 5,
        "lastUpdated": "2026-01-01T00:00:00Z",
        "purposes": {},
        "specialPurposes": {},
        "features": {},
        "specialFeatures": {},
        "vendorListVersion": 123,
        "vendors": {
            "755": {
                "id": 755,
                "name": "Google",
                "purposes": [1, 3, 4],
                "legIntPurposes": [7],
                "urls": [{"langId": "en", "privacy": "https://policies.example/privacy"}],
            },
            "1": {"id": 1, "name": "Gone", "purposes": [1], "deletedDate": "2020-01-01T00:00:00Z"},
            "2": {"id": 2, "name": "Other", "purposes": [9]},
        },
    }
    imported = shop.post(
        "/api/consent/vendors/gvl?tcf_ids=755,1", content=orjson.dumps(gvl), headers=h
    )
    assert imported.json() == {"imported": 1, "gvl_version": 123}
    vendors = {v["id"]: v for v in shop.get("/api/consent/vendors", headers=h).json()}
    assert vendors["755"]["purposes"] == ["statistics", "marketing"]
    assert vendors["755"]["policy_url"] == "https://policies.example/privacy"
    broken = shop.post("/api/consent/vendors/gvl", content=b'{"vendors": 1}', headers=h)
    assert broken.status_code == 400 and broken.json()["problems"]
    assert (
        shop.put("/api/consent/geo-rules/ZZ-1", json={"regime": "gdpr"}, headers=h).status_code
        == 200
    )
    assert (
        shop.put("/api/consent/geo-rules/*", json={"regime": "gdpr"}, headers=h).status_code == 200
    )
    assert (
        shop.put("/api/consent/geo-rules/US", json={"regime": "mars"}, headers=h).status_code == 400
    )
    assert config_of(shop, keys)["regime"] == "gdpr"  # unknown country: the "*" rule
    assert config_of(shop, keys, **{"CF-IPCountry": "US"})["regime"] == "ccpa"
    assert shop.delete("/api/consent/geo-rules/*", headers=h).status_code == 200
    assert config_of(shop, keys)["regime"] == "gdpr"  # unknown country: the strictest
    assert config_of(shop, keys, **{"CF-IPCountry": "JP"})["regime"] == "default"
    policy = shop.put(
        "/api/consent/policy", json={"event_purposes": {"Ad Clicked": "marketing"}}, headers=h
    )
    assert policy.status_code == 200
    assert shop.get("/api/consent/policy", headers=h).json()["event_purposes"] == {
        "Ad Clicked": "marketing"
    }
    assert shop.get("/api/consent/purposes").status_code == 401


def test_proof_export_and_analytics(shop: TestClient, keys: Bootstrap) -> None:
    notice = config_of(shop, keys)["notice"]
    ref = {"id": notice["id"], "text_hash": notice["text_hash"]}
    for subject, marketing in (("a1", True), ("a2", False), ("a3", True)):
        shop.post(
            "/v1/consent",
            json=decision(anonymousId=subject, notice=ref, purposes={"marketing": marketing}),
            headers=basic(keys.write_key),
        ).raise_for_status()
    shop.post(  # a3 withdraws
        "/v1/consent",
        json=decision(anonymousId="a3", source="preference_centre", purposes={"marketing": False}),
        headers=basic(keys.write_key),
    ).raise_for_status()
    h = admin(keys)
    csv_text = shop.get("/api/consent/export", params={"purpose": "marketing"}, headers=h).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("identifier_kind,identifier,granted_at")
    assert [line.split(",")[1] for line in lines[1:]] == ["a1"]

    proof = shop.get("/api/consent/subjects/a3/proof", headers=h).json()
    assert proof["chain"]["ok"] and len(proof["records"]) == 2
    assert proof["records"][0]["text_hash_matches"] is True
    assert proof["state"]["purposes"]["marketing"] is False
    html = shop.get("/api/consent/subjects/a3/proof?format=html", headers=h)
    assert html.headers["content-type"].startswith("text/html")
    assert "Proof of consent" in html.text and "preference_centre" in html.text
    assert "<script" not in html.text
    assert shop.get("/api/consent/subjects/zz/proof", headers=h).status_code == 404

    rates = shop.get("/api/consent/analytics", params={"by": "choice"}, headers=h).json()
    by_choice = {r["choice"]: r for r in rates if r["purpose"] == "marketing"}
    assert by_choice["first"]["decisions"] == 3 and by_choice["first"]["granted"] == 2
    assert by_choice["change"]["decisions"] == 1 and by_choice["change"]["granted"] == 0
    assert shop.get("/api/consent/analytics?by=shoe_size", headers=h).status_code == 400
