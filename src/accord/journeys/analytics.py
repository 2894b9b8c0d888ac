"""Journey analytics: people at each node, conversions, and A/B splits with intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

import orjson
from sqlalchemy import Connection, and_, case, func, insert, select

from accord.journeys.graph import JourneyDefinition, SplitNode, parse_duration
from accord.journeys.models import journey_runs, journey_split_winners, journey_steps, journeys
from accord.store.metadata import utc_day

_NORMAL = NormalDist()


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound for small counts and 0 or 1)."""
    if trials == 0:
        return (0.0, 1.0)
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return 2 * (1 - _NORMAL.cdf(abs(z)))


@dataclass(frozen=True)
class PathResult:
    name: str
    people: int
    converted: int
    rate: float
    interval: tuple[float, float]


@dataclass(frozen=True)
class SplitResult:
    node: str
    paths: list[PathResult]
    # Holm-adjusted p-values of the leading path against each other path.
    p_values: dict[str, float]
    winner: str | None
    reason: str


def settled_winner(conn: Connection, *, journey_id: str, version: int, node: str) -> str | None:
    row = conn.execute(
        select(journey_split_winners.c.winner).where(
            journey_split_winners.c.journey_id == journey_id,
            journey_split_winners.c.version == version,
            journey_split_winners.c.node == node,
        )
    ).first()
    return None if row is None else str(row.winner)


def split_result(
    conn: Connection,
    *,
    journey_id: str,
    version: int,
    node: str,
    split: SplitNode,
    definition: JourneyDefinition,
    now: datetime,
) -> SplitResult:
    """Conversion per path among people whose goal window has closed, and the winner.

    A path wins when it converts best and beats every other path with Holm-adjusted
    p < alpha, once each path has at least `min_per_path` mature people. Counting only
    people whose window has closed keeps recent entrants from biasing the rates.
    """
    assert definition.goal is not None
    mature_before = now - parse_duration(definition.goal.within)
    steps, runs = journey_steps.c, journey_runs.c
    rows = conn.execute(
        select(
            steps.path,
            func.count().label("people"),
            func.sum(case((runs.status == "converted", 1), else_=0)).label("converted"),
        )
        .select_from(journey_steps.join(journey_runs, journey_runs.c.id == steps.run_id))
        .where(
            steps.journey_id == journey_id,
            steps.node == node,
            steps.outcome == "split",
            runs.version == version,
            runs.entered_at <= mature_before,
        )
        .group_by(steps.path)
    ).all()
    counts = {row.path: (int(row.people), int(row.converted or 0)) for row in rows}
    paths = []
    for path in split.paths:
        people, converted = counts.get(path.name, (0, 0))
        paths.append(
            PathResult(
                name=path.name,
                people=people,
                converted=converted,
                rate=converted / people if people else 0.0,
                interval=wilson(converted, people),
            )
        )
    leader = max(paths, key=lambda p: p.rate)
    raw = {
        p.name: two_proportion_p(leader.converted, leader.people, p.converted, p.people)
        for p in paths
        if p.name != leader.name
    }
    adjusted = _holm(raw)
    if min(p.people for p in paths) < split.min_per_path:
        return SplitResult(node, paths, adjusted, None, "not enough mature people on every path")
    if all(value < split.alpha for value in adjusted.values()):
        return SplitResult(node, paths, adjusted, leader.name, "significant")
    return SplitResult(node, paths, adjusted, None, "no significant difference yet")


def _holm(p_values: dict[str, float]) -> dict[str, float]:
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted: dict[str, float] = {}
    running = 0.0
    m = len(ordered)
    for rank, (name, value) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * value))
        adjusted[name] = running
    return adjusted


def split_results(
    conn: Connection,
    *,
    journey_id: str,
    version: int,
    definition: JourneyDefinition,
    now: datetime,
) -> list[SplitResult]:
    """The result of every A/B split of a journey version, as its report shows them."""
    return [
        split_result(
            conn,
            journey_id=journey_id,
            version=version,
            node=node_id,
            split=node,
            definition=definition,
            now=now,
        )
        for node_id, node in definition.nodes.items()
        if isinstance(node, SplitNode) and node.ab_test
    ]


def settle_splits(
    conn: Connection,
    *,
    business_id: str,
    journey_id: str,
    version: int,
    definition: JourneyDefinition,
    now: datetime,
) -> list[SplitResult]:
    """Decide every undecided A/B split of a journey version; winners are written once."""
    results = []
    for node_id, node in definition.nodes.items():
        if not isinstance(node, SplitNode) or not node.ab_test:
            continue
        if settled_winner(conn, journey_id=journey_id, version=version, node=node_id):
            continue
        result = split_result(
            conn,
            journey_id=journey_id,
            version=version,
            node=node_id,
            split=node,
            definition=definition,
            now=now,
        )
        results.append(result)
        if result.winner is not None:
            conn.execute(
                insert(journey_split_winners).values(
                    journey_id=journey_id,
                    version=version,
                    node=node_id,
                    business_id=business_id,
                    winner=result.winner,
                    detail=orjson.dumps(
                        {"p_values": result.p_values, "paths": [p.__dict__ for p in result.paths]}
                    ).decode(),
                    decided_at=now,
                )
            )
    return results


@dataclass(frozen=True)
class NodeCounts:
    node: str
    entered: int
    waiting_now: int
    outcomes: dict[str, int]


