"""Admin API for journeys: definitions and versions, status, reports, people's paths."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from accord.core.clock import utcnow
from accord.journeys import analytics, service
from accord.journeys.models import JourneyView, RunView
from accord.journeys.runner import Runner
from accord.process.journeys import environment as journey_environment
from accord.profiles import service as profiles
from accord.web import jobs, store_work
from accord.web.auth import Caller, requires
from accord.web.state import State

router = APIRouter(prefix="/api/journeys", tags=["journeys"])

Reader = Annotated[Caller, Depends(requires("journeys.read"))]
Manager = Annotated[Caller, Depends(requires("journeys.manage"))]


class NewJourney(BaseModel):
    key: str = Field(description="lower-case letters, digits, _ and -; unique per business")
    name: str
    definition: dict[str, Any] = Field(description="see docs/journeys.md")


class NewVersion(BaseModel):
    definition: dict[str, Any]


class StatusChange(BaseModel):
    status: str = Field(description="draft, active, paused or archived")


class Entry(BaseModel):
    profile_id: str = Field(min_length=1, max_length=200)
    entry_key: str = Field(
        min_length=1,
        max_length=200,
        description="the caller's id for this entry: the same key enters a person once",
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="values the journey's messages may use"
    )


class Entered(BaseModel):
    entered: bool = Field(description="false when the entry rules kept the person out")
    run_id: str | None = None


class Migration(BaseModel):
    from_version: int
    node_map: dict[str, str] = Field(default_factory=dict)


@router.get("", response_model=list[JourneyView], summary="Journeys of the business")
def list_journeys(state: State, caller: Reader) -> list[JourneyView]:
    with state.store.read() as conn:
        return service.list_journeys(conn, business_id=caller.business_id)


@router.post("", response_model=JourneyView, status_code=201, summary="Create a journey")
def create_journey(state: State, caller: Manager, body: NewJourney) -> JourneyView:
    """A new journey in draft with its first version; invalid graphs get a 400 whose
    problems name each node at fault."""

    with state.store.write() as conn:
        return service.create_journey(
            conn,
            business_id=caller.business_id,
            key=body.key,
            name=body.name,
            definition=body.definition,
            now=utcnow(),
            outbound=state.settings.outbound_policy(),
        )


@router.get("/{key}", response_model=JourneyView, summary="A journey and its current version")
def get_journey(state: State, caller: Reader, key: str) -> JourneyView:
    with state.store.read() as conn:
        return service.get_journey(conn, business_id=caller.business_id, key=key)


@router.put("/{key}/definition", response_model=JourneyView, summary="Publish a new version")
def publish_version(state: State, caller: Manager, key: str, body: NewVersion) -> JourneyView:
    """New entries use the new version; people inside finish on theirs."""

    with state.store.write() as conn:
        return service.publish_version(
            conn,
            business_id=caller.business_id,
            key=key,
            definition=body.definition,
            now=utcnow(),
            outbound=state.settings.outbound_policy(),
        )


@router.post("/{key}/status", response_model=JourneyView, summary="Activate, pause or archive")
async def set_status(state: State, caller: Manager, key: str, body: StatusChange) -> JourneyView:
    def work() -> JourneyView:
        with state.store.write() as conn:
            return service.set_status(
                conn, business_id=caller.business_id, key=key, status=body.status, now=utcnow()
            )

    view = await store_work.run(work)
    if body.status == "active":
        # A date journey's people whose day it is enter now, not at the job's next round.
        await jobs.run_soon(state, business_id=caller.business_id, name="journeys.date_entry")
    return view


@router.post(
    "/{key}/entries", response_model=Entered, summary="Enter a person (journeys entered by `api`)"
)
def enter(state: State, caller: Manager, key: str, body: Entry) -> Entered:
    """The `api` entry of docs/journeys.md: the person enters now unless the journey's entry
    rules keep them out (already inside, re-entry, maximum); what follows runs on the
    worker's journey loop like any other entry."""
    environment = state.journey_environment or journey_environment()
    with state.store.write() as conn:
        profiles.profile_view(conn, business_id=caller.business_id, profile_id=body.profile_id)
        run_id = service.trigger(
            conn,
            Runner(environment),
            business_id=caller.business_id,
            key=key,
            profile_id=body.profile_id,
            entry_key=body.entry_key,
            context=body.context,
            now=utcnow(),
        )
    return Entered(entered=run_id is not None, run_id=run_id)


@router.post("/{key}/migrate", summary="Move people from an older version onto the current one")
def migrate(state: State, caller: Manager, key: str, body: Migration) -> dict[str, int]:
    with state.store.write() as conn:
        moved = service.migrate_runs(
            conn,
            business_id=caller.business_id,
            key=key,
            from_version=body.from_version,
            node_map=body.node_map,
            now=utcnow(),
        )
    return {"moved": moved}


@router.get("/{key}/report", summary="People per node, conversions, A/B splits, smart holdout")
def report(state: State, caller: Reader, key: str) -> dict[str, Any]:
    now = utcnow()
    with state.store.read() as conn:
        journey_id, definition = service.definition_of(
            conn, business_id=caller.business_id, key=key
        )
        view = service.get_journey(conn, business_id=caller.business_id, key=key)
        splits = analytics.split_results(
            conn,
            journey_id=journey_id,
            version=view.current_version,
            definition=definition,
            now=now,
        )
        return {
            "summary": analytics.summary(conn, journey_id=journey_id).__dict__,
            "nodes": [c.__dict__ for c in analytics.node_counts(conn, journey_id=journey_id)],
            "splits": [{**s.__dict__, "paths": [p.__dict__ for p in s.paths]} for s in splits],
            "smart": _comparison(analytics.smart_comparison(conn, journey_id=journey_id)),
        }


def _comparison(comparison: analytics.HoldoutComparison) -> dict[str, Any]:
    return {
        "optimised": comparison.optimised.__dict__,
        "holdout": comparison.holdout.__dict__,
        "lift": comparison.lift,
        "p_value": comparison.p_value,
    }


people_router = APIRouter(prefix="/api/profiles", tags=["journeys"])


@people_router.get(
    "/{profile_id}/journeys",
    response_model=list[RunView],
    summary="A person's journeys, step by step",
)
def person_path(state: State, caller: Reader, profile_id: str) -> list[RunView]:
    with state.store.read() as conn:
        return service.person_path(conn, business_id=caller.business_id, profile_id=profile_id)
