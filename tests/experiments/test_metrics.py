"""The metrics compiler: per-unit sums match a plain pandas reading, DuckDB and Spark agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pytest

from accord.core.errors import InvalidInput
from accord.engine.connection import close, connect
from accord.experiments import adlogs
from accord.experiments.metrics import (
    CATALOGUE,
    Measure,
    arm_sums,
    daily_sums,
    day_of,
    metric_catalogue,
    pre_measures_of,
    unit_values,
    winsor_caps,
)
from accord.experiments.models import MetricDefinition
from accord.experiments.simulate import Scenario, simulate

START = datetime(2026, 10, 1, tzinfo=UTC)
ISSUE_METRICS = {
    "avg_topics_per_bid_request",
    "avg_time_in_view",
    "ctr",
    "clicks_per_euro",
    "conversions_per_euro",
    "conversion_rate",
    "unique_bid_responses",
    "unique_users_reached",
    "video_completion_rate",
    "change_in_planned_spend",
    "auction_latency",
    "revenue_per_impression",
    "fill_rate",
    "timeout_rate",
    "unique_bid_requests",
}


@pytest.fixture(scope="module")
def table() -> Any:
    scenario = Scenario(
        arms=["treatment", "control_1", "control_2"],
        weights=[3, 1, 3],
        users=400,
        start=START,
        days=7,
        pre_period_days=7,
        topics_arms=["treatment"],
        seed=5,
    )
    return simulate(scenario)


def _reference(frame: pd.DataFrame, m: Measure) -> pd.Series:
    rows = frame if m.event_type is None else frame[frame["type"] == m.event_type]
    if m.flag is not None:
        rows = rows[rows[m.flag].fillna(False).astype(bool)]
    grouped = rows.groupby("unit")
    if m.distinct:
        return grouped["record_id"].nunique().astype(float)
    if m.value is not None:
        return grouped[m.value].sum().astype(float)
    return grouped["record_id"].count().astype(float)


def test_catalogue_has_every_metric_of_the_issue() -> None:
    assert {m.key for m in CATALOGUE} >= ISSUE_METRICS
    assert all(m.definition for m in CATALOGUE)


def test_per_unit_values_match_pandas(table: Any) -> None:
    backend = ibis.duckdb.connect()
    logs = backend.create_table("logs", table)
    metrics = list(metric_catalogue().values())
    units = unit_values(logs, metrics, start=START, pre_period=timedelta(days=7)).execute()
    units = units.set_index("unit")
    frame = table.to_pandas()
    post = frame[frame["timestamp"] >= pd.Timestamp(START)]
    pre = frame[frame["timestamp"] < pd.Timestamp(START)]
    for metric in metrics:
        for m in (metric.numerator, metric.denominator):
            if m is None:
                continue
            expected = _reference(post, m).reindex(units.index, fill_value=0.0)
            assert units[m.name].to_numpy() == pytest.approx(expected.to_numpy()), m.name
    # Pre-period sums only of what CUPED and the balance check read: non-ratio numerators.
    pre_measures = pre_measures_of(metrics)
    assert {m.name for m in pre_measures} == {
        m.numerator.name for m in metrics if m.aggregation != "ratio"
    }
    assert {c for c in units.columns if c.startswith("pre__")} == {
        f"pre__{m.name}" for m in pre_measures
    }
    for m in pre_measures:
        expected_pre = _reference(pre, m).reindex(units.index, fill_value=0.0)
        assert units[f"pre__{m.name}"].to_numpy() == pytest.approx(expected_pre.to_numpy())
    arms = post.groupby("unit")["arm"].max()
    assert (units["arm"] == arms.reindex(units.index)).all()


def test_arm_sums_are_the_sufficient_statistics(table: Any) -> None:
    backend = ibis.duckdb.connect()
    logs = backend.create_table("logs", table)
    catalogue = metric_catalogue()
    metrics = [catalogue["ctr"], catalogue["unique_users_reached"], catalogue["spend_per_unit"]]
    units = unit_values(logs, metrics, start=START, pre_period=timedelta(days=7))
    sums = arm_sums(units, metrics, by=["arm"], caps={}, with_pre=True).execute().set_index("arm")
    frame = units.execute()
    for arm, rows in frame.groupby("arm"):
        clicks, impressions = rows["click__n"], rows["impression__n"]
        assert sums.loc[arm, "n"] == len(rows)
        assert sums.loc[arm, "ctr__sxy"] == pytest.approx((clicks * impressions).sum())
        assert sums.loc[arm, "unique_users_reached__sx"] == (impressions > 0).sum()
        spend = rows["all__spend"]
        assert sums.loc[arm, "spend_per_unit__sxp"] == pytest.approx(
            (spend * rows["pre__all__spend"]).sum()
        )


def test_winsorisation_caps_at_the_quantile_of_positive_values(table: Any) -> None:
    backend = ibis.duckdb.connect()
    logs = backend.create_table("logs", table)
    metric = metric_catalogue()["conversion_value_per_unit"]
    units = unit_values(logs, [metric], start=START, pre_period=None)
    caps = winsor_caps(units, [metric], 0.9)
    values = units.execute()["conversion__conversion_value"]
    assert caps[metric.key] == pytest.approx(values[values > 0].quantile(0.9))
    sums = arm_sums(units, [metric], by=["arm"], caps=caps, with_pre=False).execute()
    assert (sums[f"{metric.key}__wx"] <= sums[f"{metric.key}__sx"]).all()


def test_user_defined_metrics() -> None:
    catalogue = metric_catalogue(
        [
            MetricDefinition(
                key="bid_price_per_response",
                name="Bid price per response",
                aggregation="ratio",
                event_type="bid_response",
                value="bid_price",
                denominator_event_type="bid_response",
            ),
            MetricDefinition(
                key="video_viewers",
                name="Video viewers",
                aggregation="proportion",
                event_type="impression",
                value="is_video",
            ),
        ]
    )
    assert catalogue["bid_price_per_response"].denominator == Measure("bid_response")
    assert catalogue["video_viewers"].numerator == Measure("impression", flag="is_video")
    with pytest.raises(InvalidInput) as clash:
        metric_catalogue(
            [MetricDefinition(key="ctr", name="x", aggregation="mean", event_type="click")]
        )
    assert clash.value.problems[0].field == "metrics[0].key"
    with pytest.raises(InvalidInput) as bad:
        metric_catalogue(
            [MetricDefinition(key="r", name="r", aggregation="ratio", event_type="swipe")]
        )
    assert {p.field for p in bad.value.problems} == {
        "metrics[0].event_type",
        "metrics[0].denominator_event_type",
    }


@pytest.fixture(scope="module")
def lake(table: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("adlogs") / "lake"
    adlogs.write_table(str(path), business_id="b1", experiment_key="cma", table=table)
    return path


@pytest.fixture(scope="session")
def spark_backend() -> Iterator[Any]:
    backend = connect("pyspark://local[2]")
    yield backend
    close(backend)


def _daily(backend: Any, lake: Path) -> pd.DataFrame:
    logs = adlogs.ad_logs(backend, str(lake), business_id="b1", experiment_key="cma")
    metrics = list(metric_catalogue().values())
    frame = daily_sums(logs, metrics, start=START, backend=backend).execute()
    return frame.sort_values(["arm", "day"]).reset_index(drop=True)


def test_daily_sums_count_records_by_utc_day(table: Any, lake: Path) -> None:
    daily = _daily(connect("duckdb://"), lake)
    frame = table.to_pandas()
    post = frame[frame["timestamp"] >= pd.Timestamp(START)]
    expected = (
        post[post["type"] == "impression"]
        .groupby(["arm", post["timestamp"].dt.date])
        .size()
        .rename("impression__n")
    )
    got = daily.assign(day=[day_of(int(d)) for d in daily["day"]]).set_index(["arm", "day"])
    assert got["impression__n"].to_dict() == expected.astype(float).to_dict()


def test_day_numbers_change_at_utc_midnight() -> None:
    stamps = [
        datetime(2026, 10, 1, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 10, 2, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ]
    rows = pa.table(
        {
            "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "arm": ["a"] * 4,
            "type": ["impression"] * 4,
            "record_id": ["r1", "r2", "r3", "r4"],
        }
    )
    duck = ibis.duckdb.connect()
    logs = duck.create_table("logs", rows)
    frame = daily_sums(logs, [metric_catalogue()["ctr"]], start=None, backend=duck).execute()
    days = {day_of(int(d)): n for d, n in zip(frame["day"], frame["impression__n"], strict=True)}
    assert days == {s.date(): 1.0 for s in stamps}


def _all_sums(backend: Any, lake: Path) -> pd.DataFrame:
    logs = adlogs.ad_logs(backend, str(lake), business_id="b1", experiment_key="cma")
    metrics = list(metric_catalogue().values())
    units = unit_values(logs, metrics, start=START, pre_period=timedelta(days=7))
    caps = winsor_caps(units, metrics, 0.95)
    frame = arm_sums(units, metrics, by=["arm", "device"], caps=caps, with_pre=True).execute()
    return frame.sort_values(["arm", "device"]).reset_index(drop=True)


@pytest.mark.spark
@pytest.mark.slow
def test_duckdb_and_spark_agree(spark_backend: Any, lake: Path) -> None:
    duck = _all_sums(connect("duckdb://"), lake)
    spark = _all_sums(spark_backend, lake)
    assert list(duck.columns) == list(spark.columns)
    pd.testing.assert_frame_equal(duck, spark, check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(
        _daily(connect("duckdb://"), lake), _daily(spark_backend, lake), check_dtype=False
    )
