"""Engine tests run once per backend: DuckDB always, Spark with the slow ones."""

from __future__ import annotations

from typing import Any

import pytest

from accord.engine.connection import connect

BACKENDS = [
    pytest.param("duckdb://", id="duckdb"),
    pytest.param("pyspark://local[2]", id="spark", marks=[pytest.mark.slow, pytest.mark.spark]),
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Any:
    # Spark's session is shared by the whole run (getOrCreate): another module may
    # still use it, so it is not stopped here.
    return connect(request.param)
