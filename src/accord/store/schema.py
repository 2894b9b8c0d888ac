"""Imports every context's tables so the metadata is complete (for Alembic and tests)."""

from __future__ import annotations

from accord.accounts import models as _accounts
from accord.analytics import models as _analytics
from accord.audiences import models as _audiences
from accord.collect import models as _collect
from accord.consent import models as _consent
from accord.experiments import models as _experiments
from accord.identity import models as _identity
from accord.journeys import models as _journeys
from accord.leads import models as _leads
from accord.messaging import models as _messaging
from accord.process import models as _process
from accord.profiles import models as _profiles
from accord.reach import models as _reach
from accord.recommend import models as _recommend
from accord.store.metadata import metadata

__all__ = [
    "_accounts",
    "_analytics",
    "_audiences",
    "_collect",
    "_consent",
    "_experiments",
    "_identity",
    "_journeys",
    "_leads",
    "_messaging",
    "_process",
    "_profiles",
    "_reach",
    "_recommend",
    "metadata",
]
