"""The `accord` command: each context's commands assembled into one, plus serve and migrate."""

from __future__ import annotations

from typing import Annotated

import typer

from accord.accounts.cli import bootstrap, people_app
from accord.analytics.cli import analytics_app, report_app
from accord.audiences.cli import audiences_app
from accord.cli_common import console, old_option_names
from accord.collect.cli import import_file
from accord.consent.cli import consent_app
from accord.core.settings import Settings
from accord.demo.cli import demo
from accord.experiments.cli import experiments_app
from accord.identity.cli import identity_app
from accord.journeys.cli import journeys_app
from accord.leads.cli import leads_app
from accord.messaging.cli import email_app
from accord.predict.cli import predict_app
from accord.process.cli import jobs_app, run_worker
from accord.profiles.cli import profiles_app
from accord.rights.cli import register as register_rights
from accord.store.migrate import upgrade

app = typer.Typer(
    help="Accord: consent-first customer data platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"token_normalize_func": old_option_names},
)


@app.command()
def migrate() -> None:
    """Bring the state store's schema up to date."""
    upgrade(Settings().resolved_database_url())
    console.print("schema is up to date")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    worker: Annotated[
        bool, typer.Option(help="Run the worker process beside the server: inbox, journeys, jobs")
    ] = True,
    workers: Annotated[int, typer.Option(min=1, help="HTTP server processes")] = 1,
) -> None:
    """Serve the API, with one worker process beside it (inbox, journeys, scheduled jobs)
    unless --no-worker."""
    import uvicorn

    from accord.process.worker import start_process, stop_process
    from accord.web.app import create_app

    settings = Settings()
    upgrade(settings.resolved_database_url())
    inbox_worker = start_process(settings) if worker and settings.worker_inline else None
    try:
        bind_host, bind_port = host or settings.host, port or settings.port
        if workers == 1:
            uvicorn.run(
                create_app(settings),
                host=bind_host,
                port=bind_port,
                log_level="info",
                access_log=False,
                # Forwarded headers are read by Accord from ACCORD_TRUSTED_PROXIES only.
                proxy_headers=False,
            )
        else:
            # Each process builds its app from the same ACCORD_* environment.
            uvicorn.run(
                "accord.web.app:create_app",
                factory=True,
                workers=workers,
                host=bind_host,
                port=bind_port,
                log_level="info",
                access_log=False,
                # Forwarded headers are read by Accord from ACCORD_TRUSTED_PROXIES only.
                proxy_headers=False,
            )
    finally:
        if inbox_worker is not None:
            stop_process(inbox_worker)


app.command("worker")(run_worker)
app.command()(bootstrap)
app.command("import")(import_file)
app.command()(demo)
app.add_typer(people_app, name="people")
app.add_typer(report_app, name="report")
app.add_typer(analytics_app, name="analytics")
app.add_typer(consent_app, name="consent")
app.add_typer(identity_app, name="identity")
app.add_typer(profiles_app, name="profiles")
register_rights(profiles_app)
app.add_typer(audiences_app, name="audiences")
app.add_typer(predict_app, name="predict")
app.add_typer(experiments_app, name="experiments")
app.add_typer(leads_app, name="leads")
app.add_typer(email_app, name="email")
app.add_typer(journeys_app, name="journeys")
app.add_typer(jobs_app, name="jobs")

if __name__ == "__main__":
    app()
