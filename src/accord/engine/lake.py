"""The lake's datasets as Ibis tables: only their visible files, partition columns typed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from ibis.backends import BaseBackend

from accord.engine.connection import is_spark, spark_session
from accord.engine.tables import register, spark_view
from accord.lake.schema import EVENTS, Dataset
from accord.lake.service import visible_files


def events(backend: BaseBackend, lake_url: str, *, business_id: str | None = None) -> Any:
    """The lake's events with `business_id` and `day` from the partition folders.

    With `business_id`, only that business's folders are listed; the table is the same
    as filtering the whole lake on it.
    """
    return dataset(backend, lake_url, EVENTS, business_id=business_id)


def dataset(
    backend: BaseBackend,
    lake_url: str,
    data: Dataset,
    *,
    business_id: str | None = None,
    within: Sequence[str] = (),
) -> Any:
    """A lake dataset (or one business's part of it) as one table: its columns, then its
    partition columns.

    Only the visible files are read (see `accord.lake.service.visible_files`), so a
    compaction running meanwhile never shows a row twice or not at all.
    """
    files = visible_files(lake_url, business_id, dataset=data, within=within)
    schema = data.table_schema()
    if not files:
        return register(
            backend, schema.empty_table(), name=f"accord_empty_{data.folder or 'events'}"
        )
    if is_spark(backend):
        return _spark_read(backend, files, base=data.root(lake_url), schema=schema)
    return backend.read_parquet(files, hive_partitioning=True)


def _spark_read(backend: BaseBackend, files: list[str], *, base: str, schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    # Ibis reads one path on Spark; Spark itself reads a list. `basePath` makes it
    # take the partition columns from the folders under it, typed by the schema.
    frame = (
        spark_session(backend)
        .read.schema(from_arrow_schema(schema))
        .option("basePath", base)
        .parquet(*files)
    )
    return spark_view(backend, frame)
