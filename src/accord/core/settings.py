"""The one `Settings` object, read from `ACCORD_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore")

    data_dir: Path = Field(default=Path("./accord-data"), description="Where embedded state lives")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data directory"
    )
    lake_url: str | None = Field(
        default=None, description="Folder or object-storage URL of the Parquet event lake"
    )
    engine_url: str = Field(
        default="duckdb://", description="duckdb:// (in-process) or pyspark://local[2]"
    )
    host: str = "127.0.0.1"
    port: int = 8000

    # SQLite durability: FULL fsyncs the WAL at every commit, so an acknowledged
    # event survives power loss as well as kill -9.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # An event more than this far in the future (after clock-skew correction) is refused.
    max_future_seconds: int = 24 * 3600
    # An event older than this is refused; imports of history raise it.
    max_event_age_days: int = 3650

    worker_inline: bool = Field(default=True, description="Process the inbox inside `serve`")
    worker_batch_size: int = 5000
    # How long an idle worker waits before looking again: longer waits make fewer,
    # larger lake files; profiles lag the collection by at most about this much.
    worker_idle_seconds: float = 1.0
    worker_lease_seconds: int = 120
    inbox_retention_days: int = 30
    write_key_cache_seconds: float = 30.0

    # One POST of ad-log records to /v1/experiments/{key}/ad-logs; files have no limit.
    max_ad_log_bytes: int = 5 * 1024 * 1024
    max_ad_log_records: int = 10_000

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'accord.db').resolve()}"

    def resolved_lake_url(self) -> str:
        if self.lake_url:
            return self.lake_url
        return str((self.data_dir / "lake").resolve())
