"""The Segment-compatible tracking API: /v1/track, identify, page, screen, group, alias, batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from accord.collect import service
from accord.core.clock import utcnow
from accord.web import store_work
from accord.web.bodies import read_limited
from accord.web.errors import json_response
from accord.web.state import AppState, State

router = APIRouter(tags=["collection"])

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Segment-spec event; see docs/collection.md for every field and limit.",
    "properties": {
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "messageId": {"type": "string", "maxLength": 255},
        "event": {"type": "string", "description": "required for track"},
        "name": {"type": "string"},
        "groupId": {"type": "string", "description": "required for group"},
        "previousId": {"type": "string", "description": "required for alias"},
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
        "writeKey": {"type": "string"},
    },
}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {
            "type": "array",
            "items": {**_EVENT_SCHEMA, "required": ["type"]},
            "description": "at most 500 KB in all and 32 KB per event",
        },
        "sentAt": {"type": "string", "format": "date-time"},
        "writeKey": {"type": "string"},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every event is durably stored (or was already)"},
    400: {"description": "Invalid JSON or event; `problems` names each field and reason"},
    401: {"description": "Unknown or missing write key"},
    413: {"description": "Event over 32 KB or request over its limit"},
    415: {"description": "Content-Type is not application/json"},
}


async def _collect(request: Request, state: AppState, kind: str) -> Response:
    settings = state.settings
    max_bytes = settings.max_batch_bytes if kind == "batch" else settings.max_event_bytes
    body = await read_limited(request, limit=max_bytes)
    received_at = utcnow()

    def work() -> service.Accepted:
        payload = service.decode_body(
            body,
            content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"),
            max_bytes=max_bytes,
        )
        source = state.write_keys.resolve(
            service.write_key_from(request.headers.get("authorization"), payload),
            origin=request.headers.get("origin"),
        )
        events = service.normalise_request(
            payload,
            kind=kind,
            received_at=received_at,
            limits=state.limits,
            max_batch_events=settings.max_batch_events,
        )
        return service.append(
            state.inbox_writer,
            source=source,
            events=events,
            gate=state.gate,
            received_at=received_at,
        )

    accepted = await store_work.run(work)
    return json_response(
        {
            "success": True,
            "received": accepted.received,
            "dropped_by_consent": accepted.dropped_by_consent,
        }
    )


def _route(kind: str, path: str, summary: str) -> None:
    schema = _BATCH_SCHEMA if kind == "batch" else _EVENT_SCHEMA

    async def endpoint(request: Request, state: State) -> Response:
        return await _collect(request, state, kind)

    endpoint.__name__ = f"collect_{kind}_{path.strip('/').replace('/', '_')}"
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        summary=summary,
        responses=_RESPONSES,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}
        },
        include_in_schema=len(path) > len("/v1/b") and path != "/v1/import",
    )


for _kind in ("track", "identify", "page", "screen", "group", "alias"):
    _route(_kind, f"/v1/{_kind}", f"Record one {_kind} call")
_route("batch", "/v1/batch", "Record a batch of events")
# Segment's older clients post batches to /v1/import, and analytics-node-next to /v1/b.
_route("batch", "/v1/import", "Record a batch of events (alias of /v1/batch)")
_route("batch", "/v1/b", "Record a batch of events (alias of /v1/batch)")
# analytics.js (@segment/analytics-next) posts single calls to these short routes, as
# `text/plain` with the write key in the body (no CORS preflight; what sendBeacon sends).
SHORT_ROUTES = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
for _short, _kind in SHORT_ROUTES.items():
    _route(_kind, f"/v1/{_short}", f"Record one {_kind} call (alias of /v1/{_kind})")
