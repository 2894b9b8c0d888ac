"""`accord experiments …`: create, start, load ad logs, simulate, report.

Every `accord` process imports this module, the inbox worker included, so the statistics,
engine and report modules are imported inside the commands that use them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.accounts.service import source_for_write_key
from accord.core.clock import utcnow
from accord.core.errors import AccordError, UnknownWriteKey
from accord.core.settings import Settings
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

app = typer.Typer(help="Campaign experiments: designs, ad logs, reports.", no_args_is_help=True)
console = Console(stderr=True)

WriteKey = Annotated[str, typer.Option(help="A write key of the business the experiment is in")]


def _open(write_key: str) -> tuple[Settings, Store, str]:
    settings = Settings()
    upgrade(settings.resolved_database_url())
    store = open_store(settings.resolved_database_url())
    try:
        business_id = source_for_write_key(store, write_key).business_id
    except UnknownWriteKey:
        console.print("[red]error:[/red] no enabled source has that write key")
        raise typer.Exit(code=2) from None
    return settings, store, business_id


def _fail(exc: AccordError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


@app.command()
def create(
    design: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Design JSON")],
    write_key: WriteKey,
) -> None:
    """Save a design (a draft; edit it until you start it)."""
    from accord.experiments import service
    from accord.experiments.models import DesignIn

    _, store, business_id = _open(write_key)
    try:
        with store.write() as conn:
            view = service.create_experiment(
                conn,
                business_id=business_id,
                design=DesignIn.model_validate_json(design.read_bytes()),
                now=utcnow(),
            )
    except AccordError as exc:
        raise _fail(exc) from None
    finally:
        store.dispose()
    typer.echo(f"created {view.key} (draft)")


@app.command()
def start(key: str, write_key: WriteKey) -> None:
    """Freeze the design and its analysis plan, and open assignment."""
    from accord.experiments import service

    _, store, business_id = _open(write_key)
    try:
        with store.write() as conn:
            view = service.start_experiment(conn, business_id=business_id, key=key, now=utcnow())
    except AccordError as exc:
        raise _fail(exc) from None
    finally:
        store.dispose()
    typer.echo(f"started {view.key}; plan sha256 {view.plan_hash}")


@app.command("load-logs")
def load_logs(
    key: str,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".jsonl/.csv (.gz)")],
    write_key: WriteKey,
    errors: Annotated[Path | None, typer.Option(help="Write rejected rows here (JSONL)")] = None,
) -> None:
    """Load ad-log records; valid rows are stored, rejected ones listed by line and field."""
    from accord.experiments import adlogs, service

    settings, store, business_id = _open(write_key)
    try:
        with store.read() as conn:
            experiment = service.get_experiment(conn, business_id=business_id, key=key)
        result = service.load_ad_logs(
            settings.resolved_lake_url(),
            business_id=business_id,
            experiment=experiment,
            records=adlogs.read_records(path),
        )
    except AccordError as exc:
        raise _fail(exc) from None
    finally:
        store.dispose()
    table = Table("read", "stored", "rejected rows")
    table.add_row(
        str(result.read), str(result.stored), str(len({r["line"] for r in result.rejected}))
    )
    console.print(table)
    for problem in result.rejected[:20]:
        console.print(f"line {problem['line']}: {problem['field']}: {problem['reason']}")
    if errors is not None:
        errors.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in result.rejected))
    if result.rejected:
        raise typer.Exit(code=1)


@app.command("simulate")
def simulate_logs(
    key: str,
    write_key: WriteKey,
    users: Annotated[int, typer.Option(min=10)] = 20_000,
    effect: Annotated[
        list[str] | None, typer.Option(help="arm=multiplier of CTR and conversion rate")
    ] = None,
    seed: int = 1,
) -> None:
    """Write simulated ad logs with known effects for a started experiment (demos, tests)."""
    from accord.experiments import adlogs, service
    from accord.experiments.simulate import Scenario, simulate

    settings, store, business_id = _open(write_key)
    try:
        with store.read() as conn:
            experiment = service.get_experiment(conn, business_id=business_id, key=key)
    except AccordError as exc:
        raise _fail(exc) from None
    finally:
        store.dispose()
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


@app.command("report")
def report_command(
    key: str,
    write_key: WriteKey,
    out: Annotated[Path, typer.Option(help="HTML report file")] = Path("report.html"),
    csv: Annotated[Path | None, typer.Option(help="Also write the CSV here")] = None,
    engine: Annotated[
        str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")
    ] = None,
) -> None:
    """Analyse the experiment and write its report (HTML, and CSV if asked)."""
    from accord.engine.connection import connect
    from accord.experiments import report, service

    settings, store, business_id = _open(write_key)
    try:
        with store.read() as conn:
            experiment = service.get_experiment(conn, business_id=business_id, key=key)
        analysis = service.analyse_experiment(
            connect(engine or settings.engine_url),
            settings.resolved_lake_url(),
            business_id=business_id,
            experiment=experiment,
            now=utcnow(),
        )
    except AccordError as exc:
        raise _fail(exc) from None
    finally:
        store.dispose()
    out.write_text(report.render_html(analysis, experiment), encoding="utf-8")
    if csv is not None:
        csv.write_text(report.render_csv(analysis), encoding="utf-8")
    for gate in analysis.gates:
        mark = "[green]passed[/green]" if gate.passed else "[red]FAILED[/red]"
        console.print(f"{gate.name}: {mark} — {gate.detail}")
    typer.echo(f"report written to {out}")
    if analysis.blocked:
        console.print("[red]no verdict:[/red] a gate failed; results are withheld")
        raise typer.Exit(code=3)
