"""Admin API for audiences: define, validate, preview, refresh, sizes, overlap, exports,
webhooks with their dead letters, and the suppression list."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import orjson
from fastapi import APIRouter, Depends, Query, Response

from accord.audiences import activation, definitions, destinations, membership, refresh
from accord.audiences.conditions import Definition
from accord.audiences.exports import Destination
from accord.audiences.models import (
    AudienceIn,
    AudienceView,
    Change,
    DeadLetterStatus,
    DeadLetterView,
    DefinitionIn,
    Overlap,
    Preview,
    RefreshResult,
    SizePoint,
    Validated,
    WebhookIn,
    WebhookView,
)
from accord.core import outbound
from accord.engine.connection import connect
from accord.process.journeys import on_audience_changes
from accord.reach import service as reach
from accord.reach.models import SuppressionIn
from accord.web import jobs, store_work
from accord.web.auth import Caller, requires
from accord.web.downloads import attachment
from accord.web.state import AppState, State

router = APIRouter(prefix="/api", tags=["audiences"])

Reader = Annotated[Caller, Depends(requires("audiences.read"))]
Manager = Annotated[Caller, Depends(requires("audiences.manage"))]


def webhook_client(state: State) -> Iterator[httpx.Client]:
    """The HTTP client replays go out through: the outbound guard, the configured timeout."""
    settings = state.settings
    with outbound.client(
        settings.outbound_policy(), timeout=settings.webhook_timeout_seconds
    ) as client:
        yield client


WebhookClient = Annotated[httpx.Client, Depends(webhook_client)]


@router.get("/audiences", summary="Every audience, predefined ones included")
async def list_audiences(state: State, caller: Reader) -> list[AudienceView]:
    def work(conn: Any) -> list[AudienceView]:
        definitions.ensure_predefined(conn, business_id=caller.business_id)
        return definitions.list_audiences(conn, business_id=caller.business_id)

    return await store_work.write(state, work)


@router.post("/audiences", status_code=201, summary="Define an audience (JSON or text form)")
async def create_audience(state: State, caller: Manager, audience: AudienceIn) -> AudienceView:
    created = await store_work.write(
        state,
        lambda conn: definitions.create_audience(
            conn, business_id=caller.business_id, audience=audience
        ),
    )
    await jobs.run_soon(
        state, business_id=caller.business_id, name="audiences.refresh", target=created.id
    )
    return created


@router.post("/audiences/validate", summary="Check a definition; get both of its forms")
async def validate(state: State, caller: Reader, body: DefinitionIn) -> Validated:
    return await store_work.read(
        state,
        lambda conn: definitions.validate_definition(
            conn,
            business_id=caller.business_id,
            definition=body.definition,
            text=body.text,
        ),
    )


@router.post("/audiences/preview", summary="Size of a definition now, with a sample of members")
def preview(state: State, caller: Reader, body: DefinitionIn) -> Preview:
    return preview_definition(
        state, caller, definitions.definition_from(body.definition, body.text)
    )


def preview_definition(state: AppState, caller: Caller, definition: Definition) -> Preview:
    """The definition's size now on the configured engine, with a sample of members."""
    return refresh.preview(
        state.store,
        business_id=caller.business_id,
        definition=definition,
        backend=connect(state.settings.engine_url),
        lake_url=state.settings.resolved_lake_url(),
    )


@router.post("/audiences/refresh", summary="Recompute every audience on the engine")
def refresh_all(state: State, caller: Manager) -> list[RefreshResult]:
    return refresh_audiences(state, caller, None)


def refresh_audiences(
    state: AppState, caller: Caller, only: list[str] | None
) -> list[RefreshResult]:
    """Recompute the audiences (all, or `only` these) on the configured engine; journeys
    hear of who entered and who left."""
    return refresh.refresh(
        state.store,
        business_id=caller.business_id,
        backend=connect(state.settings.engine_url),
        lake_url=state.settings.resolved_lake_url(),
        only=only,
        on_changes=on_audience_changes(),
    )


