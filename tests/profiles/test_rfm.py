"""RFM scores: quintile boundaries on the engine, batch scores, and real-time scores agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accord.accounts.models import Bootstrap
from accord.audiences.refresh import preview
from accord.audiences.text import parse
from accord.core.settings import Settings
from accord.engine.connection import connect
from accord.profiles import rfm
from accord.profiles.service import profile_view, run_rfm
from accord.store.db import Store
from tests.identity.helpers import ev, process, profile_of

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def _rfm(computed: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in computed.items() if k in rfm.TRAITS}


def _orders(person: int) -> list[dict[str, Any]]:
    """Person n orders (n % 4) + 1 times, for 10·n, the last on day n of November."""
    return [
        ev(
            userId=f"u-{person}",
            event="Order Completed",
            properties={"revenue": 10 * person + k},
            timestamp=f"2026-11-{1 + (person + k) % 28:02d}T10:00:00Z",
        )
        for k in range(person % 4 + 1)
    ]


def test_batch_scores_equal_real_time_scores_and_numpy_quintiles(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    events = [e for n in range(1, 13) for e in _orders(n)]
    events.append(ev(userId="browser", event="Product Viewed"))
    process(store, keys, lake, events, batch=50)

    run = run_rfm(store, business_id=biz, engine_url="duckdb://", as_of=AS_OF)
    assert (run.customers, run.scored) == (12, 12)

    with store.read() as conn:
        base = rfm.base_table(conn, business_id=biz).to_pylist()
        bounds = rfm.load_boundaries(conn, business_id=biz)
        assert bounds is not None and bounds.as_of == AS_OF
        # The engine's boundaries are the interpolated percentiles of the base.
        recency = [AS_OF.timestamp() - row["last_order_epoch"] for row in base]
        for name, values in (
            ("recency", recency),
            ("frequency", [row["frequency"] for row in base]),
            ("monetary", [row["monetary"] for row in base]),
        ):
            expected = np.percentile(values, [20, 40, 60, 80])
            assert getattr(bounds, name) == pytest.approx(tuple(expected))
        segments = set()
        for n in range(1, 13):
            pid = profile_of(store, biz, f"user_id:u-{n}")
            view = profile_view(conn, business_id=biz, profile_id=pid, as_of=AS_OF)
            traits, live = view.traits, _rfm(view.computed)
            assert {k: traits[k] for k in rfm.TRAITS} == live
            segments.add(live["rfm_segment"])
            assert all(1 <= live[k] <= 5 for k in rfm.TRAITS[:3])
        assert len(segments) > 3
        browser = profile_of(store, biz, "user_id:browser")
        seen = profile_view(conn, business_id=biz, profile_id=browser, as_of=AS_OF)
        assert _rfm(seen.computed) == {}
        assert "rfm_segment" not in seen.traits

    # The biggest spender is in the top monetary quintile and audiences select on it.
    top = max(base, key=lambda row: row["monetary"])["profile_id"]
    with store.read() as conn:
        computed = profile_view(conn, business_id=biz, profile_id=top, as_of=AS_OF).computed
        assert computed["rfm_monetary_score"] == 5
    chosen = preview(
        store,
        business_id=biz,
        definition=parse("trait rfm_monetary_score >= 5"),
        backend=connect("duckdb://"),
        lake_url=lake,
    )
    assert top in {m.profile_id for m in chosen.sample}
    assert chosen.size == sum(1 for row in base if row["monetary"] > bounds.monetary[-1])


def test_a_new_order_is_scored_in_real_time(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    biz, lake = keys.business_id, settings.resolved_lake_url()
    process(store, keys, lake, [e for n in range(1, 11) for e in _orders(n)], batch=50)
    run_rfm(store, business_id=biz, engine_url="duckdb://", as_of=AS_OF)
    # A newcomer orders after the batch run: the worker scores them with the stored
    # boundaries, as the batch would have.
    process(store, keys, lake, _orders(40), batch=50)
    newcomer = profile_of(store, biz, "user_id:u-40")
    with store.read() as conn:
        traits = profile_view(conn, business_id=biz, profile_id=newcomer).traits
        assert traits["rfm_monetary_score"] == 5
        assert traits["rfm_segment"] == "".join(str(traits[k]) for k in rfm.TRAITS[:3])


def test_a_business_without_customers_gets_no_boundaries(
    store: Store, keys: Bootstrap, settings: Settings
) -> None:
    run = run_rfm(store, business_id=keys.business_id, engine_url="duckdb://", as_of=AS_OF)
    assert (run.customers, run.scored, run.boundaries["recency"]) == (0, 0, [])
    with store.read() as conn:
        assert rfm.load_boundaries(conn, business_id=keys.business_id) is None


def test_the_cli_scores_one_business_or_every_one(
    store: Store, keys: Bootstrap, settings: Settings, tmp_path: Any, database_url: str
) -> None:
    from accord.accounts.service import bootstrap
    from tests.test_cli import Cli

    biz, lake = keys.business_id, settings.resolved_lake_url()
    process(store, keys, lake, [e for n in range(1, 6) for e in _orders(n)], batch=50)
    other = bootstrap(store, name="Other Shop")
    process(store, other, lake, _orders(3), batch=50)
    cli = Cli(tmp_path, database_url)
    [one] = cli.json("profiles", "rfm", "--business", biz)
    assert (one["business_id"], one["customers"], one["scored"]) == (biz, 5, 5)
    assert len(one["boundaries"]["monetary"]) == 4
    every = cli.json("profiles", "rfm")
    assert sorted((r["business_id"], r["customers"]) for r in every) == sorted(
        [(biz, 5), (other.business_id, 1)]
    )
    with store.read() as conn:
        pid = profile_of(store, other.business_id, "user_id:u-3")
        # One customer: every boundary is their own value, so every score is the lowest
        # above none of them (recency counts as most recent).
        assert (
            profile_view(conn, business_id=other.business_id, profile_id=pid).traits["rfm_segment"]
            == "511"
        )


bases = st.lists(
    st.tuples(
        st.integers(1_700_000_000, 1_764_000_000),  # last order, epoch seconds
        st.integers(1, 6),  # orders
        st.integers(0, 50_000),  # cents
    ),
    min_size=1,
    max_size=40,
)


def _base(rows: list[tuple[int, int, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"profile_id": f"p{i}", "last_order_epoch": e, "frequency": f, "monetary": m}
            for i, (e, f, m) in enumerate(rows)
        ],
        schema=rfm.BASE_SCHEMA,
    )


def _python_scores(base: pa.Table, bounds: rfm.Boundaries) -> dict[str, dict[str, Any]]:
    return {
        row["profile_id"]: rfm.score(
            bounds,
            rfm.Inputs(row["last_order_epoch"], row["frequency"], row["monetary"]),
            as_of=bounds.as_of,
        )
        for row in base.to_pylist()
    }


@hypothesis_settings(max_examples=25, deadline=None)
@given(bases)
def test_engine_scores_equal_python_scores(rows: list[tuple[int, int, int]]) -> None:
    base, backend = _base(rows), connect("duckdb://")
    bounds = rfm.boundaries_on_engine(backend, base, as_of=AS_OF)
    assert bounds is not None
    assert all(list(cuts) == sorted(cuts) for cuts in (bounds.recency, bounds.monetary))
    assert rfm.scores_on_engine(backend, base, bounds) == _python_scores(base, bounds)


@pytest.mark.slow
@pytest.mark.spark
def test_spark_gives_the_boundaries_and_scores_duckdb_gives() -> None:
    rows = [(1_760_000_000 + 86_400 * (i % 17), 1 + i % 5, 100 * (i * 37 % 101)) for i in range(60)]
    base = _base(rows)
    spark, duck = connect("pyspark://local[2]"), connect("duckdb://")
    on_spark = rfm.boundaries_on_engine(spark, base, as_of=AS_OF)
    on_duck = rfm.boundaries_on_engine(duck, base, as_of=AS_OF)
    assert on_spark is not None and on_duck is not None
    for name in rfm.DIMENSIONS:
        assert getattr(on_spark, name) == pytest.approx(getattr(on_duck, name))
    assert rfm.scores_on_engine(spark, base, on_duck) == _python_scores(base, on_duck)


def test_cuts_of_equal_values_stay_in_order() -> None:
    # Interpolated quantiles of equal values once came out 51.00000000000001 before 51.0.
    base, backend = _base([(1_700_000_000, 1, 51)] * 2), connect("duckdb://")
    bounds = rfm.boundaries_on_engine(backend, base, as_of=AS_OF)
    assert bounds is not None
    assert all(list(cuts) == sorted(cuts) for cuts in (bounds.recency, bounds.monetary))
