"""Imports every context's tables so the metadata is complete (for Alembic and tests)."""

from __future__ import annotations

from accord.accounts import models as _accounts
from accord.collect import models as _collect
from accord.journeys import models as _journeys
from accord.profiles import models as _profiles
from accord.store.metadata import metadata

__all__ = ["_accounts", "_collect", "_journeys", "_profiles", "metadata"]