@router.get("/audiences/{audience}", summary="One audience, by id or slug")
async def get_audience(state: State, caller: Reader, audience: str) -> AudienceView:
    return await store_work.read(
        state,
        lambda conn: definitions.get_audience(
            conn, business_id=caller.business_id, audience=audience
        ),
    )


@router.delete("/audiences/{audience}", status_code=204, summary="Delete an audience")
async def delete_audience(state: State, caller: Manager, audience: str) -> Response:
    await store_work.write(
        state,
        lambda conn: definitions.delete_audience(
            conn, business_id=caller.business_id, audience=audience
        ),
    )
    return Response(status_code=204)


@router.post("/audiences/{audience}/refresh", summary="Recompute one audience on the engine")
def refresh_one(state: State, caller: Manager, audience: str) -> RefreshResult:
    [result] = refresh_audiences(state, caller, [audience])
    return result


@router.get("/audiences/{audience}/sizes", summary="Size after each refresh")
async def sizes(state: State, caller: Reader, audience: str) -> list[SizePoint]:
    return await store_work.read(
        state,
        lambda conn: membership.sizes(conn, business_id=caller.business_id, audience=audience),
    )


@router.get("/audiences/{audience}/members", summary="Profile ids of the current members")
async def members(
    state: State,
    caller: Reader,
    audience: str,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[str]:
    ids = await store_work.read(
        state,
        lambda conn: membership.member_ids(conn, business_id=caller.business_id, audience=audience),
    )
    return ids[:limit]


@router.get("/audiences/{audience}/changes", summary="Entries and exits after a sequence number")
async def changes(
    state: State,
    caller: Reader,
    audience: str,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[Change]:
    return await store_work.read(
        state,
        lambda conn: membership.changes(
            conn, business_id=caller.business_id, audience=audience, after=after, limit=limit
        ),
    )


@router.get("/audiences/{first}/overlap/{second}", summary="How many people two audiences share")
async def overlap(state: State, caller: Reader, first: str, second: str) -> Overlap:
    return await store_work.read(
        state,
        lambda conn: membership.overlap(
            conn, business_id=caller.business_id, first=first, second=second
        ),
    )


@router.get(
    "/audiences/{audience}/export/{destination}",
    summary="Members for a destination, only with consent and not suppressed",
    response_class=Response,
)
async def export(
    state: State,
    caller: Manager,
    audience: str,
    destination: Destination,
    purpose: str | None = None,
    owner: str | None = None,
    bidding_logic_url: str | None = None,
) -> Response:
    """The file, with `X-Accord-Included` and `X-Accord-Left-Out` (JSON: reason -> count)."""
    options = activation.interest_group_options(destination, owner, bidding_logic_url)
    result = await store_work.read(
        state,
        lambda conn: activation.export_audience(
            conn,
            business_id=caller.business_id,
            audience=audience,
            destination=destination,
            purpose=purpose,
            interest_groups=options,
        ),
    )
    await store_work.write(
        state,
        lambda conn: store_work.record(
            conn,
            caller,
            "audience.export",
            asset=("audience", audience),
            destination=destination,
            purpose=purpose,
            included=result.included,
            left_out=result.left_out,
        ),
    )
    extension = "json" if destination == "interest_groups" else "csv"
    return Response(
        result.body,
        media_type=result.media_type,
        headers={
            **attachment(f"{audience}-{destination}.{extension}"),
            "X-Accord-Included": str(result.included),
            "X-Accord-Left-Out": orjson.dumps(result.left_out).decode(),
        },
    )


@router.post("/audiences/{audience}/webhooks", status_code=201, summary="Send entries and exits")
async def add_webhook(
    state: State, caller: Manager, audience: str, body: WebhookIn
) -> dict[str, str]:
    """The signing secret is in this answer only."""
    return await store_work.write(
        state,
        lambda conn: destinations.add_webhook(
            conn,
            business_id=caller.business_id,
            audience=audience,
            webhook_in=body,
            outbound=state.settings.outbound_policy(),
        ),
    )


@router.get(
    "/audiences/{audience}/webhooks", summary="Webhook destinations and how their deliveries go"
)
async def list_webhooks(state: State, caller: Reader, audience: str) -> list[WebhookView]:
    """Failures in a row on the pending batch, the last error, and parked batches."""
    return await store_work.read(
        state,
        lambda conn: destinations.list_webhooks(
            conn, business_id=caller.business_id, audience=audience
        ),
    )


@router.get(
    "/audiences/{audience}/webhooks/dead-letters",
    summary="Batches webhook destinations did not accept (dead letters), oldest first",
)
async def list_dead_letters(
    state: State, caller: Reader, audience: str, status: DeadLetterStatus | None = None
) -> list[DeadLetterView]:
    """A batch is parked when its receiver refused it (a 4xx other than 408, 425 and 429)
    or it failed `ACCORD_WEBHOOK_DEAD_LETTER_AFTER` delivery runs in a row; `erasures`
    counts the erasure notices in it, which the receiver has not had yet."""
    return await store_work.read(
        state,
        lambda conn: destinations.list_dead_letters(
            conn, business_id=caller.business_id, audience=audience, status=status
        ),
    )


@router.post(
    "/audiences/{audience}/webhooks/dead-letters/{dead_letter}/replay",
    summary="Send a parked batch again: the same body and webhook-id, signed anew",
    responses={
        409: {"description": "The batch was replayed or discarded already"},
        502: {"description": "The receiver did not accept it; it stays parked"},
    },
)
def replay_dead_letter(
    state: State, caller: Manager, client: WebhookClient, audience: str, dead_letter: str
) -> DeadLetterView:
    return destinations.replay_dead_letter(
        state.store,
        business_id=caller.business_id,
        audience=audience,
        dead_letter_id=dead_letter,
        client=client,
    )


@router.post(
    "/audiences/{audience}/webhooks/dead-letters/{dead_letter}/discard",
    summary="Give up a parked batch: its receiver will never get it",
    responses={409: {"description": "The batch was replayed or discarded already"}},
)
async def discard_dead_letter(
    state: State, caller: Manager, audience: str, dead_letter: str
) -> DeadLetterView:
    return await store_work.write(
        state,
        lambda conn: destinations.discard_dead_letter(
            conn, business_id=caller.business_id, audience=audience, dead_letter_id=dead_letter
        ),
    )


@router.get("/suppressions", summary="The suppression list")
async def list_suppressions(state: State, caller: Reader) -> list[dict[str, Any]]:
    return await store_work.read(
        state, lambda conn: reach.list_suppressions(conn, business_id=caller.business_id)
    )


@router.post("/suppressions", status_code=204, summary="Suppress an identifier everywhere")
async def suppress(state: State, caller: Manager, body: SuppressionIn) -> Response:
    await store_work.audited(
        state,
        caller,
        "suppression.add",
        lambda conn: reach.suppress(
            conn,
            business_id=caller.business_id,
            kind=body.kind,
            value=body.value,
            reason=body.reason,
            source="api",
        ),
        kind=body.kind,
        value=body.value,
        reason=body.reason,
    )
    return Response(status_code=204)


@router.delete("/suppressions/{kind}/{value}", status_code=204, summary="Lift a suppression")
async def unsuppress(state: State, caller: Manager, kind: str, value: str) -> Response:
    await store_work.audited(
        state,
        caller,
        "suppression.remove",
        lambda conn: reach.unsuppress(conn, business_id=caller.business_id, kind=kind, value=value),
        kind=kind,
        value=value,
    )
    return Response(status_code=204)
