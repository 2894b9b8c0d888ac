"""Training on demo data: time-based holdout, AUC against the frequency-only baseline,
scores and cohorts written to profiles, model cards, and audiences over predictions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.accounts.models import Bootstrap, SourceRef
from accord.audiences import definitions, service
from accord.audiences.text import parse
from accord.collect.consent_gate import KeepEverything
from accord.collect.service import append
from accord.core.settings import Settings
from accord.demo.generator import generate_n_events
from accord.engine.connection import connect
from accord.predict.service import cohort, model_cards, percentiles, train
from accord.process.worker import drain
from accord.store.db import Store

END = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 90


def test_percentiles_and_cohorts() -> None:
    import numpy as np

    ranks = percentiles(np.array([0.1, 0.9, 0.5, 0.5]))
    assert ranks.tolist() == [25.0, 100.0, 75.0, 75.0]
    assert [cohort(r) for r in (95, 80, 60, 10)] == ["top 10%", "top 25%", "top 50%", "bottom 50%"]


@pytest.mark.slow
def test_train_on_demo_history(
    store: Store, keys: Bootstrap, settings: Settings, tmp_path: Path
) -> None:
    events = list(generate_n_events(40_000, seed=7, start=END - timedelta(days=DAYS), days=DAYS))
    source = SourceRef(business_id=keys.business_id, source_id=keys.source_id)
    append(store, source=source, events=events, gate=KeepEverything(), received_at=END)
    drain(store, lake_url=settings.resolved_lake_url(), batch_size=5000, lease=timedelta(minutes=5))

    report = train(
        store,
        business_id=keys.business_id,
        backend=connect("duckdb://"),
        lake_url=settings.resolved_lake_url(),
        models_dir=tmp_path / "models",
        horizon_days=30,
        now=END,
    )
    cards = {card.model: card for card in report.cards}
    purchase = cards["purchase_likelihood_30d"]
    assert purchase.metrics["auc"] > purchase.metrics["baseline_auc_frequency_only"]
    assert purchase.metrics["auc"] > 0.55
    assert purchase.training_cutoff < purchase.holdout_cutoff < purchase.holdout_end
    assert "order_completed_30d" in purchase.features
    assert purchase.used and "purchase_likelihood_30d" not in report.skipped
    # A model that loses to its baseline on the holdout is reported, not used.
    churn = cards["churn_likelihood_30d"]
    beats = churn.metrics["auc"] > churn.metrics["baseline_auc_frequency_only"]
    assert churn.used == beats
    assert ("churn_likelihood_30d" in report.skipped) == (not beats)
    ltv = cards["predicted_ltv_12m"]
    assert ltv.metrics["r"] > 0 and ltv.rows["repeat_buyers"] > 0
    saved = model_cards(tmp_path / "models", business_id=keys.business_id)
    assert {c["model"] for c in saved} == set(cards)
    assert "predicted_ltv_12m" not in report.skipped

    with store.read() as conn:
        people = service.people(conn, business_id=keys.business_id)
        scored = [p.traits for p in people.values() if "purchase_likelihood_30d" in p.traits]
        assert scored and report.profiles_updated >= len(scored)
        assert all(0 <= t["purchase_likelihood_30d"] <= 1 for t in scored)
        assert {t["purchase_likelihood_30d_cohort"] for t in scored} >= {"top 10%", "bottom 50%"}
        assert any("favourite_category" in p.traits for p in people.values())
        # Predictions are traits: audiences select on them like any other.
        definition = parse("trait purchase_likelihood_30d_percentile > 90")
        _, types = definitions.check_definition(
            conn, business_id=keys.business_id, definition=definition
        )
    assert types == {"purchase_likelihood_30d_percentile": "number"}
