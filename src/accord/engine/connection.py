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
from accord.lake.service import visible_files

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


def _lake_schema() -> pa.Schema:
    return EVENT_SCHEMA.append(pa.field("business_id", pa.string())).append(
        pa.field("day", pa.date32())
    )


def events(backend: BaseBackend, lake_url: str, *, business_id: str | None = None) -> Any:
    """The lake's events with `business_id` and `day` from the partition folders.

    Only the visible files are read (see `accord.lake.service.visible_files`), so a
    compaction running meanwhile never shows an event twice or not at all. With
    `business_id`, only that business's folders are listed; the table is the same
    as filtering the whole lake on it.
    """
    files = visible_files(lake_url, business_id=business_id)
    if not files:
        empty = _lake_schema().empty_table()
        if backend.name == "pyspark":
            # A Spark table would be written under ./spark-warehouse, whose leftover
            # folder makes the next process fail; a temporary view writes nothing.
            return backend.create_view("accord_events_empty", ibis.memtable(empty), overwrite=True)
        return backend.create_table("accord_events_empty", empty, overwrite=True)
    if backend.name == "pyspark":
        return _spark_events(backend, lake_url, files)
    return backend.read_parquet(files, hive_partitioning=True)


def _spark_events(backend: BaseBackend, lake_url: str, files: list[str]) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    # Ibis reads one path on Spark; Spark itself reads a list. `basePath` makes it
    # take the partition columns from the folders under the lake, typed by the schema.
    frame = (
        backend._session.read.schema(from_arrow_schema(_lake_schema()))
        .option("basePath", lake_url)
        .parquet(*files)
    )
    name = f"accord_events_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(name)
    return backend.table(name)


def arrow_table(backend: BaseBackend, table: pa.Table) -> Any:
    """An Arrow table as an Ibis table on the backend."""
    if backend.name == "pyspark":
        # Spark takes Arrow directly; Ibis's memtable goes through pandas, which turns
        # missing strings into NaN and NaN into the text 'NaN' on Spark.
        name = f"accord_{uuid.uuid4().hex}"
        backend._session.createDataFrame(table).createOrReplaceTempView(name)
        return backend.table(name)
    return ibis.memtable(table)
