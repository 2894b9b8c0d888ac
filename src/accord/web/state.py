"""What one running app holds: settings, the store and shared caches (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from accord.accounts.service import WriteKeyCache
from accord.collect.consent_gate import ConsentGate
from accord.collect.inbox import InboxWriter
from accord.collect.validation import Limits
from accord.core.settings import Settings
from accord.journeys.environment import Environment
from accord.process.kinds import Kinds
from accord.store.db import Store
from accord.store.full import StorageHealth

if TYPE_CHECKING:
    from accord.web.email_wiring import EmailWiring


@dataclass
class AppState:
    settings: Settings
    store: Store
    inbox_writer: InboxWriter
    write_keys: WriteKeyCache
    gate: ConsentGate
    limits: Limits
    # Whether writes last failed for lack of space (set by web/errors, read by /healthz).
    storage: StorageHealth
    email: EmailWiring | None = None
    # The kinds of scheduled jobs (`process.jobs.default_kinds()`).
    job_kinds: Kinds = field(default_factory=dict)
    # The journey runner's view of the other contexts (`process.journeys.environment()`),
    # for the channels a profile can be messaged on; profiles show none without it.
    journey_environment: Environment | None = None


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.accord
    return state


State = Annotated[AppState, Depends(app_state)]
