"""Issue 19, item 11: a bounded schemathesis run over /openapi.json finds no server error.

Few examples per operation and a fixed seed keep it under two minutes per database (it
runs on SQLite and PostgreSQL); bench/fuzz.py runs longer. On failure the message lists
every failing operation with a curl command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.store.db import open_store
from accord.web.app import create_app
from tests.fuzzing import fuzz


class Answer(BaseModel):
    total: int


@pytest.mark.timeout(600)
def test_item_11_bounded_fuzz_finds_no_server_error(tmp_path: Path, database_url: str) -> None:
    """On SQLite and on PostgreSQL: some refusals (NUL in text, say) differ by database."""
    url = database_url
    store = open_store(url, sqlite_synchronous="NORMAL")
    keys = bootstrap(store, name="Fuzz Shop")
    store.dispose()
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        lake_url=str(tmp_path / "lake"),
        worker_inline=False,
        sqlite_synchronous="NORMAL",
    )
    report = fuzz(
        create_app(settings),
        admin_token=keys.admin_token,
        write_key=keys.write_key,
        examples=3,
    )
    assert report.operations > 100 and report.cases >= report.operations
    assert not report.failures, report.summary()


def test_item_11_the_fuzz_reports_server_errors_and_schema_violations() -> None:
    # The guard itself: a 5xx and an answer that breaks its declared schema are both listed.
    app = FastAPI()

    @app.get("/api/crash")
    def crash(n: int) -> Answer:
        raise RuntimeError(f"broken for {n}")

    @app.get("/api/liar", response_model=Answer)
    def liar() -> Any:
        return JSONResponse({"total": "many"})

    report = fuzz(app, admin_token="t", write_key="w", examples=2)
    failing = {failure.operation for failure in report.failures}
    assert failing == {"GET /api/crash", "GET /api/liar"}, report.summary()
