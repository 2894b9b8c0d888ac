"""Send-time optimisation and next-best-channel: documented, explainable estimates.

Best hour: each engagement (open, click, reply) a person made is placed on the 24-hour
clock of their time zone. Their hourly counts are smoothed with the business-wide
hourly distribution as a prior (weight `PRIOR_WEIGHT` engagements), and spread to the
neighbouring hours (a person who opens at 8:55 would open at 9:05 too). The hour with
the highest smoothed share wins; with no history at all it is the business-wide best
hour, and with no business history either, the journey's fallback hour.

Next-best channel: for each channel the person can be reached on (consent, address,
not suppressed), the response rate is estimated as a Beta posterior mean whose prior is
that channel's business-wide rate with `PRIOR_WEIGHT` pseudo-sends. The highest
estimate wins; ties go to the order the journey lists the channels in.

A fixed share of people (the holdout) gets neither: they are sent at once on the first
listed channel, so the journey report can compare conversion with and without.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

PRIOR_WEIGHT = 5.0
NEIGHBOUR_SHARE = 0.25


def hourly_counts(moments: Iterable[datetime], zone: ZoneInfo) -> list[float]:
    counts = [0.0] * 24
    for moment in moments:
        counts[moment.astimezone(zone).hour] += 1
    return counts


def _spread(counts: Sequence[float]) -> list[float]:
    return [
        counts[h] * (1 - 2 * NEIGHBOUR_SHARE)
        + counts[(h - 1) % 24] * NEIGHBOUR_SHARE
        + counts[(h + 1) % 24] * NEIGHBOUR_SHARE
        for h in range(24)
    ]


def best_hour(
    personal: Sequence[float], population: Sequence[float], *, fallback: int
) -> tuple[int, str]:
    """The hour (0-23, person's local time) to send at, and which evidence chose it."""
    own_total, pop_total = sum(personal), sum(population)
    if own_total == 0 and pop_total == 0:
        return fallback, "fallback"
    prior = [PRIOR_WEIGHT * p / pop_total for p in population] if pop_total else [0.0] * 24
    smoothed = _spread([personal[h] + prior[h] for h in range(24)])
    hour = max(range(24), key=lambda h: (smoothed[h], -h))
    return hour, "person" if own_total else "business"


@dataclass(frozen=True)
class ChannelStats:
    sends: int
    responses: int


def channel_scores(
    personal: Mapping[str, ChannelStats], population: Mapping[str, ChannelStats]
) -> dict[str, float]:
    scores = {}
    for channel in set(personal) | set(population):
        pop = population.get(channel, ChannelStats(0, 0))
        prior_rate = pop.responses / pop.sends if pop.sends else 0.0
        own = personal.get(channel, ChannelStats(0, 0))
        scores[channel] = (own.responses + PRIOR_WEIGHT * prior_rate) / (own.sends + PRIOR_WEIGHT)
    return scores


def next_best_channel(
    candidates: Sequence[str],
    reachable: Iterable[str],
    personal: Mapping[str, ChannelStats],
    population: Mapping[str, ChannelStats],
) -> str | None:
    """The reachable candidate with the best estimated response rate, or None."""
    open_channels = [c for c in candidates if c in set(reachable)]
    if not open_channels:
        return None
    scores = channel_scores(personal, population)
    return max(open_channels, key=lambda c: (scores.get(c, 0.0), -candidates.index(c)))
