"""Ibis backends from an engine URL, and the lake's events as an Ibis table on them.

Engine code keeps to what every backend runs: typed columns, group-bys, joins and
window functions; no JSON paths, as-of joins or ordered collects (Spark lacks them).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any
from urllib.parse import urlparse

import ibis
import pyarrow as pa
from ibis.backends import BaseBackend

from accord.lake.schema import EVENT_SCHEMA
from accord.lake.service import has_files, parquet_glob

SPARK_PREFIX = "pyspark://"


def connect(engine_url: str) -> BaseBackend:
    """`duckdb://` (in-process, or `duckdb:///path.db`) or `pyspark://local[N]`."""
    if engine_url.startswith(SPARK_PREFIX):
        return _spark(engine_url.removeprefix(SPARK_PREFIX) or "local[2]")
    scheme = urlparse(engine_url).scheme
    if scheme != "duckdb":
        raise ValueError(f"unsupported engine URL {engine_url!r}: use duckdb:// or pyspark://")
    path = engine_url.removeprefix("duckdb://").lstrip("/") or None
    return ibis.duckdb.connect(f"/{path}" if path else ":memory:")


def _spark(master: str) -> BaseBackend:
    # Spark's Python workers must run this interpreter, or they miss our packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(master)
        .appName("accord")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return ibis.pyspark.connect(session)


def events(backend: BaseBackend, lake_url: str) -> Any:
    """The lake's events with `business_id` and `day` from the partition folders."""
    if not has_files(lake_url):
        empty = EVENT_SCHEMA.append(pa.field("business_id", pa.string())).append(
            pa.field("day", pa.date32())
        )
        if backend.name == "pyspark":
            # A Spark table would be written under ./spark-warehouse, whose leftover
            # folder makes the next process fail; a temporary view writes nothing.
            return backend.create_view(
                "accord_events_empty", ibis.memtable(empty.empty_table()), overwrite=True
            )
        return backend.create_table("accord_events_empty", empty.empty_table(), overwrite=True)
    if backend.name == "pyspark":
        return backend.read_parquet(lake_url)
    return backend.read_parquet(parquet_glob(lake_url), hive_partitioning=True)


def arrow_table(backend: BaseBackend, table: pa.Table) -> Any:
    """An Arrow table as an Ibis table on the backend."""
    if backend.name == "pyspark":
        # Spark takes Arrow directly; Ibis's memtable goes through pandas, which turns
        # missing strings into NaN and NaN into the text 'NaN' on Spark.
        name = f"accord_{uuid.uuid4().hex}"
        backend._session.createDataFrame(table).createOrReplaceTempView(name)
        return backend.table(name)
    return ibis.memtable(table)
