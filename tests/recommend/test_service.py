"""Training on a small shop (SQLite and PostgreSQL): the tables it writes, its holdout
quality, and what the endpoint, the preview, pages and templates answer from them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from accord.accounts.models import Bootstrap, SourceRef
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.consent import config
from accord.consent.models import PropertyIn
from accord.consent.service import record_consent
from accord.core.settings import Settings
from accord.engine.connection import connect
from accord.journeys import outbox
from accord.journeys.graph import Message
from accord.messaging.templates import compile_template, personalisation, recommender
from accord.process.worker import drain
from accord.profiles.service import find_profile_id
from accord.recommend import catalogue
from accord.recommend.service import runs, train
from accord.store.db import Store
from tests.recommend.shop import PRODUCTS, history

END = datetime(2026, 11, 1, tzinfo=UTC)


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _consent(store: Store, business_id: str, person: int, granted: bool) -> None:
    with store.write() as conn:
        record_consent(
            conn,
            business_id=business_id,
            property_key="web",
            purposes={"preferences": granted, "statistics": True},
            source="api",
            anonymous_id=f"a-{person}",
        )


@pytest.fixture
def trained(store: Store, keys: Bootstrap, settings: Settings) -> Bootstrap:
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(
        store, source=source, events=history(40, end=END), gate=KeepEverything(), received_at=END
    )
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=5000, lease=timedelta(minutes=5))
    with store.write() as conn:
        config.create_property(
            conn, business_id=keys.business_id, spec=PropertyIn(key="web", name="Web")
        )
        catalogue.upsert(
            conn,
            business_id=keys.business_id,
            items=[
                catalogue.Product(
                    product_id=p, name=f"Product {p}", url=f"https://shop.example/{p}"
                )
                for products in PRODUCTS.values()
                for p in products
            ],
        )
    _consent(store, keys.business_id, 0, True)  # person 0 (jackets) allows personalisation
    _consent(store, keys.business_id, 1, False)  # person 1 (boots) refused it
    report = train(
        store,
        business_id=keys.business_id,
        backend=connect("duckdb://"),
        lake_url=settings.resolved_lake_url(),
        now=END,
        models=("popularity", "cooccurrence"),
    )
    assert report.model == "cooccurrence"
    assert report.counts["people_with_history"] == 1  # only who allowed personalisation
    quality = {q.model: q for q in report.evaluation.qualities} if report.evaluation else {}
    # Everyone keeps to one category: co-occurrence finds it, popularity cannot.
    assert quality["cooccurrence"].hit_rate > quality["popularity"].hit_rate + 0.3
    assert quality["cooccurrence"].people == 40
    return keys


def _endpoint_personal_only_with_consent(client: TestClient, trained: Bootstrap) -> None:
    auth = _basic(trained.write_key)
    mine = client.get("/v1/recommendations", params={"userId": "u-0", "limit": 2}, headers=auth)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["personalised"] is True and body["basis"] == "personal"
    jackets = set(PRODUCTS["jackets"])
    # Person 0 bought three of the five jackets: the two others, never a bought one.
    assert {i["product_id"] for i in body["items"]} == jackets - _bought(0)
    assert all(i["source"] == "personal" for i in body["items"])
    assert body["items"][0]["url"].startswith("https://shop.example/")

    refused = client.get("/v1/recommendations", params={"anonymousId": "a-1"}, headers=auth).json()
    popular = client.get("/v1/recommendations", params={"userId": "nobody"}, headers=auth).json()
    assert refused["personalised"] is False and refused["basis"] == "popular"
    assert any("no preferences consent" in note for note in refused["notes"])
    assert {i["source"] for i in refused["items"]} == {"popular"}
    # Without consent, exactly the popular list an unknown person gets.
    assert [i["product_id"] for i in refused["items"]] == [
        i["product_id"] for i in popular["items"]
    ]
    assert len(refused["items"]) == 10

    # With a product context: its neighbours first; an unknown product is ignored, noted.
    on_page = client.get(
        "/v1/recommendations",
        params={"userId": "u-0", "context": "product:boo-1", "limit": 2},
        headers=auth,
    ).json()
    assert {i["source"] for i in on_page["items"]} == {"context"}
    assert {i["product_id"] for i in on_page["items"]} <= set(PRODUCTS["boots"])
    unknown = client.get(
        "/v1/recommendations",
        params={"userId": "u-0", "context": "product:nope"},
        headers=auth,
    ).json()
    assert any("unknown product context 'nope'" in note for note in unknown["notes"])


def _withdrawal_counts_at_once(client: TestClient, trained: Bootstrap, store: Store) -> None:
    auth = _basic(trained.write_key)
    before = client.get("/v1/recommendations", params={"userId": "u-0"}, headers=auth).json()
    _consent(store, trained.business_id, 0, False)
    after = client.get("/v1/recommendations", params={"userId": "u-0"}, headers=auth).json()
    assert before["personalised"] is True and after["personalised"] is False
    bearer = {"Authorization": f"Bearer {trained.admin_token}"}
    found = client.get("/api/recommendations/runs", headers=bearer).json()
    assert found[0]["status"] == "ok" and found[0]["model"] == "cooccurrence"
    assert {m["model"] for m in found[0]["evaluation"]["models"]} == {"popularity", "cooccurrence"}


def _bought(person: int) -> set[str]:
    return {
        line["product_id"]
        for event in history(40, end=END)
        if event["userId"] == f"u-{person}" and event["event"] == "Order Completed"
        for line in event["properties"]["products"]
    }


BAD_INPUT = [
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"context": "sku:1"}, "context"),
    ({"context": "product:"}, "context"),
    ({"userId": "x" * 256}, "userId"),
]


def test_bad_input_and_write_key(client: TestClient, keys: Bootstrap) -> None:
    for params, field in BAD_INPUT:
        answer = client.get("/v1/recommendations", params=params, headers=_basic(keys.write_key))
        assert answer.status_code == 400, (params, answer.text)
        assert field in answer.text
    assert client.get("/v1/recommendations").status_code == 401
    assert client.get("/v1/recommendations", headers=_basic("wk_nope")).status_code == 401
    ok = client.get("/v1/recommendations", params={"writeKey": keys.write_key})
    assert ok.status_code == 200
    assert ok.json()["items"] == [] and "no training has run yet" in ok.json()["notes"][0]


def test_trained_recommendations(client: TestClient, trained: Bootstrap, store: Store) -> None:
    """One training per store backend, then everything that reads its tables."""
    _endpoint_personal_only_with_consent(client, trained)
    _templates_and_pages(client, trained, store)
    _withdrawal_counts_at_once(client, trained, store)


def _templates_and_pages(client: TestClient, trained: Bootstrap, store: Store) -> None:
    template = compile_template(
        subject="For you",
        html=(
            "{% for p in recommendations(contact, 2) %}"
            "<a href='{{ p.url }}'>{{ p.name }}</a>{% endfor %}"
        ),
        text="",
    )
    with store.read() as conn:
        names = personalisation(
            {"user_id": "u-0"},
            email="zero@example.com",
            recommendations=recommender(conn, business_id=trained.business_id),
        )
        html = template.render(names).html
    assert html.count("<a href=") == 2 and "Product jac-" in html

    # A journey's email step can use them too, for the person the run belongs to.
    with store.read() as conn:
        profile = find_profile_id(
            conn, business_id=trained.business_id, kind="user_id", value="u-0"
        )
        message = Message(
            channel="email",
            subject="{{ contact.name }}, for you",
            body="{% for p in recommendations(contact, 1) %}{{ p.product_id }}{% endfor %}",
        )
        row = SimpleNamespace(
            id="out_1",
            business_id=trained.business_id,
            profile_id=profile,
            run_id="run_1",
            node="send",
            channel="email",
            message="m",
        )
        traits = {"email": "zero@example.com", "name": "Zero"}
        names = outbox._names(conn, row, message, traits)
    sent = outbox._build(row, message, None, names)
    assert not isinstance(sent, str), sent
    assert sent.body in set(PRODUCTS["jackets"]) - _bought(0) and sent.title == "Zero, for you"

    admin = {"Authorization": f"Bearer {trained.admin_token}", "Accept": "text/html"}
    with store.read() as conn:
        profile = find_profile_id(
            conn, business_id=trained.business_id, kind="user_id", value="u-0"
        )
        assert runs(conn, business_id=trained.business_id)[0].status == "ok"
    page = client.get("/recommendations", params={"profile_id": profile}, headers=admin)
    assert page.status_code == 200
    assert 'id="chart-quality"' in page.text and "personal" in page.text
    assert 'id="recently-viewed"' in page.text
    listing = client.get("/recommendations/catalogue", headers=admin)
    assert listing.status_code == 200 and "jac-0" in listing.text
