"""Ibis backends from an engine URL (DuckDB or Spark), and access to Spark's session."""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlparse

import ibis
from ibis.backends import BaseBackend

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


def is_spark(backend: BaseBackend) -> bool:
    return bool(backend.name == "pyspark")


def label(backend: BaseBackend) -> str:
    """The backend's name for people: "Spark", "DuckDB"."""
    return "Spark" if is_spark(backend) else "DuckDB"


def spark_session(backend: BaseBackend) -> Any:
    """The SparkSession under a Spark backend (Ibis keeps it private)."""
    if not is_spark(backend):
        raise ValueError(f"the {backend.name} engine has no Spark session")
    return backend._session


def close(backend: BaseBackend) -> None:
    """Release the backend: stops Spark (its JVM lives on otherwise), closes DuckDB."""
    if is_spark(backend):
        spark_session(backend).stop()
    else:
        backend.disconnect()
