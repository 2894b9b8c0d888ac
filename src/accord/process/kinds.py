"""What a kind of job is: the work a context contributes, its scope, schedule and retries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from accord.core.settings import Settings
from accord.store.db import Store

Scope = Literal["installation", "business", "object"]


@dataclass(frozen=True)
class JobContext:
    """What a job's run is given: the tenant is explicit, as in every service call."""

    settings: Settings
    store: Store
    business_id: str | None
    target: str | None
    now: datetime
    # What this job kept from its previous runs.
    state: dict[str, Any]


# The key of a job's kept state that `job_admin.request_run` sets when someone asks for a run.
REQUESTED_AT = "requested_at"


@dataclass
class JobOutcome:
    counts: dict[str, float] = field(default_factory=dict)
    # Replaces the kept state when given.
    state: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobKind:
    """One kind of work, contributed by a context through its service."""

    name: str
    title: str
    run: Callable[[JobContext], JobOutcome]
    schedule: str
    scope: Scope = "business"
    # Per-object kinds: the business's objects, read in the sync's write transaction.
    targets: Callable[[Connection, str], list[str]] | None = None
    # Per-object kinds: a readable name for each of the business's objects.
    labels: Callable[[Connection, str], dict[str, str]] | None = None
    # Asked at each sync: should the job run now, before its schedule?
    wake: Callable[[Connection, JobContext], bool] | None = None
    first_run: Literal["now", "schedule"] = "now"
    timeout: timedelta = timedelta(minutes=10)
    max_attempts: int = 3
    backoff: timedelta = timedelta(seconds=30)
    # A frequent poll that found nothing to do leaves no history row (its job row
    # still shows when it last ran).
    quiet: bool = False
    # The triggers named in docs/ that this job carries out (see tests/process).
    triggers: tuple[str, ...] = ()


Kinds = Mapping[str, JobKind]
