"""Tables the backend holds: Arrow data put on it, expressions computed once, and their removal.

Spark keeps them as temporary views, which write nothing under ./spark-warehouse (a
leftover folder there makes the next process fail); DuckDB as temporary tables.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
from ibis.backends import BaseBackend

from accord.engine.connection import is_spark, spark_session


def _name(name: str | None) -> str:
    return name or f"accord_{uuid.uuid4().hex}"


def register(backend: BaseBackend, table: pa.Table, *, name: str | None = None) -> Any:
    """An Arrow table as an Ibis table on the backend (replacing one of the same name)."""
    name = _name(name)
    if is_spark(backend):
        # Spark takes Arrow directly; Ibis's memtable goes through pandas, which turns
        # missing strings into NaN and NaN into the text 'NaN' on Spark.
        return spark_view(backend, spark_session(backend).createDataFrame(table), name=name)
    return backend.create_table(name, table, temp=True, overwrite=True)


def materialise(backend: BaseBackend, expr: Any, *, name: str | None = None) -> Any:
    """Compute an expression now and keep its rows, so later steps start from data and
    not from the whole chain of steps before it (Spark would re-plan it each time)."""
    name = _name(name)
    if is_spark(backend):
        frame = spark_session(backend).sql(backend.compile(expr))
        return spark_view(backend, frame.localCheckpoint(eager=True), name=name)
    return backend.create_table(name, expr, temp=True, overwrite=True)


def spark_view(backend: BaseBackend, frame: Any, *, name: str | None = None) -> Any:
    """A Spark DataFrame as an Ibis table, through a temporary view."""
    name = _name(name)
    frame.createOrReplaceTempView(name)
    return backend.table(name)


def drop(backend: BaseBackend, name: str) -> None:
    """Forget a table made by `register` or `materialise`; no error if there is none."""
    if is_spark(backend):
        spark_session(backend).catalog.dropTempView(name)
    else:
        backend.drop_table(name, force=True)
