"""Attribution of conversions to channels and campaigns, as Ibis steps that run on DuckDB
and Spark alike: `resolved_events` (each event with the profile it belongs to, across
the person's anonymous and known ids), `touches`, `conversions`, `credited` (the model's
weights) and `by_channel_and_campaign`.

Semantics (docs/analytics.md): a conversion is an event named `conversion_event`, of a
known profile, on a UTC day from `from` to `to`; its touches are the profile's touches
(see `channels`) at most `lookback_days` before it and not after it. First touch gives
the whole conversion to the earliest, last touch to the latest (ties: by channel, then
campaign, alphabetically), linear an equal share to each. A conversion without a touch
goes to `direct`. A profile's first conversion ever is its acquisition (new customer).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import ibis
from pydantic import BaseModel, ConfigDict, Field

from accord.analytics.channels import (
    NO_CAMPAIGN,
    campaign_column,
    channel_column,
    is_touch_column,
    referrer_host_column,
)
from accord.core.errors import FieldProblem, InvalidInput

Model = Literal["first_touch", "last_touch", "linear"]
MODELS: tuple[Model, ...] = ("first_touch", "last_touch", "linear")
MAX_LOOKBACK_DAYS = 365
# A year of conversions (and a year of lookback before it) is what one query reads.
MAX_RANGE_DAYS = 366


class AttributionSpec(BaseModel):
    """What to attribute: the body of `POST /api/analytics/attribution`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: Model = Field("last_touch", description="first_touch, last_touch or linear")
    conversion_event: str = Field("Order Completed", min_length=1, max_length=200)
    lookback_days: int = Field(30, gt=0, le=MAX_LOOKBACK_DAYS)
    from_: date = Field(alias="from", description="First UTC day of conversions")
    to: date = Field(description="Last UTC day of conversions, included")


def check(spec: AttributionSpec) -> None:
    """What a spec's fields cannot say alone: the range runs forward and is not too long."""
    if spec.from_ > spec.to:
        raise InvalidInput([FieldProblem("to", "must be on or after from")])
    if (spec.to - spec.from_).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput([FieldProblem("to", f"a range of at most {MAX_RANGE_DAYS} days")])


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _instant(value: datetime) -> Any:
    return ibis.literal(value, type="timestamp('UTC')")


def resolved_events(events: Any, identifiers: Any) -> Any:
    """Events with the `profile_id` they belong to: the profile of their userId, else of
    their anonymousId, as the worker links them. Events of no known profile are left out."""
    ids = identifiers
    by_user = ids.filter(ids.kind == "user_id").select(
        user_value=ids.value, user_profile=ids.profile_id
    )
    by_anonymous = ids.filter(ids.kind == "anonymous_id").select(
        anonymous_value=ids.value, anonymous_profile=ids.profile_id
    )
    joined = events.left_join(by_user, events.user_id == by_user.user_value).left_join(
        by_anonymous, events.anonymous_id == by_anonymous.anonymous_value
    )
    resolved = joined.select(
        profile_id=ibis.coalesce(joined.user_profile, joined.anonymous_profile),
        message_id=joined.message_id,
        event=joined.event,
        timestamp=joined.timestamp,
        revenue=joined.revenue,
        utm_source=joined.utm_source,
        utm_medium=joined.utm_medium,
        utm_campaign=joined.utm_campaign,
        page_referrer=joined.page_referrer,
        page_url=joined.page_url,
    )
    return resolved.filter(resolved.profile_id.notnull() & resolved.timestamp.notnull())


def touches(resolved: Any) -> Any:
    """touch_profile, touched_at, channel, campaign: every touch of every profile."""
    external = referrer_host_column(resolved.page_referrer, resolved.page_url)
    marked = resolved.mutate(external=external)
    found = marked.filter(is_touch_column(marked, marked.external))
    return found.select(
        touch_profile=found.profile_id,
        touched_at=found.timestamp,
        channel=channel_column(found.utm_source, found.utm_medium, found.external),
        campaign=campaign_column(found.utm_campaign),
    )


def conversions(resolved: Any, spec: AttributionSpec) -> Any:
    """profile_id, conversion_id, converted_at, revenue, new_customer: the conversions in
    the range, each marked when it is its profile's first conversion ever."""
    named = resolved.filter(resolved.event == spec.conversion_event)
    order = ibis.row_number().over(
        group_by=named.profile_id, order_by=[named.timestamp, named.message_id]
    )
    ranked = named.select(
        profile_id=named.profile_id,
        conversion_id=named.message_id,
        converted_at=named.timestamp,
        revenue=named.revenue.fill_null(0.0).cast("float64"),
        new_customer=order == 0,
    )
    start, end = day_start(spec.from_), day_start(spec.to + timedelta(days=1))
    return ranked.filter(
        (ranked.converted_at >= _instant(start)) & (ranked.converted_at < _instant(end))
    )


def credited(converted: Any, touched: Any, spec: AttributionSpec) -> Any:
    """conversion_id, new_customer, revenue, channel, campaign, weight: each conversion's
    credit, by the model (weights of one conversion add up to 1)."""
    lookback = ibis.interval(days=spec.lookback_days)
    pairs = converted.join(
        touched,
        [
            converted.profile_id == touched.touch_profile,
            touched.touched_at <= converted.converted_at,
            touched.touched_at >= converted.converted_at - lookback,
        ],
    )
    key = [pairs.profile_id, pairs.conversion_id]
    columns = ["conversion_id", "new_customer", "revenue", "channel", "campaign"]
    if spec.model == "linear":
        share = 1.0 / pairs.count().over(group_by=key).cast("float64")
        weighted = pairs.mutate(weight=share).select(*columns, "weight")
    else:
        when = pairs.touched_at if spec.model == "first_touch" else pairs.touched_at.desc()
        rank = ibis.row_number().over(group_by=key, order_by=[when, pairs.channel, pairs.campaign])
        ranked = pairs.mutate(touch_rank=rank)
        weighted = (
            ranked.filter(ranked.touch_rank == 0)
            .mutate(weight=ibis.literal(1.0, type="float64"))
            .select(*columns, "weight")
        )
    touched_ids = pairs.select(touched_id=pairs.conversion_id, touched_profile=pairs.profile_id)
    untouched = converted.anti_join(
        touched_ids,
        [
            converted.conversion_id == touched_ids.touched_id,
            converted.profile_id == touched_ids.touched_profile,
        ],
    )
    direct = untouched.select(
        conversion_id=untouched.conversion_id,
        new_customer=untouched.new_customer,
        revenue=untouched.revenue,
        channel=ibis.literal("direct", type="string"),
        campaign=ibis.literal(NO_CAMPAIGN, type="string"),
        weight=ibis.literal(1.0, type="float64"),
    )
    return weighted.union(direct)


def by_channel_and_campaign(credit: Any) -> Any:
    """channel, campaign, conversions, new_customers, revenue: the credit added up."""
    return (
        credit.group_by(["channel", "campaign"])
        .aggregate(
            conversions=credit.weight.sum(),
            new_customers=credit.new_customer.ifelse(credit.weight, 0.0).sum(),
            revenue=(credit.weight * credit.revenue).sum(),
        )
        .order_by(["channel", "campaign"])
    )


def attribution_table(events: Any, identifiers: Any, spec: AttributionSpec) -> Any:
    """The whole report as one Ibis expression over the lake's events of one business and
    its identifiers (kind, value, profile_id)."""
    resolved = resolved_events(events, identifiers)
    return by_channel_and_campaign(credited(conversions(resolved, spec), touches(resolved), spec))