def node_counts(conn: Connection, *, journey_id: str) -> list[NodeCounts]:
    """How many people reached each node, are there now, and what happened to them."""
    steps, runs = journey_steps.c, journey_runs.c
    by_outcome = conn.execute(
        select(steps.node, steps.outcome, func.count(func.distinct(steps.run_id)).label("n"))
        .where(steps.journey_id == journey_id)
        .group_by(steps.node, steps.outcome)
    ).all()
    waiting: dict[str, int] = dict(
        conn.execute(
            select(runs.node, func.count())
            .where(runs.journey_id == journey_id, runs.status == "active")
            .group_by(runs.node)
        ).all()
    )
    reached: dict[str, int] = dict(
        conn.execute(
            select(steps.node, func.count(func.distinct(steps.run_id)))
            .where(steps.journey_id == journey_id)
            .group_by(steps.node)
        ).all()
    )
    outcomes: dict[str, dict[str, int]] = {}
    for row in by_outcome:
        outcomes.setdefault(row.node, {})[row.outcome] = int(row.n)
    return [
        NodeCounts(
            node=node,
            entered=int(reached.get(node, 0)),
            waiting_now=int(waiting.get(node, 0)),
            outcomes=outcomes.get(node, {}),
        )
        for node in sorted(reached)
    ]


def per_day(conn: Connection, *, journey_id: str, since: datetime) -> dict[str, tuple[int, int]]:
    """(entries, conversions) per UTC day since `since`: entries by the day people entered,
    conversions by the day their run converted."""
    runs = journey_runs.c
    entry_day, conversion_day = utc_day(runs.entered_at), utc_day(runs.finished_at)
    entered = conn.execute(
        select(entry_day, func.count())
        .where(runs.journey_id == journey_id, runs.entered_at >= since)
        .group_by(entry_day)
    ).all()
    converted = conn.execute(
        select(conversion_day, func.count())
        .where(
            runs.journey_id == journey_id,
            runs.status == "converted",
            runs.finished_at >= since,
        )
        .group_by(conversion_day)
    ).all()
    days: dict[str, tuple[int, int]] = {str(day): (int(n), 0) for day, n in entered}
    for day, n in converted:
        days[str(day)] = (days.get(str(day), (0, 0))[0], int(n))
    return dict(sorted(days.items()))


@dataclass(frozen=True)
class JourneySummary:
    entered: int
    active: int
    converted: int
    exited: int
    failed: int
    conversion_rate: float
    conversion_interval: tuple[float, float]


def inside_per_version(conn: Connection, *, journey_id: str) -> dict[int, int]:
    """People inside the journey now (active runs), by the version they are on."""
    runs = journey_runs.c
    rows = conn.execute(
        select(runs.version, func.count())
        .where(runs.journey_id == journey_id, runs.status == "active")
        .group_by(runs.version)
        .order_by(runs.version)
    ).all()
    return {int(version): int(people) for version, people in rows}


def summary(conn: Connection, *, journey_id: str) -> JourneySummary:
    runs = journey_runs.c
    counts: dict[str, int] = dict(
        conn.execute(
            select(runs.status, func.count())
            .where(runs.journey_id == journey_id)
            .group_by(runs.status)
        ).all()
    )
    entered = sum(counts.values())
    converted = int(counts.get("converted", 0))
    return JourneySummary(
        entered=entered,
        active=int(counts.get("active", 0)),
        converted=converted,
        exited=int(counts.get("exited", 0)),
        failed=int(counts.get("failed", 0)),
        conversion_rate=converted / entered if entered else 0.0,
        conversion_interval=wilson(converted, entered),
    )


@dataclass(frozen=True)
class JourneyConversions:
    """People who entered a journey since a time, and how many of them converted."""

    key: str
    name: str
    status: str
    entered: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.entered if self.entered else 0.0


def conversions(conn: Connection, *, business_id: str, since: datetime) -> list[JourneyConversions]:
    """Entries since `since` and their conversions, per journey of the business (journeys
    nobody entered included), in one grouped query."""
    runs = journey_runs.c
    rows = conn.execute(
        select(
            journeys.c.key,
            journeys.c.name,
            journeys.c.status,
            func.count(runs.id).label("entered"),
            func.coalesce(func.sum(case((runs.status == "converted", 1), else_=0)), 0).label(
                "converted"
            ),
        )
        .select_from(
            journeys.outerjoin(
                journey_runs, and_(runs.journey_id == journeys.c.id, runs.entered_at >= since)
            )
        )
        .where(journeys.c.business_id == business_id)
        .group_by(journeys.c.key, journeys.c.name, journeys.c.status)
        .order_by(journeys.c.name)
    ).all()
    return [
        JourneyConversions(
            key=row.key,
            name=row.name,
            status=row.status,
            entered=int(row.entered),
            converted=int(row.converted),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class HoldoutComparison:
    """Conversion of people with smart timing and channel against the holdout."""

    optimised: PathResult
    holdout: PathResult
    lift: float
    p_value: float


def smart_comparison(conn: Connection, *, journey_id: str) -> HoldoutComparison:
    runs = journey_runs.c
    rows = {
        bool(row.holdout): (int(row.people), int(row.converted or 0))
        for row in conn.execute(
            select(
                runs.holdout,
                func.count().label("people"),
                func.sum(case((runs.status == "converted", 1), else_=0)).label("converted"),
            )
            .where(runs.journey_id == journey_id)
            .group_by(runs.holdout)
        )
    }

    def group(name: str, key: bool) -> PathResult:
        people, converted = rows.get(key, (0, 0))
        return PathResult(
            name=name,
            people=people,
            converted=converted,
            rate=converted / people if people else 0.0,
            interval=wilson(converted, people),
        )

    optimised, holdout = group("optimised", False), group("holdout", True)
    return HoldoutComparison(
        optimised=optimised,
        holdout=holdout,
        lift=(optimised.rate - holdout.rate) / holdout.rate if holdout.rate else 0.0,
        p_value=two_proportion_p(
            optimised.converted, optimised.people, holdout.converted, holdout.people
        ),
    )
