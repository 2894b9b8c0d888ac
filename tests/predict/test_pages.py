"""The predictions page on SQLite and PostgreSQL: nothing trained yet, "Train now" makes
the `predict.train` job due (the worker trains, never the request), then the model cards,
holdout AUC against the baseline, the score distributions and the last training."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from accord.accounts.models import Bootstrap, SourceRef
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.clock import utcnow
from accord.core.settings import Settings
from accord.demo.generator import generate_n_events
from accord.engine.connection import connect
from accord.predict import service
from accord.process.jobs import default_kinds
from accord.process.models import job_runs, jobs
from accord.process.scheduler import Scheduler
from accord.process.worker import drain
from accord.store.db import Store
from tests.accounts.ui import create_business, sign_up
from tests.analytics.pages import figure, join_as_employee, table, tile

HTML = {"accept": "text/html"}
DAYS = 90


def _admin(keys: Bootstrap) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.admin_token}", **HTML}


def _history(store: Store, keys: Bootstrap, settings: Settings) -> None:
    """90 days of demo shoppers, enough to train the purchase and lifetime-value models.

    This tests the page, not the model: at 6,000 events (about 250 people) the holdout AUC
    swings with the draw (seed 7 of today's generator gives 0.37, below its baseline, and
    the page rightly shows the model unused), so the draw is one whose model is used."""
    now = utcnow()
    events = list(generate_n_events(6_000, seed=1, start=now - timedelta(days=DAYS), days=DAYS))
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(store, source=source, events=events, gate=KeepEverything(), received_at=now)
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=5000, lease=timedelta(minutes=5))


def test_train_now_queues_the_job_and_the_page_shows_what_it_trained(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    _history(store, keys, settings)
    before = client.get("/predictions", headers=_admin(keys))
    assert before.status_code == 200
    assert 'id="not-trained"' in before.text and 'action="/predictions/train"' in before.text
    assert "data-chart" not in before.text

    queued = client.post("/predictions/train", headers=_admin(keys), follow_redirects=False)
    assert queued.status_code == 303
    assert queued.headers["location"].startswith("/predictions?notice=")
    # Asking trains nothing: the job is due, the worker runs it.
    assert service.model_cards(settings.data_dir / "models", business_id=keys.business_id) == []
    with store.read() as conn:
        due = conn.execute(
            select(jobs.c.next_due_at).where(
                jobs.c.business_id == keys.business_id, jobs.c.name == "predict.train"
            )
        ).scalar_one()
        assert conn.execute(select(job_runs.c.id)).first() is None
    assert due <= utcnow()

    kind = default_kinds()["predict.train"]
    Scheduler(store, settings, {kind.name: kind}).run_until_idle(timeout=300)

    page = client.get("/predictions", headers=_admin(keys))
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="not-trained"' not in html
    cards = {
        c["model"]: c
        for c in service.model_cards(settings.data_dir / "models", business_id=keys.business_id)
    }
    purchase = cards["purchase_likelihood_30d"]
    auc = table(html, "chart-auc")
    assert auc["purchase_likelihood_30d"] == [
        f"{purchase['metrics']['auc']:,.2f}",
        f"{purchase['metrics']['baseline_auc_frequency_only']:,.2f}",
    ]
    assert f"AUC {purchase['metrics']['auc']:.3f}" in html
    assert figure(html, "chart-auc")["data"][0]["y"][0] == purchase["metrics"]["auc"]

    # The histogram counts every profile carrying the score, and its table agrees.
    histogram = figure(html, "chart-purchase_likelihood_30d")["data"][0]
    scored = sum(histogram["y"])
    assert scored == purchase["rows"]["scored"] > 0
    assert f"{scored:,} profiles carry <code>purchase_likelihood_30d</code>" in html
    cells = table(html, "chart-purchase_likelihood_30d")
    assert list(cells) == [f"{i * 10}–{(i + 1) * 10} %" for i in range(10)]
    assert sum(int(v[0].replace(",", "")) for v in cells.values()) == scored
    ltv = figure(html, "chart-predicted_ltv_12m")["data"][0]["y"]
    assert len(ltv) == 10 and ltv == sorted(ltv)

    last = service.last_training(settings.data_dir / "models", business_id=keys.business_id)
    assert last is not None and last["models"]["purchase_likelihood_30d"] is True
    assert tile(html, "kpi-profiles-scored") == f"{last['profiles_updated']:,}"
    assert tile(html, "kpi-duration") == f"{last['seconds']:.1f} s"
    for name, reason in last["skipped"].items():
        assert f"<code>{name}</code>: {reason}" in html
    runs = table(html, "chart-training-runs")
    assert len(runs) == 1 and next(iter(runs)).endswith("succeeded")
    assert '<span class="badge ok">succeeded</span>' in html


def test_an_employee_without_the_permissions_reads_and_trains_nothing(
    client: TestClient, store: Store, settings: Settings
) -> None:
    owner = sign_up(client, "ann@acme.test")
    business_id = create_business(owner)
    employee = join_as_employee(client, owner, "bob@acme.test")
    assert employee.get("/predictions").status_code == 403
    refused = employee.submit("/app", "/predictions/train", {})
    assert refused.status_code == 403

    pixel = owner.submit("/assets", "/assets/pixels", {"name": "Shop"})
    assert pixel.status_code == 200
    from accord.accounts.models import sources

    with store.read() as conn:
        shop = conn.execute(select(sources.c.id).where(sources.c.name == "Shop")).scalar_one()
    # A task on one pixel opens that pixel only (issue 19, item 4).
    tasked = join_as_employee(client, owner, "cat@acme.test", {shop: "analyse"})
    assert tasked.get("/predictions").status_code == 403
    analyst = join_as_employee(client, owner, "dan@acme.test", role="analyst")
    page = analyst.get("/predictions")
    assert page.status_code == 200
    # Reading reports does not run jobs: no button, and a forged post is refused.
    assert 'action="/predictions/train"' not in page.text
    assert analyst.submit("/predictions", "/predictions/train", {}).status_code == 403
    with store.read() as conn:
        assert (
            conn.execute(select(jobs.c.id).where(jobs.c.business_id == business_id)).first() is None
        )
    assert owner.get("/predictions").text.count('action="/predictions/train"') == 1


def test_a_training_that_could_train_nothing_says_why(
    client: TestClient, keys: Bootstrap, store: Store, settings: Settings
) -> None:
    report = service.train(
        store,
        business_id=keys.business_id,
        backend=connect("duckdb://"),
        lake_url=settings.resolved_lake_url(),
        models_dir=settings.data_dir / "models",
    )
    assert report.cards == [] and report.skipped
    page = client.get("/predictions", headers=_admin(keys))
    assert page.status_code == 200
    assert 'id="not-trained"' in page.text and "could not train any model" in page.text
    for name, reason in report.skipped.items():
        assert f"<code>{name}</code>: {reason}" in page.text
    assert 'action="/predictions/train"' in page.text
