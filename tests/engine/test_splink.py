"""Splink's database API follows the backend, with what it cannot compare there."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from accord.engine.connection import is_spark
from accord.engine.splink import SPARK_UNSUPPORTED, db_api, unsupported_methods


def test_splink_api_and_input_follow_the_backend(backend: Any) -> None:
    api, make_input = db_api(backend)
    frame = make_input(pa.table({"unique_id": ["p1", "p2"], "email": ["a@x.io", None]}))
    if is_spark(backend):
        assert type(api).__name__ == "SparkAPI"
        assert frame.count() == 2
        assert unsupported_methods(backend) == SPARK_UNSUPPORTED
    else:
        assert type(api).__name__ == "DuckDBAPI"
        assert len(frame) == 2
        assert unsupported_methods(backend) == frozenset()
