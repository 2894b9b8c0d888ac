"""Attribution on the engine equals a plain Python implementation on random event sets, on
DuckDB and on Spark; the channel rules in Ibis equal the pure function."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.analytics import channels
from accord.analytics.attribution import MODELS, AttributionSpec, attribution_table, day_start
from accord.audiences.compile import IDENTIFIER_SCHEMA
from accord.engine.connection import close, connect
from accord.engine.lake import events as lake_events
from accord.engine.tables import register
from accord.lake.schema import lake_row
from accord.lake.service import write_batch

BUSINESS = "biz_attr"
START = datetime(2026, 11, 1, tzinfo=UTC)
PEOPLE = 5
# One connection for every example: opening one per example costs more than the query.
DUCKDB = connect("duckdb://")

SOURCES = [None, "", "google", "Facebook", "newsletter", "partner-site", " bing "]
MEDIUMS = [None, "cpc", "CPC", "social", "email", "organic", "display", "referral", "weird"]
CAMPAIGNS = [None, "", "spring", "Black Friday", " spring "]
REFERRERS = [
    None,
    "",
    "https://www.google.com/search?q=x",
    "https://t.co/abc",
    "https://blog.example.org/post",
    "https://shop.test/cart",
    "HTTP://M.Facebook.com/",
    "not a url",
]
PAGES = [None, "https://shop.test/", "https://other.test/"]


@dataclass(frozen=True)
class Event:
    person: int  # -1: someone without a profile
    known: bool  # sent with the person's userId
    event: str
    at: datetime
    revenue: float | None
    source: str | None
    medium: str | None
    campaign: str | None
    referrer: str | None
    page: str | None


events_strategy = st.builds(
    Event,
    person=st.integers(-1, PEOPLE - 1),
    known=st.booleans(),
    event=st.sampled_from(["Order Completed", "Product Viewed", "Signed Up"]),
    at=st.integers(0, 20 * 24).map(lambda hours: START + timedelta(hours=hours)),
    revenue=st.one_of(st.none(), st.sampled_from([10.0, 25.5, 99.0])),
    source=st.sampled_from(SOURCES),
    medium=st.sampled_from(MEDIUMS),
    campaign=st.sampled_from(CAMPAIGNS),
    referrer=st.sampled_from(REFERRERS),
    page=st.sampled_from(PAGES),
)
specs = st.builds(
    lambda model, event, lookback, first, length: AttributionSpec.model_validate(
        {
            "model": model,
            "conversion_event": event,
            "lookback_days": lookback,
            "from": (START + timedelta(days=first)).date(),
            "to": (START + timedelta(days=first + length)).date(),
        }
    ),
    st.sampled_from(MODELS),
    st.sampled_from(["Order Completed", "Signed Up"]),
    st.integers(1, 10),
    st.integers(0, 15),
    st.integers(0, 10),
)


def _user(person: int) -> str | None:
    return f"u{person}" if person % 2 == 0 else None


def _anonymous(person: int, index: int) -> str:
    return f"a{person}-{index % 2}" if person >= 0 else "nobody"


def identifiers() -> pa.Table:
    rows = []
    for person in range(PEOPLE):
        user = _user(person)
        if user:
            rows.append({"kind": "user_id", "value": user, "profile_id": f"p{person}"})
        rows += [
            {"kind": "anonymous_id", "value": f"a{person}-{i}", "profile_id": f"p{person}"}
            for i in range(2)
        ]
    return pa.Table.from_pylist(rows, schema=IDENTIFIER_SCHEMA)


def write_events(lake: Path, found: list[Event]) -> None:
    rows = []
    for index, e in enumerate(found):
        call: dict[str, Any] = {
            "type": "track",
            "messageId": f"m{index}",
            "event": e.event,
            "anonymousId": _anonymous(e.person, index),
            "timestamp": e.at.isoformat(),
            "properties": {"revenue": e.revenue} if e.revenue is not None else {},
            "context": {
                "campaign": {
                    k: v
                    for k, v in (("source", e.source), ("medium", e.medium), ("name", e.campaign))
                    if v is not None
                },
                "page": {
                    k: v for k, v in (("referrer", e.referrer), ("url", e.page)) if v is not None
                },
            },
        }
        user = _user(e.person) if e.person >= 0 else None
        if e.known and user:
            call["userId"] = user
        rows.append((BUSINESS, lake_row(index, "src", call)))
    write_batch(str(lake), batch_id="bat_1", rows=rows)


def in_memory(
    found: list[Event], spec: AttributionSpec
) -> dict[tuple[str, str], tuple[float, ...]]:
    """The report written the plain way, one conversion at a time."""
    user_ids = {f"u{p}": f"p{p}" for p in range(PEOPLE) if _user(p)}
    anonymous = {f"a{p}-{i}": f"p{p}" for p in range(PEOPLE) for i in range(2)}
    people: dict[str, list[tuple[datetime, str, Event]]] = {}
    for index, e in enumerate(found):
        user = _user(e.person) if e.person >= 0 and e.known else None
        profile = user_ids.get(user or "") or anonymous.get(_anonymous(e.person, index))
        if profile is not None:
            people.setdefault(profile, []).append((e.at, f"m{index}", e))
    start, end = day_start(spec.from_), day_start(spec.to + timedelta(days=1))
    totals: dict[tuple[str, str], list[float]] = {}
    for history in people.values():
        history.sort(key=lambda item: (item[0], item[1]))
        converted = [item for item in history if item[2].event == spec.conversion_event]
        first_id = converted[0][1] if converted else None
        touched = []
        for at, _, e in history:
            external = channels.referrer_host(e.referrer, e.page)
            if channels.is_touch(e.source, e.medium, e.campaign, external):
                touched.append(
                    (
                        at,
                        channels.channel(e.source, e.medium, external),
                        channels.campaign(e.campaign),
                    )
                )
        for at, message_id, e in converted:
            if not start <= at < end:
                continue
            window = [t for t in touched if at - timedelta(days=spec.lookback_days) <= t[0] <= at]
            if not window:
                credit = [(("direct", channels.NO_CAMPAIGN), 1.0)]
            elif spec.model == "first_touch":
                first = min(window, key=lambda t: (t[0], t[1], t[2]))
                credit = [((first[1], first[2]), 1.0)]
            elif spec.model == "last_touch":
                last = max(window, key=lambda t: t[0])
                tied = [t for t in window if t[0] == last[0]]
                chosen = min(tied, key=lambda t: (t[1], t[2]))
                credit = [((chosen[1], chosen[2]), 1.0)]
            else:
                credit = [((t[1], t[2]), 1.0 / len(window)) for t in window]
            for key, weight in credit:
                sums = totals.setdefault(key, [0.0, 0.0, 0.0])
                sums[0] += weight
                sums[1] += weight if message_id == first_id else 0.0
                sums[2] += weight * (e.revenue or 0.0)
    return {key: tuple(v) for key, v in totals.items()}


def on_engine(
    backend: Any, found: list[Event], spec: AttributionSpec
) -> dict[tuple[str, str], tuple[float, ...]]:
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        write_events(lake, found)
        table = attribution_table(
            lake_events(backend, str(lake), business_id=BUSINESS),
            register(backend, identifiers()),
            spec,
        )
        rows = backend.to_pyarrow(table).to_pylist()
    return {
        (r["channel"], r["campaign"]): (r["conversions"], r["new_customers"], r["revenue"])
        for r in rows
    }


def check(backend: Any, found: list[Event], spec: AttributionSpec) -> None:
    expected = in_memory(found, spec)
    got = on_engine(backend, found, spec)
    assert set(got) == set(expected), spec
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=1e-9), (key, spec)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(found=st.lists(events_strategy, min_size=1, max_size=30), spec=specs)
def test_duckdb_agrees_with_plain_python(found: list[Event], spec: AttributionSpec) -> None:
    check(DUCKDB, found, spec)


@pytest.fixture(scope="module")
def spark_backend() -> Iterator[Any]:
    backend = connect("pyspark://local[2]")
    yield backend
    close(backend)


@pytest.mark.slow
@pytest.mark.spark
def test_spark_agrees_with_plain_python(spark_backend: Any) -> None:
    @settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(found=st.lists(events_strategy, min_size=5, max_size=30), spec=specs)
    def run(found: list[Event], spec: AttributionSpec) -> None:
        check(spark_backend, found, spec)

    run()


texts = st.one_of(
    st.none(),
    st.sampled_from([*SOURCES, *MEDIUMS, *channels.SEARCH_SOURCES, *channels.SOCIAL_SOURCES]),
    st.text(alphabet="abcXYZ -_.\t", max_size=8),
)
urls = st.one_of(
    st.sampled_from(REFERRERS + PAGES),
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}{path}",
        st.sampled_from(["http", "https", "HTTPS", "ftp"]),
        st.sampled_from(["www.google.de", "t.co", "x.com", "news.ycombinator.com", "shop.test"]),
        st.sampled_from(["", "/", "/a?b=c", ":8080/x"]),
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(texts, texts, texts, urls, urls), min_size=1, max_size=20))
def test_channel_rules_agree_on_duckdb(rows: list[tuple[Any, ...]]) -> None:
    backend = DUCKDB
    table = register(
        backend,
        pa.Table.from_pylist(
            [
                {
                    "i": i,
                    "utm_source": s,
                    "utm_medium": m,
                    "utm_campaign": c,
                    "page_referrer": r,
                    "page_url": u,
                }
                for i, (s, m, c, r, u) in enumerate(rows)
            ],
            schema=pa.schema(
                [("i", pa.int64())]
                + [
                    (n, pa.string())
                    for n in (
                        "utm_source",
                        "utm_medium",
                        "utm_campaign",
                        "page_referrer",
                        "page_url",
                    )
                ]
            ),
        ),
    )
    external = channels.referrer_host_column(table.page_referrer, table.page_url)
    marked = table.mutate(external=external)
    query = marked.select(
        "i",
        "external",
        touch=channels.is_touch_column(marked, marked.external),
        channel=channels.channel_column(marked.utm_source, marked.utm_medium, marked.external),
        campaign=channels.campaign_column(marked.utm_campaign),
    ).order_by("i")
    for (s, m, c, r, u), got in zip(rows, backend.to_pyarrow(query).to_pylist(), strict=True):
        external_host = channels.referrer_host(r, u)
        assert got["external"] == external_host
        assert got["touch"] == channels.is_touch(s, m, c, external_host)
        assert got["channel"] == channels.channel(s, m, external_host)
        assert got["campaign"] == channels.campaign(c)


def test_channel_rules_by_example() -> None:
    assert channels.channel("google", "cpc", None) == "paid search"
    assert channels.channel("facebook", "cpc", None) == "paid social"
    assert channels.channel("newsletter", "email", None) == "email"
    assert channels.channel(None, None, "www.google.com") == "organic search"
    assert channels.channel(None, None, "t.co") == "social"
    assert channels.channel(None, None, "blog.example.org") == "referral"
    assert channels.channel(None, None, None) == "direct"
    assert channels.channel("instagram", None, None) == "social"
    assert channels.channel("someone", "weird", None) == "other"
    assert channels.referrer_host("https://shop.test/a", "https://shop.test/b") is None
