"""Train recommendations for a business on the engine, measure them offline, and swap
the serving tables in one transaction; the record of every training run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from ibis.backends import BaseBackend
from sqlalchemy import Connection, delete, insert, select, update

from accord.audiences.service import granted, people
from accord.core.clock import utcnow
from accord.core.ids import new_id
from accord.engine.lake import events as lake_events
from accord.engine.tables import register
from accord.profiles.service import identifier_rows
from accord.recommend import als, cooccurrence
from accord.recommend.evaluate import (
    MODELS,
    Evaluation,
    TrainSettings,
    als_factors,
    evaluate,
    neighbours_from,
    popular_from,
)
from accord.recommend.interactions import interactions, strengths
from accord.recommend.models import (
    recommendation_histories,
    recommendation_neighbours,
    recommendation_popular,
    recommendation_runs,
)
from accord.recommend.serving import PURPOSE
from accord.store.db import Store

# Products kept per person in the serving history (their strongest; bought ones first).
HISTORY_PER_PERSON = 50
# The served model must beat popularity by this much NDCG@10 on the holdout to be chosen
# over the other; co-occurrence is served when nothing could be measured.
SERVED = ("cooccurrence", "als")

_IDENTIFIERS = pa.schema(
    [("kind", pa.string()), ("value", pa.string()), ("profile_id", pa.string())]
)


@dataclass(frozen=True)
class RunReport:
    run_id: str
    model: str
    evaluation: Evaluation | None
    counts: dict[str, int]
    seconds: float


def _identifiers(conn: Connection, business_id: str) -> pa.Table:
    rows = identifier_rows(conn, business_id=business_id)
    return pa.Table.from_pydict(
        {
            "kind": [k for _, k, _ in rows],
            "value": [v for _, _, v in rows],
            "profile_id": [p for p, _, _ in rows],
        },
        schema=_IDENTIFIERS,
    )


def consenting(conn: Connection, business_id: str) -> set[str]:
    """Profiles that granted the personalisation purpose now."""
    everyone = people(conn, business_id=business_id)
    return {
        profile_id
        for profile_id, purposes in granted(
            conn, business_id=business_id, people=everyone.values()
        ).items()
        if PURPOSE in purposes
    }


def train(
    store: Store,
    *,
    business_id: str,
    backend: BaseBackend,
    lake_url: str,
    now: datetime | None = None,
    settings: TrainSettings | None = None,
    models: Sequence[str] = MODELS,
) -> RunReport:
    """Measure each model on the holdout, serve the best of co-occurrence and ALS, and
    replace the business's serving tables. Every run is recorded, failed ones too."""
    started = utcnow()
    now = now or started
    run_id = new_id("rrun")
    with store.write() as conn:
        conn.execute(
            insert(recommendation_runs).values(
                id=run_id,
                business_id=business_id,
                status="running",
                started_at=started,
                evaluation="{}",
                counts="{}",
            )
        )
    try:
        report = _train(
            store, run_id, business_id, backend, lake_url, now, settings or TrainSettings(), models
        )
    except Exception as exc:
        with store.write() as conn:
            conn.execute(
                update(recommendation_runs)
                .where(recommendation_runs.c.id == run_id)
                .values(status="failed", finished_at=utcnow(), error=f"{type(exc).__name__}: {exc}")
            )
        raise
    return report


