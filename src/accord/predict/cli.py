"""`accord predict …`: train the prediction models and show their model cards."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.core.settings import Settings
from accord.engine.connection import connect
from accord.predict.service import model_cards, train
from accord.store.db import open_store
from accord.store.migrate import upgrade

predict_app = typer.Typer(help="Predictions written to profiles as traits.", no_args_is_help=True)

Business = Annotated[
    str, typer.Option("--business-id", help="The business (see `accord bootstrap`)")
]


@predict_app.command("train")
def train_models(
    business_id: Business,
    horizon_days: Annotated[int, typer.Option(min=1, help="Purchase / churn horizon")] = 30,
    ltv_months: Annotated[int, typer.Option(min=1, help="Lifetime-value horizon")] = 12,
    engine: Annotated[
        str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")
    ] = None,
) -> None:
    """Train purchase and churn likelihood, lifetime value and category affinity; write the
    scores to profiles and a model card per model (run it on a schedule, daily say)."""
    settings = Settings()
    url = settings.resolved_database_url()
    upgrade(url)
    store = open_store(url, sqlite_synchronous=settings.sqlite_synchronous)
    report = train(
        store,
        business_id=business_id,
        backend=connect(engine or settings.engine_url),
        lake_url=settings.resolved_lake_url(),
        models_dir=settings.data_dir / "models",
        horizon_days=horizon_days,
        ltv_months=ltv_months,
    )
    table = Table("model", "AUC", "baseline AUC", "rows")
    for card in report.cards:
        auc = card.metrics.get("auc")
        base = card.metrics.get("baseline_auc_frequency_only")
        table.add_row(
            card.model,
            "" if auc is None else f"{auc:.3f}",
            "" if base is None else f"{base:.3f}",
            ", ".join(f"{k} {v}" for k, v in card.rows.items()),
        )
    Console().print(table)
    for name, reason in report.skipped.items():
        typer.echo(f"skipped {name}: {reason}")
    typer.echo(f"{report.profiles_updated} profiles updated")


@predict_app.command("cards")
def cards(business_id: Business) -> None:
    """The model cards of the last training, as JSON."""
    settings = Settings()
    found = model_cards(settings.data_dir / "models", business_id=business_id)
    typer.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
