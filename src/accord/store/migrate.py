"""Brings a state store's schema to the newest Alembic revision."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from accord.store.db import ensure_sqlite_folder, normalise_url


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "accord.store:migrations")
    # ConfigParser would read a '%' in a password as interpolation.
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
