"""`accord identity …`: rules, review queue, unmerge and rebuilds from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from accord.core.errors import AccordError
from accord.core.settings import Settings
from accord.identity import service
from accord.store.db import Store, open_store
from accord.store.migrate import upgrade

identity_app = typer.Typer(
    help="The identity graph: rules, review queue, unmerge.", no_args_is_help=True
)
review_app = typer.Typer(help="Merges waiting for an operator.", no_args_is_help=True)
identity_app.add_typer(review_app, name="review")
console = Console(stderr=True)

Business = Annotated[str, typer.Option("--business-id", help="The business")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _store() -> Store:
    settings = Settings()
    url = settings.resolved_database_url()
    upgrade(url)
    return open_store(url, sqlite_synchronous=settings.sqlite_synchronous)


def _fail(exc: AccordError) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(code=1)


@identity_app.command("rules")
def rules(
    business_id: Business,
    set_from: Annotated[
        Path | None, typer.Option("--set", help="A JSON file of rules to store")
    ] = None,
) -> None:
    """Print the business's identity rules, or replace them from a JSON file."""
    store = _store()
    try:
        if set_from is not None:
            with store.write() as conn:
                stored = service.set_rules(
                    conn, business_id=business_id, rules=json.loads(set_from.read_text())
                )
        else:
            with store.read() as conn:
                stored = service.get_rules(conn, business_id=business_id)
    except AccordError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()
    typer.echo(stored.model_dump_json(indent=2))


@review_app.command("list")
def review_list(
    business_id: Business,
    status: Annotated[str, typer.Option(help="pending, accepted, rejected or all")] = "pending",
    as_json: AsJson = False,
) -> None:
    """The proposed merges."""
    store = _store()
    with store.read() as conn:
        items = service.list_reviews(
            conn, business_id=business_id, status=None if status == "all" else status
        )
    store.dispose()
    if as_json:
        typer.echo(json.dumps([item.model_dump(mode="json") for item in items]))
        return
    table = Table("review", "status", "profiles", "identifiers", "reason")
    for item in items:
        table.add_row(
            item.id,
            item.status,
            ", ".join(item.profile_ids),
            ", ".join(f"{i.kind}:{i.value}" for i in item.identifiers),
            item.reason,
        )
    Console().print(table)


@review_app.command("diff")
def review_diff(review_id: str, business_id: Business) -> None:
    """What accepting a proposed merge would change (nothing is written)."""
    store = _store()
    try:
        with store.read() as conn:
            diff = service.review_diff(conn, business_id=business_id, review_id=review_id)
    except AccordError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()
    typer.echo(diff.model_dump_json(indent=2))


@review_app.command("accept")
def review_accept(
    review_id: str,
    business_id: Business,
    note: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Make a proposed merge (hard identifiers still may not clash)."""
    store = _store()
    try:
        with store.write() as conn:
            diff = service.accept_review(
                conn,
                business_id=business_id,
                review_id=review_id,
                note=note,
                lock_rows=store.dialect == "postgresql",
            )
    except AccordError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()
    console.print(f"merged into {diff.surviving_profile}: {', '.join(diff.profiles_merged)}")


@review_app.command("reject")
def review_reject(
    review_id: str,
    business_id: Business,
    note: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Refuse a proposed merge."""
    store = _store()
    try:
        with store.write() as conn:
            service.reject_review(conn, business_id=business_id, review_id=review_id, note=note)
    except AccordError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()
    console.print(f"rejected {review_id}")


@identity_app.command("edges")
def edges(profile_id: str, business_id: Business, as_json: AsJson = False) -> None:
    """The edges of a profile's identity graph with their evidence (to pick one to remove)."""
    store = _store()
    with store.read() as conn:
        found = service.edges_of(conn, business_id=business_id, profile_id=profile_id)
    store.dispose()
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in found]))
        return
    table = Table("edge", "from", "to", "rule", "message", "removed")
    for e in found:
        table.add_row(
            str(e.id),
            f"{e.a.kind}:{e.a.value}",
            f"{e.b.kind}:{e.b.value}",
            e.rule,
            e.message_id or "",
            e.removed_at.isoformat() if e.removed_at else "",
        )
    Console().print(table)


@identity_app.command("unmerge")
def unmerge(
    edge_id: int,
    business_id: Business,
    reason: Annotated[str | None, typer.Option(help="Why the link was wrong")] = None,
) -> None:
    """Remove an edge for good and split its profile where nothing else holds it together."""
    store = _store()
    try:
        with store.write() as conn:
            report = service.unmerge(conn, business_id=business_id, edge_id=edge_id, reason=reason)
    except AccordError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()
    typer.echo(orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


@identity_app.command("rederive")
def rederive(business_id: Business) -> None:
    """Compute every profile of the business again from its own events."""
    store = _store()
    with store.write() as conn:
        count = service.rederive_all(conn, business_id=business_id)
    store.dispose()
    console.print(f"profiles derived again: {count}")


@identity_app.command("verify")
def verify(
    business_id: Business,
    engine: Annotated[
        str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Recompute the graph's connected components on the engine and compare with profiles.

    Exits with 1 when a component differs from a profile or breaks a guardrail.
    """
    from accord.identity.batch import check_graph

    store = _store()
    with store.read() as conn:
        rules = service.get_rules(conn, business_id=business_id)
        report = check_graph(
            conn, business_id=business_id, rules=rules, engine_url=engine or Settings().engine_url
        )
    store.dispose()
    summary: dict[str, int | list[Any]] = {
        "identifiers": report.identifiers,
        "edges": report.edges,
        "profiles": report.profiles,
        "components": report.components,
        "mismatched": report.mismatched,
        "violations": report.violations,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value if isinstance(value, int) else len(value)}")
    if not report.consistent:
        raise typer.Exit(code=1)


@identity_app.command("match")
def match(
    business_id: Business,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Score and decide, but change nothing")
    ] = False,
    undo: Annotated[
        bool, typer.Option("--undo", help="Remove the probabilistic edges of the last run")
    ] = False,
    engine: Annotated[
        str | None, typer.Option(help="Engine URL (default ACCORD_ENGINE_URL)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Probabilistic matching of profiles that share no identifier (the rules' `matching`)."""
    from accord.identity.matching import run_match, undo_last_match

    store = _store()
    try:
        if undo:
            with store.write() as conn:
                undone = undo_last_match(conn, business_id=business_id)
            typer.echo(undone.model_dump_json(indent=2))
            return
        report = run_match(
            store,
            business_id=business_id,
            engine_url=engine or Settings().engine_url,
            dry_run=dry_run,
        )
    except AccordError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()
    if as_json:
        typer.echo(report.model_dump_json())
        return
    table = Table("profile", "other profile", "probability", "outcome", "reason")
    for pair in report.pairs:
        table.add_row(
            pair.profile_id,
            pair.other_profile_id,
            f"{pair.probability:.4f}",
            pair.outcome,
            pair.reason or "",
        )
    Console().print(table)
    prefix = "would have " if dry_run else ""
    console.print(
        f"run {report.run_id}: {report.records} of {report.profiles} profiles compared; "
        f"{prefix}linked {report.linked}, sent {report.review} to review, "
        f"refused {report.refused}"
    )
