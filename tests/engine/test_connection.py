"""Backends from engine URLs, and what only Spark has."""

from __future__ import annotations

from typing import Any

import pytest

from accord.engine.connection import connect, is_spark, label, spark_session


def test_an_unknown_engine_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported engine URL"):
        connect("postgres://localhost/db")


def test_only_spark_has_a_spark_session(backend: Any) -> None:
    if is_spark(backend):
        assert label(backend) == "Spark"
        assert spark_session(backend).conf.get("spark.sql.session.timeZone") == "UTC"
    else:
        assert label(backend) == "DuckDB"
        with pytest.raises(ValueError, match="no Spark session"):
            spark_session(backend)
