"""`accord identity …`: rules, review queue, unmerge and rebuilds from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from accord.cli_common import (
    FAILED,
    AsJson,
    Business,
    Engine,
    business_store,
    console,
    echo_json,
    print_table,
)
from accord.core.settings import Settings
from accord.identity import service

identity_app = typer.Typer(
    help="The identity graph: rules, review queue, unmerge.", no_args_is_help=True
)
review_app = typer.Typer(help="Merges waiting for an operator.", no_args_is_help=True)
identity_app.add_typer(review_app, name="review")


@identity_app.command("rules")
def rules(
    business: Business,
    set_from: Annotated[
        Path | None, typer.Option("--set", help="A JSON file of rules to store")
    ] = None,
) -> None:
    """Print the business's identity rules, or replace them from a JSON file."""
    with business_store(business) as (store, business_id):
        if set_from is not None:
            with store.write() as conn:
                stored = service.set_rules(
                    conn, business_id=business_id, rules=json.loads(set_from.read_text())
                )
        else:
            with store.read() as conn:
                stored = service.get_rules(conn, business_id=business_id)
    echo_json(stored, indent=True)


@review_app.command("list")
def review_list(
    business: Business,
    status: Annotated[str, typer.Option(help="pending, accepted, rejected or all")] = "pending",
    as_json: AsJson = False,
) -> None:
    """The proposed merges."""
    with business_store(business) as (store, business_id), store.read() as conn:
        items = service.list_reviews(
            conn, business_id=business_id, status=None if status == "all" else status
        )
    if as_json:
        echo_json(items)
        return
    print_table(
        "review",
        "status",
        "profiles",
        "identifiers",
        "reason",
        rows=[
            (
                item.id,
                item.status,
                ", ".join(item.profile_ids),
                ", ".join(f"{i.kind}:{i.value}" for i in item.identifiers),
                item.reason,
            )
            for item in items
        ],
    )


@review_app.command("diff")
def review_diff(review_id: str, business: Business) -> None:
    """What accepting a proposed merge would change (nothing is written)."""
    with business_store(business) as (store, business_id), store.read() as conn:
        diff = service.review_diff(conn, business_id=business_id, review_id=review_id)
    echo_json(diff, indent=True)


@review_app.command("accept")
def review_accept(
    review_id: str,
    business: Business,
    note: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Make a proposed merge (hard identifiers still may not clash)."""
    with business_store(business) as (store, business_id), store.write() as conn:
        diff = service.accept_review(
            conn,
            business_id=business_id,
            review_id=review_id,
            note=note,
            lock_rows=store.dialect == "postgresql",
        )
    console.print(f"merged into {diff.surviving_profile}: {', '.join(diff.profiles_merged)}")


@review_app.command("reject")
def review_reject(
    review_id: str,
    business: Business,
    note: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Refuse a proposed merge."""
    with business_store(business) as (store, business_id), store.write() as conn:
        service.reject_review(conn, business_id=business_id, review_id=review_id, note=note)
    console.print(f"rejected {review_id}")


@identity_app.command("edges")
def edges(profile_id: str, business: Business, as_json: AsJson = False) -> None:
    """The edges of a profile's identity graph with their evidence (to pick one to remove)."""
    with business_store(business) as (store, business_id), store.read() as conn:
        found = service.edges_of(conn, business_id=business_id, profile_id=profile_id)
    if as_json:
        echo_json(found)
        return
    print_table(
        "edge",
        "from",
        "to",
        "rule",
        "message",
        "removed",
        rows=[
            (
                e.id,
                f"{e.a.kind}:{e.a.value}",
                f"{e.b.kind}:{e.b.value}",
                e.rule,
                e.message_id,
                e.removed_at.isoformat() if e.removed_at else None,
            )
            for e in found
        ],
    )


@identity_app.command("unmerge")
def unmerge(
    edge_id: int,
    business: Business,
    reason: Annotated[str | None, typer.Option(help="Why the link was wrong")] = None,
) -> None:
    """Remove an edge for good and split its profile where nothing else holds it together."""
    with business_store(business) as (store, business_id), store.write() as conn:
        report = service.unmerge(conn, business_id=business_id, edge_id=edge_id, reason=reason)
    echo_json(report, indent=True)


@identity_app.command("rederive")
def rederive(business: Business) -> None:
    """Compute every profile of the business again from its own events."""
    with business_store(business) as (store, business_id), store.write() as conn:
        count = service.rederive_all(conn, business_id=business_id)
    console.print(f"profiles derived again: {count}")


@identity_app.command("verify")
def verify(business: Business, engine: Engine = None, as_json: AsJson = False) -> None:
    """Recompute the graph's connected components on the engine and compare with profiles.

    Exits with 1 when a component differs from a profile or breaks a guardrail.
    """
    from accord.identity.batch import check_graph

    with business_store(business) as (store, business_id), store.read() as conn:
        rules = service.get_rules(conn, business_id=business_id)
        report = check_graph(
            conn,
            business_id=business_id,
            rules=rules,
            engine_url=engine or Settings().engine_url,
        )
    summary: dict[str, int | list[Any]] = {
        "identifiers": report.identifiers,
        "edges": report.edges,
        "profiles": report.profiles,
        "components": report.components,
        "mismatched": report.mismatched,
        "violations": report.violations,
    }
    if as_json:
        echo_json(summary)
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value if isinstance(value, int) else len(value)}")
    if not report.consistent:
        raise typer.Exit(FAILED)


@identity_app.command("match")
def match(
    business: Business,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Score and decide, but change nothing")
    ] = False,
    undo: Annotated[
        bool, typer.Option("--undo", help="Remove the probabilistic edges of the last run")
    ] = False,
    engine: Engine = None,
    as_json: AsJson = False,
) -> None:
    """Probabilistic matching of profiles that share no identifier (the rules' `matching`)."""
    from accord.identity.matching import run_match, undo_last_match

    with business_store(business) as (store, business_id):
        if undo:
            with store.write() as conn:
                undone = undo_last_match(conn, business_id=business_id)
            echo_json(undone, indent=True)
            return
        report = run_match(
            store,
            business_id=business_id,
            engine_url=engine or Settings().engine_url,
            dry_run=dry_run,
        )
    if as_json:
        echo_json(report)
        return
    print_table(
        "profile",
        "other profile",
        "probability",
        "outcome",
        "reason",
        rows=[
            (p.profile_id, p.other_profile_id, f"{p.probability:.4f}", p.outcome, p.reason)
            for p in report.pairs
        ],
    )
    prefix = "would have " if dry_run else ""
    console.print(
        f"run {report.run_id}: {report.records} of {report.profiles} profiles compared; "
        f"{prefix}linked {report.linked}, sent {report.review} to review, "
        f"refused {report.refused}"
    )
    if report.untrained:
        console.print(
            "The model did not train these levels (pairs reaching them go to review): "
            + "; ".join(report.untrained),
            markup=False,
        )
