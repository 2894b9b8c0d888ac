"""`accord demo` on a fresh data directory: the administrator signs in through the pages
and lands in the demo business, and every area holds what the demo promises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from accord.analytics import reports
from accord.audiences.activation import export_audience
from accord.audiences.definitions import definition_from, get_audience
from accord.audiences.refresh import preview
from accord.cli import app
from accord.consent.service import opt_in_report
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.demo.activation import AUDIENCES, EXPERIMENT, JOURNEY
from accord.demo.email import CAMPAIGN
from accord.demo.generator import CATALOG
from accord.engine.connection import connect
from accord.experiments import service as experiments
from accord.journeys import analytics as journey_analytics
from accord.journeys import service as journeys
from accord.leads.submissions import list_leads
from accord.messaging import campaigns, kpis
from accord.predict.service import model_cards
from accord.recommend import catalogue, serving
from accord.recommend import service as recommend
from accord.recommend.models import recommendation_histories
from accord.store.db import Store, open_store
from accord.web.app import create_app
from tests.accounts.ui import Browser

EVENTS = "4000"


@dataclass
class Seeded:
    settings: Settings
    env: dict[str, str]
    printed: dict[str, Any]
    store: Store

    @property
    def business_id(self) -> str:
        return str(self.printed["business_id"])


def run_demo(env: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["demo", "--events", EVENTS, "--json"], env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    printed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return printed


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data = tmp_path_factory.mktemp("demo")
    settings = Settings(
        data_dir=data,
        lake_url=str(data / "lake"),
        engine_url="duckdb://",
        worker_inline=False,
        sqlite_synchronous="NORMAL",
    )
    env = {
        "ACCORD_DATA_DIR": str(data),
        "ACCORD_LAKE_URL": str(data / "lake"),
        "ACCORD_ENGINE_URL": "duckdb://",
        "ACCORD_PORT": "8123",
        "COLUMNS": "200",
    }
    printed = run_demo(env)
    store = open_store(settings.resolved_database_url(), sqlite_synchronous="NORMAL")
    yield Seeded(settings, env, printed, store)
    store.dispose()


def test_the_printed_sign_in_lands_on_the_demo_business_overview(seeded: Seeded) -> None:
    sign_in = seeded.printed["sign_in"]
    assert sign_in["email"] == "admin@demo.accord.test"
    assert sign_in["url"] == "http://127.0.0.1:8123/sign-in"
    assert len(sign_in["password"]) >= 20
    with TestClient(create_app(seeded.settings)) as client:
        browser = Browser(client)
        landed = browser.submit(
            "/sign-in",
            "/sign-in",
            {"email": sign_in["email"], "password": sign_in["password"]},
        )
        assert landed.status_code == 200, landed.text
        assert landed.url.path == "/app"
        assert "Accord Demo Outfitters" in landed.text


def test_running_again_changes_the_password_and_adds_nothing(seeded: Seeded) -> None:
    def made(conn: Any) -> tuple[int, int, int, int]:
        business_id = seeded.business_id
        total, _, _ = catalogue.listing(conn, business_id=business_id, limit=1)
        return (
            len(list_leads(conn, business_id=business_id, limit=10_000)),
            len(reports.list_reports(conn, business_id=business_id)),
            len(recommend.runs(conn, business_id=business_id)),
            total,
        )

    with seeded.store.read() as conn:
        before = made(conn)
    again = run_demo(seeded.env)
    assert again["business_id"] == seeded.business_id
    assert again["sign_in"]["password"] != seeded.printed["sign_in"]["password"]
    with seeded.store.read() as conn:
        assert made(conn) == before
        sent = [
            c
            for c in campaigns.list_campaigns(conn, business_id=seeded.business_id, limit=100)
            if c.name == CAMPAIGN
        ]
        assert len(sent) == 1
    with TestClient(create_app(seeded.settings)) as client:
        old = Browser(client).submit(
            "/sign-in",
            "/sign-in",
            {"email": "admin@demo.accord.test", "password": seeded.printed["sign_in"]["password"]},
        )
        assert old.status_code == 401
    seeded.printed = again


def test_the_ledger_holds_banner_decisions_with_opt_in_rates_by_country(seeded: Seeded) -> None:
    rows = opt_in_report(
        seeded.store, business_id=seeded.business_id, by="country", engine_url="duckdb://"
    )
    marketing = {r["country"]: r for r in rows if r["purpose"] == "marketing"}
    assert {"DE", "FR", "GB", "NL"} <= set(marketing)
    big = {c: r["opt_in_rate"] for c, r in marketing.items() if r["decisions"] >= 25}
    assert len(big) >= 3, marketing
    assert all(0.5 <= rate <= 0.8 for rate in big.values()), big
    assert len({round(rate, 2) for rate in big.values()}) > 1, "rates should differ by country"
    by_device = opt_in_report(
        seeded.store, business_id=seeded.business_id, by="device", engine_url="duckdb://"
    )
    assert {r["device"] for r in by_device} >= {"desktop", "mobile"}


def test_leads_came_from_the_form_and_from_lead_ads(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        leads = list_leads(conn, business_id=seeded.business_id, limit=10_000)
    sources = {lead["source"] for lead in leads}
    assert {"form", "lead_ads"} <= sources, sources


def test_the_newsletter_was_sent_opened_clicked_and_bounced(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        [campaign] = [
            c
            for c in campaigns.list_campaigns(conn, business_id=seeded.business_id, limit=100)
            if c.name == CAMPAIGN
        ]
        assert campaign.status == "sent"
        numbers = kpis.campaign_kpis(conn, business_id=seeded.business_id, campaign_id=campaign.id)
    assert numbers.sent > 0
    assert 0 < numbers.human_openers < numbers.sent
    assert 0 < numbers.clickers <= numbers.human_openers
    assert numbers.bounces > 0


def test_the_journey_is_active_with_buyers_inside(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        view = journeys.get_journey(conn, business_id=seeded.business_id, key=JOURNEY)
        summary = journey_analytics.summary(conn, journey_id=view.id)
    assert view.status == "active"
    assert summary.active > 0


def test_the_experiment_is_stopped_and_its_report_has_results(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        view = experiments.get_experiment(conn, business_id=seeded.business_id, key=EXPERIMENT)
    assert view.status == "stopped"
    assert [a.key for a in view.design.arms] == ["treatment", "control_1", "control_2"]
    analysis = experiments.analyse_experiment(
        connect("duckdb://"),
        seeded.settings.resolved_lake_url(),
        business_id=seeded.business_id,
        experiment=view,
        now=utcnow(),
    )
    assert analysis.results


def test_predictions_have_model_cards_and_profiles_carry_scores(seeded: Seeded) -> None:
    cards = model_cards(seeded.settings.data_dir / "models", business_id=seeded.business_id)
    assert {card["model"] for card in cards} >= {"predicted_ltv_12m"}
    scored = preview(
        seeded.store,
        business_id=seeded.business_id,
        definition=definition_from(None, "trait predicted_ltv_12m exists"),
        backend=connect("duckdb://"),
        lake_url=seeded.settings.resolved_lake_url(),
    )
    assert scored.size > 0


def test_the_demo_audiences_were_computed_one_of_them_on_consent(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        views = [
            get_audience(conn, business_id=seeded.business_id, audience=a.slug) for a in AUDIENCES
        ]
    assert all(view.size for view in views), views
    [consented] = [a for a in AUDIENCES if a.text and "consent marketing" in a.text]
    with seeded.store.read() as conn:
        export = export_audience(
            conn,
            business_id=seeded.business_id,
            audience=consented.slug,
            destination="csv",
            purpose="marketing",
        )
    assert export.included > 0


def test_the_catalogue_holds_the_shops_products(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        total, items, _ = catalogue.listing(conn, business_id=seeded.business_id)
    assert total == len(CATALOG)
    shop = {p.product_id: p for p in CATALOG}
    for item in items:
        product = shop[item.product_id]
        assert (item.name, item.category, item.price) == (
            product.name,
            product.category,
            product.price,
        )
        assert item.url and item.url.endswith(f"/p/{product.slug}") and item.in_stock


def test_recommendations_were_trained_once_and_serve_catalogue_products(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        runs = recommend.runs(conn, business_id=seeded.business_id)
        someone = conn.execute(
            select(recommendation_histories.c.profile_id)
            .where(recommendation_histories.c.business_id == seeded.business_id)
            .limit(1)
        ).scalar_one()
        answer = serving.recommend(conn, business_id=seeded.business_id, profile_id=someone)
    [run] = runs
    assert run.status == "ok" and run.model in recommend.SERVED
    assert {m["model"] for m in run.evaluation["models"]} == {"popularity", "cooccurrence", "als"}
    assert run.counts["products_with_neighbours"] > 0
    assert answer.personalised and answer.items
    assert {i.product_id for i in answer.items} <= set(answer.details), "named from the catalogue"


def test_the_example_reports_are_saved_and_computed(seeded: Seeded) -> None:
    with seeded.store.read() as conn:
        saved = {r.kind: r for r in reports.list_reports(conn, business_id=seeded.business_id)}
    assert set(saved) == {"funnels", "paths", "retention", "attribution"}
    assert all(r.error is None and r.result and r.refreshed_at for r in saved.values()), saved
    funnel = saved["funnels"]
    assert funnel.spec["window_seconds"] == 7 * 86_400
    steps = funnel.result["steps"] if funnel.result else []
    assert [s["event"] for s in steps] == ["Product Viewed", "Product Added", "Order Completed"]
    counts = [s["count"] for s in steps]
    assert counts[0] >= counts[1] >= counts[2] > 0, counts
    assert saved["paths"].spec["step"] == {"event": "Product Viewed"}
    assert saved["paths"].result and saved["paths"].result["links"]
    assert saved["retention"].spec["period"] == "week"
    assert saved["retention"].result and saved["retention"].result["cohorts"]
    assert saved["attribution"].spec["model"] == "last_touch"
