"""The jobs Accord runs by itself: each kind calls one context's service on a schedule.

Every kind has a default schedule that a business can change (`PATCH /api/jobs/{name}`,
the `/jobs` page); docs/operations.md lists them. A kind is idempotent: running it
twice, or again after a crash or a timeout, changes nothing more than running it once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from accord.accounts.service import purge_expired
from accord.analytics import reports as saved_reports
from accord.audiences import definitions, destinations
from accord.audiences import refresh as audience_refresh
from accord.audiences.models import audiences as audience_table
from accord.collect.models import inbox
from accord.collect.service import purge_processed
from accord.consent import config as consent_config
from accord.consent import scans as consent_scans
from accord.core import outbound
from accord.core.clock import parse_instant
from accord.engine.connection import connect
from accord.identity import matching as identity_matching
from accord.identity.service import get_rules as identity_rules
from accord.identity.service import purge_tombstones
from accord.journeys.runner import Runner
from accord.lake.compaction import compact
from accord.messaging.mailer import Mailer
from accord.messaging.sending import run_due
from accord.predict.service import train
from accord.process.email import default_wiring
from accord.process.job_admin import purge_history
from accord.process.journeys import environment as journey_environment
from accord.process.journeys import on_audience_changes
from accord.process.kinds import REQUESTED_AT, JobContext, JobKind, JobOutcome, Kinds
from accord.recommend.service import train as train_recommender


def _business(context: JobContext) -> str:
    assert context.business_id is not None, "a business job ran without its business"
    return context.business_id


def _target(context: JobContext) -> str:
    assert context.target is not None, "a per-object job ran without its object"
    return context.target


# Audiences ---------------------------------------------------------------------------


def audience_ids(conn: Connection, business_id: str) -> list[str]:
    """Every audience of the business, the predefined ones created first if missing."""
    definitions.ensure_predefined(conn, business_id=business_id)
    return list(
        conn.execute(
            select(audience_table.c.id)
            .where(audience_table.c.business_id == business_id)
            .order_by(audience_table.c.id)
        ).scalars()
    )


def audience_names(conn: Connection, business_id: str) -> dict[str, str]:
    rows = conn.execute(
        select(audience_table.c.id, audience_table.c.name).where(
            audience_table.c.business_id == business_id
        )
    ).all()
    return {row.id: row.name for row in rows}


def refresh_audience(context: JobContext) -> JobOutcome:
    results = audience_refresh.refresh(
        context.store,
        business_id=_business(context),
        backend=connect(context.settings.engine_url),
        lake_url=context.settings.resolved_lake_url(),
        only=[_target(context)],
        now=context.now,
        on_changes=on_audience_changes(),
    )
    counts = {"size": 0.0, "entered": 0.0, "exited": 0.0}
    for result in results:
        counts["size"] += result.size
        counts["entered"] += result.entered
        counts["exited"] += result.exited
    return JobOutcome(counts=counts)


def deliver_audience_webhooks(context: JobContext) -> JobOutcome:
    after = context.settings.webhook_dead_letter_after
    settings = context.settings
    with outbound.client(
        settings.outbound_policy(), timeout=settings.webhook_timeout_seconds
    ) as client:
        runs = destinations.deliver_webhooks(
            context.store,
            business_id=_business(context),
            client=client,
            dead_letter_after=after,
        )
    failed = [r for r in runs if r.failed]
    counts = {
        "destinations": float(len(runs)),
        "changes_sent": float(sum(r.sent for r in runs if r.delivery and r.delivery.delivered)),
        "failed_destinations": float(len(failed)),
        "batches_parked": float(sum(1 for r in runs if r.parked)),
    }
    if failed:
        # Raising makes the scheduler retry with backoff and show the failure; the
        # changes stay pending until a receiver accepts them or the batch is parked.
        # A parked batch is settled: retrying the job for it would change nothing.
        raise WebhookDeliveryFailed(
            ", ".join(
                f"{r.webhook_id}: {r.delivery.error if r.delivery else ''}"
                f" ({r.failures} of {after} failed runs before its batch is parked)"
                for r in failed
            )
        )
    return JobOutcome(counts=counts)


class WebhookDeliveryFailed(Exception):
    """A destination refused or could not be reached; its changes are sent again later."""


# Email --------------------------------------------------------------------------------


def send_due_campaigns(context: JobContext) -> JobOutcome:
    reports = asyncio.run(
        run_due(
            context.store,
            mailer=Mailer.from_settings(context.settings),
            wiring=default_wiring(),
            business_id=_business(context),
            now=context.now,
        )
    )
    return JobOutcome(
        counts={
            "campaigns": float(len(reports)),
            "sent": float(sum(r.sent for r in reports)),
            "failed": float(sum(r.failed for r in reports)),
        }
    )


# Journeys -----------------------------------------------------------------------------


def _runner() -> Runner:
    return Runner(journey_environment())


def enter_by_date(context: JobContext) -> JobOutcome:
    with context.store.write() as conn:
        entered = _runner().enter_by_date(conn, business_id=_business(context), now=context.now)
    return JobOutcome(counts={"entered": float(entered)})


def settle_splits(context: JobContext) -> JobOutcome:
    with context.store.write() as conn:
        decided = _runner().settle(conn, business_id=_business(context), now=context.now)
    return JobOutcome(counts={"winners": float(decided)})


# Predictions --------------------------------------------------------------------------


def _events_since(conn: Connection, business_id: str, since: datetime | None, cap: int) -> int:
    """Events processed for the business since a time, counted up to `cap`."""
    query = select(inbox.c.seq).where(
        inbox.c.business_id == business_id, inbox.c.processed_at.is_not(None)
    )
    if since is not None:
        query = query.where(inbox.c.processed_at > since)
    bounded = query.limit(cap).subquery()
    return int(conn.execute(select(func.count()).select_from(bounded)).scalar_one())


def enough_new_events(conn: Connection, context: JobContext) -> bool:
    trained = context.state.get("trained_at")
    since = parse_instant(trained) if isinstance(trained, str) else None
    needed = context.settings.predict_retrain_events
    return _events_since(conn, _business(context), since, needed) >= needed


def train_predictions(context: JobContext) -> JobOutcome:
    report = train(
        context.store,
        business_id=_business(context),
        backend=connect(context.settings.engine_url),
        lake_url=context.settings.resolved_lake_url(),
        models_dir=context.settings.data_dir / "models",
        now=context.now,
    )
    return JobOutcome(
        counts={
            "models": float(len(report.cards)),
            "skipped": float(len(report.skipped)),
            "profiles_updated": float(report.profiles_updated),
        },
        state={"trained_at": context.now.isoformat()},
    )


def train_recommendations(context: JobContext) -> JobOutcome:
    report = train_recommender(
        context.store,
        business_id=_business(context),
        backend=connect(context.settings.engine_url),
        lake_url=context.settings.resolved_lake_url(),
        now=context.now,
    )
    return JobOutcome(
        counts={name: float(value) for name, value in report.counts.items()},
        state={"trained_at": context.now.isoformat()},
    )


# Lake ---------------------------------------------------------------------------------


def compact_lake(context: JobContext) -> JobOutcome:
    report = compact(
        context.settings.resolved_lake_url(), business_id=_business(context), now=context.now
    )
    return JobOutcome(
        counts={
            "partitions_compacted": float(report.partitions_compacted),
            "files_merged": float(report.files_merged),
            "rows": float(report.rows),
            "superseded_files_deleted": float(report.superseded_files_deleted),
        }
    )


# Consent ------------------------------------------------------------------------------


def consent_property_ids(conn: Connection, business_id: str) -> list[str]:
    return [p["id"] for p in consent_config.list_properties(conn, business_id=business_id)]


def consent_property_names(conn: Connection, business_id: str) -> dict[str, str]:
    return {
        p["id"]: p["name"] for p in consent_config.list_properties(conn, business_id=business_id)
    }


def scan_requested(conn: Connection, context: JobContext) -> bool:
    return consent_scans.has_waiting(conn, property_id=_target(context), now=context.now)


def scan_property(context: JobContext) -> JobOutcome:
    counts = consent_scans.run_waiting(
        context.store,
        property_id=_target(context),
        now=context.now,
        outbound=context.settings.outbound_policy(),
    )
    return JobOutcome(counts=counts)


# Identity -----------------------------------------------------------------------------


def match_profiles(context: JobContext) -> JobOutcome:
    """Probabilistic matching of the business's profiles ("Run matching" on /identity/rules).

    Matching merges profiles, so it runs only when someone asked (the page, `/jobs` or
    the API); a scheduled run without a request does nothing."""
    business_id = _business(context)
    if REQUESTED_AT not in context.state:
        return JobOutcome(counts={"not_asked": 1.0})
    with context.store.read() as conn:
        configured = identity_rules(conn, business_id=business_id).matching is not None
    if not configured:
        return JobOutcome(counts={"not_configured": 1.0})
    report = identity_matching.run_match(
        context.store, business_id=business_id, engine_url=context.settings.engine_url
    )
    return JobOutcome(
        counts={
            "profiles": float(report.profiles),
            "linked": float(report.linked),
            "review": float(report.review),
            "refused": float(report.refused),
            "skipped": float(sum(p.outcome == "skipped" for p in report.pairs)),
        },
        state={"run_id": report.run_id},
    )


# Analytics ----------------------------------------------------------------------------


def saved_reports_waiting(conn: Connection, context: JobContext) -> bool:
    return saved_reports.waiting(conn, business_id=_business(context))


def refresh_saved_reports(context: JobContext) -> JobOutcome:
    inputs = saved_reports.ReportInputs(
        store=context.store,
        backend=connect(context.settings.engine_url),
        lake_url=context.settings.resolved_lake_url(),
        business_id=_business(context),
        today=context.now.date(),
    )
    return JobOutcome(counts=saved_reports.refresh_all(inputs, now=context.now))


# Retention ----------------------------------------------------------------------------


def purge_retained(context: JobContext) -> JobOutcome:
    settings, store, now = context.settings, context.store, context.now
    counts: dict[str, float] = {}
    counts["inbox_rows"] = float(
        purge_processed(store, older_than=timedelta(days=settings.inbox_retention_days))
    )
    with store.write() as conn:
        expired = purge_expired(conn, now=now, keep=timedelta(days=settings.session_retention_days))
        counts["sessions"] = float(expired.sessions)
        counts["invitations"] = float(expired.invitations)
        counts["login_attempts"] = float(expired.login_attempts)
        counts["tombstones"] = float(
            purge_tombstones(conn, erased_before=now - timedelta(days=settings.max_event_age_days))
        )
    counts["job_runs"] = float(
        purge_history(store, older_than=timedelta(days=settings.job_history_days), now=now)
    )
    return JobOutcome(counts=counts)


def default_kinds() -> Kinds:
    """Every job Accord registers, by name."""
    kinds = [
        JobKind(
            name="audiences.refresh",
            title="Recompute an audience on the engine",
            run=refresh_audience,
            schedule="every 1h",
            scope="object",
            targets=audience_ids,
            labels=audience_names,
            triggers=("audience refresh", "audience changes"),
        ),
        JobKind(
            name="audiences.webhooks",
            title="Deliver audience entries, exits and erasures to webhook destinations",
            run=deliver_audience_webhooks,
            schedule="every 30s",
            timeout=timedelta(minutes=5),
            max_attempts=8,
            quiet=True,
            triggers=("webhook destinations", "erasure notices"),
        ),
        JobKind(
            name="email.send_due",
            title="Send email campaigns whose time has come, and A/B winners",
            run=send_due_campaigns,
            schedule="every 15s",
            timeout=timedelta(hours=2),
            quiet=True,
            triggers=("scheduled campaigns", "A/B winner sends"),
        ),
        JobKind(
            name="journeys.date_entry",
            title="Enter people into date-trait journeys (birthdays, renewals)",
            run=enter_by_date,
            schedule="every 15m",
            quiet=True,
            triggers=("date-trait entry",),
        ),
        JobKind(
            name="journeys.settle_splits",
            title="Choose the winners of journey A/B splits",
            run=settle_splits,
            schedule="every 5m",
            quiet=True,
            triggers=("A/B split winners",),
        ),
        JobKind(
            name="predict.train",
            title="Retrain predictions (weekly, or after enough new events)",
            run=train_predictions,
            schedule="0 3 * * 0",
            first_run="schedule",
            wake=enough_new_events,
            timeout=timedelta(hours=2),
            max_attempts=2,
            backoff=timedelta(minutes=10),
            triggers=("prediction retraining",),
        ),
        JobKind(
            name="recommend.train",
            title="Retrain product recommendations (daily, or after enough new events)",
            run=train_recommendations,
            schedule="0 2 * * *",
            first_run="schedule",
            wake=enough_new_events,
            timeout=timedelta(hours=2),
            max_attempts=2,
            backoff=timedelta(minutes=10),
            triggers=("recommendation retraining",),
        ),
        JobKind(
            name="analytics.reports",
            title="Refresh the saved reports of the dashboard",
            run=refresh_saved_reports,
            schedule="every 1h",
            wake=saved_reports_waiting,
            timeout=timedelta(minutes=30),
            triggers=("saved reports",),
        ),
        JobKind(
            name="lake.compact",
            title="Merge each day's small lake files into one (readers see every row once)",
            run=compact_lake,
            schedule="every 1h",
            timeout=timedelta(hours=1),
            triggers=("lake compaction",),
        ),
        JobKind(
            name="consent.scan",
            title="Run the cookie scans asked for on a consent property's site",
            run=scan_property,
            # Scans run when asked ("Scan now" makes the job due, and a waiting scan wakes
            # it at the next sync); the schedule only picks up a scan nothing woke.
            schedule="every 1h",
            scope="object",
            targets=consent_property_ids,
            labels=consent_property_names,
            wake=scan_requested,
            first_run="schedule",
            timeout=timedelta(minutes=15),
            max_attempts=1,
            quiet=True,
            triggers=("cookie scans",),
        ),
        JobKind(
            name="identity.match",
            title="Probabilistic matching of profiles that share no identifier",
            run=match_profiles,
            # Matching merges profiles: it works only when a person asked ("Run matching"
            # makes it due and records the request); its scheduled runs do nothing.
            schedule="0 4 1 1 *",
            first_run="schedule",
            timeout=timedelta(hours=1),
            max_attempts=1,
            triggers=("probabilistic matching",),
        ),
        JobKind(
            name="retention.purge",
            title="Forget what is past its retention (inbox, sessions, tombstones, history)",
            run=purge_retained,
            schedule="every 1h",
            scope="installation",
            triggers=("retention purges",),
        ),
    ]
    return {kind.name: kind for kind in kinds}


def describe(kinds: Kinds) -> list[dict[str, Any]]:
    """The kinds as data, for docs and the jobs page."""
    return [
        {
            "name": kind.name,
            "title": kind.title,
            "schedule": kind.schedule,
            "scope": kind.scope,
            "timeout_seconds": kind.timeout.total_seconds(),
            "max_attempts": kind.max_attempts,
        }
        for kind in kinds.values()
    ]
