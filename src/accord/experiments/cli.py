"""`accord experiments …`: create, start, load ad logs, simulate, report.

Every `accord` process imports this module, the inbox worker included, so the statistics,
engine and report modules are imported inside the commands that use them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from accord.cli_common import (
    FAILED,
    Business,
    Engine,
    business_store,
    console,
    print_table,
    report_rejected,
)
from accord.core.clock import utcnow
from accord.core.settings import Settings

experiments_app = typer.Typer(
    help="Campaign experiments: designs, ad logs, reports.", no_args_is_help=True
)


@experiments_app.command()
def create(
    design: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Design JSON")],
    business: Business,
) -> None:
    """Save a design (a draft; edit it until you start it)."""
    from accord.experiments import service
    from accord.experiments.models import DesignIn

    with business_store(business) as (store, business_id), store.write() as conn:
        view = service.create_experiment(
            conn,
            business_id=business_id,
            design=DesignIn.model_validate_json(design.read_bytes()),
            now=utcnow(),
        )
    typer.echo(f"created {view.key} (draft)")


@experiments_app.command()
def start(key: str, business: Business) -> None:
    """Freeze the design and its analysis plan, and open assignment."""
    from accord.experiments import service

    with business_store(business) as (store, business_id), store.write() as conn:
        view = service.start_experiment(conn, business_id=business_id, key=key, now=utcnow())
    typer.echo(f"started {view.key}; plan sha256 {view.plan_hash}")


@experiments_app.command("load-logs")
def load_logs(
    key: str,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl/.csv (.gz)")],
    business: Business,
    errors: Annotated[Path | None, typer.Option(help="Write rejected rows here (JSONL)")] = None,
) -> None:
    """Load ad-log records; valid rows are stored, rejected ones listed by line and field."""
    from accord.experiments import adlogs, service

    settings = Settings()
    with business_store(business, settings) as (store, business_id):
        with store.read() as conn:
            experiment = service.get_experiment(conn, business_id=business_id, key=key)
        result = service.load_ad_logs(
            settings.resolved_lake_url(),
            business_id=business_id,
            experiment=experiment,
            records=adlogs.read_records(path),
        )
    print_table(
        "read",
        "stored",
        "rejected rows",
        rows=[(result.read, result.stored, len({r["line"] for r in result.rejected}))],
        err=True,
    )
    report_rejected(result.rejected, errors)
    if result.rejected:
        raise typer.Exit(FAILED)


@experiments_app.command("simulate")
def simulate_logs(
    key: str,
    business: Business,
    users: Annotated[int, typer.Option(min=10)] = 20_000,
    effect: Annotated[
        list[str] | None, typer.Option(help="arm=multiplier of CTR and conversion rate")
    ] = None,
    seed: int = 1,
) -> None:
    """Write simulated ad logs with known effects for a started experiment (demos, tests)."""
    from accord.experiments import adlogs, service
    from accord.experiments.simulate import Scenario, simulate

    settings = Settings()
    with business_store(business, settings) as (store, business_id), store.read() as conn:
        experiment = service.get_experiment(conn, business_id=business_id, key=key)
    design = experiment.design
    effects = {}
    for item in effect or []:
        arm, _, value = item.partition("=")
        effects[arm] = float(value)
    if design.start_day:
        start = datetime.fromisoformat(design.start_day).replace(tzinfo=UTC)
    else:
        start = (experiment.started_at or utcnow()).replace(hour=0, minute=0, second=0)
    table = simulate(
        Scenario(
            arms=[a.key for a in design.arms],
            weights=[a.weight for a in design.arms],
            users=users,
            start=start.replace(microsecond=0),
            effects=effects,
            topics_arms=[a.key for a in design.arms if a.signals.topics],
            seed=seed,
        )
    )
    files = adlogs.write_table(
        settings.resolved_lake_url(), business_id=business_id, experiment_key=key, table=table
    )
    typer.echo(f"wrote {table.num_rows} records in {len(files)} files")


@experiments_app.command("report")
def report_command(
    key: str,
    business: Business,
    out: Annotated[Path, typer.Option(help="HTML report file")] = Path("report.html"),
    csv: Annotated[Path | None, typer.Option(help="Also write the CSV here")] = None,
    engine: Engine = None,
) -> None:
    """Analyse the experiment and write its report (HTML, and CSV if asked).

    Exits with 1 when a gate fails: the report is written, the verdict withheld.
    """
    from accord.engine.connection import connect
    from accord.experiments import report, service

    settings = Settings()
    with business_store(business, settings) as (store, business_id):
        with store.read() as conn:
            experiment = service.get_experiment(conn, business_id=business_id, key=key)
        analysis = service.analyse_experiment(
            connect(engine or settings.engine_url),
            settings.resolved_lake_url(),
            business_id=business_id,
            experiment=experiment,
            now=utcnow(),
        )
    out.write_text(report.render_html(analysis, experiment), encoding="utf-8")
    if csv is not None:
        csv.write_text(report.render_csv(analysis), encoding="utf-8")
    for gate in analysis.gates:
        mark = "[green]passed[/green]" if gate.passed else "[red]FAILED[/red]"
        console.print(f"{gate.name}: {mark} — {gate.detail}")
    typer.echo(f"report written to {out}")
    if analysis.blocked:
        console.print("[red]no verdict:[/red] a gate failed; results are withheld")
        raise typer.Exit(FAILED)
