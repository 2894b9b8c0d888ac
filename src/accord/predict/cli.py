"""`accord predict …`: train the prediction models and show their model cards."""

from __future__ import annotations

from typing import Annotated

import typer

from accord.cli_common import Business, Engine, business_store, echo_json, print_table
from accord.core.settings import Settings
from accord.engine.connection import connect
from accord.predict.service import model_cards, train

predict_app = typer.Typer(help="Predictions written to profiles as traits.", no_args_is_help=True)


@predict_app.command("train")
def train_models(
    business: Business,
    horizon_days: Annotated[int, typer.Option(min=1, help="Purchase / churn horizon")] = 30,
    ltv_months: Annotated[int, typer.Option(min=1, help="Lifetime-value horizon")] = 12,
    engine: Engine = None,
) -> None:
    """Train purchase and churn likelihood, lifetime value and category affinity; write the
    scores to profiles and a model card per model (run it on a schedule, daily say)."""
    settings = Settings()
    with business_store(business, settings) as (store, business_id):
        report = train(
            store,
            business_id=business_id,
            backend=connect(engine or settings.engine_url),
            lake_url=settings.resolved_lake_url(),
            models_dir=settings.data_dir / "models",
            horizon_days=horizon_days,
            ltv_months=ltv_months,
        )
    rows = []
    for card in report.cards:
        auc = card.metrics.get("auc")
        base = card.metrics.get("baseline_auc_frequency_only")
        rows.append(
            (
                card.model,
                None if auc is None else f"{auc:.3f}",
                None if base is None else f"{base:.3f}",
                ", ".join(f"{k} {v}" for k, v in card.rows.items()),
            )
        )
    print_table("model", "AUC", "baseline AUC", "rows", rows=rows)
    for name, reason in report.skipped.items():
        typer.echo(f"skipped {name}: {reason}")
    typer.echo(f"{report.profiles_updated} profiles updated")


@predict_app.command("cards")
def cards(business: Business) -> None:
    """The model cards of the last training, as JSON."""
    settings = Settings()
    with business_store(business, settings) as (_, business_id):
        found = model_cards(settings.data_dir / "models", business_id=business_id)
    echo_json(found, indent=True)