def _train(
    store: Store,
    run_id: str,
    business_id: str,
    backend: BaseBackend,
    lake_url: str,
    now: datetime,
    settings: TrainSettings,
    models: Sequence[str],
) -> RunReport:
    started = utcnow()
    with store.read() as conn:
        identifiers = _identifiers(conn, business_id)
        allowed = consenting(conn, business_id)
    events = lake_events(backend, lake_url, business_id=business_id)
    rows = interactions(backend, events, register(backend, identifiers))
    evaluation = evaluate(backend, rows, now=now, settings=settings, models=models)
    measured = [m for m in SERVED if m in models]
    warm = evaluation.held_out_people - evaluation.cold_people
    model = evaluation.best(measured) if warm and measured else "cooccurrence"
    every = strengths(backend, rows, now=now, half_life_days=settings.half_life_days)
    if model == "als":
        related = als.neighbours_of(als_factors(backend, every, settings.als), top_k=settings.top_k)
    else:
        related = neighbours_from(
            cooccurrence.neighbours(
                backend,
                every,
                top_k=settings.top_k,
                per_person=settings.per_person,
                min_support=settings.min_support,
            ),
            backend,
        )
    popular = popular_from(cooccurrence.popular(backend, every), backend)
    histories = _histories(backend, every, allowed)
    counts = {
        "interactions": int(backend.to_pyarrow(rows.count()).as_py()),
        "products_with_neighbours": len(related),
        "neighbour_rows": sum(len(v) for v in related.values()),
        "popular": len(popular),
        "people_with_history": len({h["profile_id"] for h in histories}),
        "people_consenting": len(allowed),
    }
    finished = utcnow()
    with store.write() as conn:
        for table in (recommendation_neighbours, recommendation_histories, recommendation_popular):
            conn.execute(delete(table).where(table.c.business_id == business_id))
        neighbour_rows = [
            {"business_id": business_id, "product_id": p, "related_id": r, "score": s}
            for p, pairs in related.items()
            for r, s in pairs
        ]
        _insert(conn, recommendation_neighbours, neighbour_rows)
        _insert(
            conn,
            recommendation_popular,
            [{"business_id": business_id, "product_id": p, "score": s} for p, s in popular],
        )
        _insert(
            conn,
            recommendation_histories,
            [{"business_id": business_id, **h} for h in histories],
        )
        conn.execute(
            update(recommendation_runs)
            .where(recommendation_runs.c.id == run_id)
            .values(
                status="ok",
                model=model,
                finished_at=finished,
                evaluation=orjson.dumps(
                    {
                        "k": 10,
                        "held_out_people": evaluation.held_out_people,
                        "cold_people": evaluation.cold_people,
                        "models": [q.as_dict() for q in evaluation.qualities],
                    }
                ).decode(),
                counts=orjson.dumps(counts).decode(),
            )
        )
    return RunReport(run_id, model, evaluation, counts, (finished - started).total_seconds())


def _insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5000):
        conn.execute(insert(table), rows[start : start + 5000])


def _histories(backend: BaseBackend, every: Any, allowed: set[str]) -> list[dict[str, Any]]:
    if not allowed:
        return []
    table = backend.to_pyarrow(
        every.select("profile_id", "product_id", "strength", "bought", "last_seen")
    ).to_pydict()
    per: dict[str, list[dict[str, Any]]] = {}
    for person, product, strength, bought, seen in zip(
        table["profile_id"],
        table["product_id"],
        table["strength"],
        table["bought"],
        table["last_seen"],
        strict=True,
    ):
        if person in allowed:
            per.setdefault(person, []).append(
                {
                    "profile_id": person,
                    "product_id": product,
                    "strength": float(strength),
                    "bought": bool(bought),
                    "last_seen_at": seen,
                }
            )
    out = []
    for rows in per.values():
        rows.sort(key=lambda r: (not r["bought"], -r["strength"], r["product_id"]))
        out += rows[:HISTORY_PER_PERSON]
    return out


# Reading runs and what is served ------------------------------------------------------


@dataclass(frozen=True)
class Run:
    id: str
    status: str
    model: str | None
    started_at: datetime
    finished_at: datetime | None
    evaluation: dict[str, Any]
    counts: dict[str, Any]
    error: str | None

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def runs(conn: Connection, *, business_id: str, limit: int = 20) -> list[Run]:
    t = recommendation_runs.c
    rows = conn.execute(
        select(recommendation_runs)
        .where(t.business_id == business_id)
        .order_by(t.started_at.desc(), t.id)
        .limit(limit)
    )
    return [
        Run(
            id=r.id,
            status=r.status,
            model=r.model,
            started_at=r.started_at,
            finished_at=r.finished_at,
            evaluation=orjson.loads(r.evaluation),
            counts=orjson.loads(r.counts),
            error=r.error,
        )
        for r in rows
    ]


def recently_viewed(
    conn: Connection, *, business_id: str, profile_id: str, limit: int = 10
) -> list[tuple[str, datetime]]:
    """The products a (consenting) person saw most recently, newest first, as of training."""
    t = recommendation_histories.c
    rows = conn.execute(
        select(t.product_id, t.last_seen_at)
        .where(t.business_id == business_id, t.profile_id == profile_id)
        .order_by(t.last_seen_at.desc(), t.product_id)
        .limit(limit)
    )
    return [(r.product_id, r.last_seen_at) for r in rows]
