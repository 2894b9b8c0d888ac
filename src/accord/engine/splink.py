"""Splink's database API for a backend, and what Splink cannot compare there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
from ibis.backends import BaseBackend

from accord.engine.connection import is_spark, spark_session

# Spark has no built-in for these; Splink brings them as a Java UDF jar built for Spark 3,
# which the engine's Spark 4 session does not load.
SPARK_UNSUPPORTED = frozenset({"jaro", "jaro_winkler", "damerau_levenshtein"})


def unsupported_methods(backend: BaseBackend) -> frozenset[str]:
    """Splink comparison methods that do not run on this backend."""
    return SPARK_UNSUPPORTED if is_spark(backend) else frozenset()


def db_api(backend: BaseBackend) -> tuple[Any, Callable[[pa.Table], Any]]:
    """Splink's API over the backend, and a function making Splink's input from Arrow."""
    if is_spark(backend):
        from splink import SparkAPI

        session = spark_session(backend)
        # Persisting breaks Spark's lineage between steps without a checkpoint folder.
        api = SparkAPI(  # type: ignore[no-untyped-call]
            spark_session=session, break_lineage_method="persist"
        )
        return api, lambda table: session.createDataFrame(table.to_pandas())
    from splink import DuckDBAPI

    return DuckDBAPI(connection=backend.con), lambda table: table.to_pandas()
