"""DuckDB and Spark compute the same interactions, strengths, co-occurrence neighbours and
popularity from the same events (one Ibis expression, two engines)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pytest

from accord.engine.connection import connect
from accord.engine.tables import register
from accord.lake.schema import TIMESTAMP
from accord.recommend import cooccurrence
from accord.recommend.interactions import interactions, split_last_purchase, strengths
from tests.recommend.shop import history

END = datetime(2026, 11, 1, tzinfo=UTC)


def _tables() -> tuple[pa.Table, pa.Table]:
    events = history(24, end=END, seed=11)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("user_id", "anonymous_id", "event", "product_id", "timestamp", "properties")
    }
    for event in events:
        properties = event["properties"]
        rows["user_id"].append(event["userId"] if int(event["userId"][2:]) % 3 else None)
        rows["anonymous_id"].append(event["anonymousId"])
        rows["event"].append(event["event"])
        rows["product_id"].append(
            properties.get("product_id") or properties["products"][0]["product_id"]
        )
        rows["timestamp"].append(datetime.fromisoformat(event["timestamp"]))
        rows["properties"].append(orjson.dumps(properties).decode())
    schema = pa.schema(
        [(k, pa.string()) for k in rows if k != "timestamp"] + [("timestamp", TIMESTAMP)]
    )
    table = pa.Table.from_pydict(rows, schema=schema)
    people = sorted({e["anonymousId"] for e in events})
    identifiers = pa.Table.from_pydict(
        {
            "kind": ["anonymous_id"] * len(people) + ["user_id"] * len(people),
            "value": people + [p.replace("a-", "u-") for p in people],
            "profile_id": [p.replace("a-", "prof-") for p in people] * 2,
        }
    )
    return table, identifiers


def _computed(engine_url: str) -> dict[str, Any]:
    backend = connect(engine_url)
    events, identifiers = _tables()
    rows = interactions(backend, register(backend, events), register(backend, identifiers))
    every = strengths(backend, rows, now=END, half_life_days=30)
    split = split_last_purchase(backend, rows)
    related = cooccurrence.neighbours(backend, every, top_k=50, per_person=50, min_support=1)
    popular = cooccurrence.popular(backend, every)

    def pairs(table: Any, *keys: str) -> dict[tuple[Any, ...], float]:
        data = backend.to_pyarrow(table).to_pylist()
        return {tuple(r[k] for k in keys): r.get("score", r.get("strength")) for r in data}

    return {
        "interactions": backend.to_pyarrow(rows.count()).as_py(),
        "strengths": pairs(every, "profile_id", "product_id"),
        "neighbours": pairs(related, "product_id", "related_id"),
        "popular": pairs(popular, "product_id"),
        "held_out": sorted(
            tuple(r.values()) for r in backend.to_pyarrow(split.held_out).to_pylist()
        ),
    }


@pytest.mark.slow
@pytest.mark.spark
def test_duckdb_and_spark_give_the_same_scores() -> None:
    duck = _computed("duckdb://")
    spark = _computed("pyspark://local[2]")
    assert duck["interactions"] == spark["interactions"] > 0
    assert duck["held_out"] == spark["held_out"] and len(duck["held_out"]) == 24
    for name in ("strengths", "neighbours", "popular"):
        assert duck[name].keys() == spark[name].keys() and duck[name], name
        for key, value in duck[name].items():
            assert spark[name][key] == pytest.approx(value, rel=1e-9), (name, key)
    # Orders' products come from products[]: every order line counts as bought.
    assert len(duck["neighbours"]) > 24
