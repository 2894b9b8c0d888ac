"""Recommendations over HTTP: the public `GET /v1/recommendations` (write key) for on-site
widgets, and the admin API of the catalogue, trainings and previews."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from accord.collect.service import write_key_from
from accord.core.errors import FieldProblem, InvalidInput
from accord.recommend import catalogue, service, serving
from accord.web import store_work
from accord.web.auth import Caller, requires
from accord.web.bodies import read_limited
from accord.web.errors import json_response
from accord.web.jobs import run_soon
from accord.web.state import State

router = APIRouter(tags=["recommendations"])

Reader = Annotated[Caller, Depends(requires("reports.read"))]
Editor = Annotated[Caller, Depends(requires("assets.manage"))]
Trainer = Annotated[Caller, Depends(requires("jobs.manage"))]

JOB = "recommend.train"
MAX_IDENTIFIER = 255
# A catalogue import: at most this many bytes of CSV (docs/recommendations.md).
MAX_IMPORT_BYTES = 20_000_000
MAX_JSON_BYTES = 5_000_000


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 10
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput([FieldProblem("limit", "must be a whole number")]) from None
    return serving.check_limit(value)


def _identifier(name: str, raw: str | None) -> str | None:
    if raw is not None and len(raw) > MAX_IDENTIFIER:
        raise InvalidInput([FieldProblem(name, f"at most {MAX_IDENTIFIER} characters")])
    return raw or None


@router.get(
    "/v1/recommendations",
    summary="Recommended products for a visitor (write key)",
    responses={
        400: {"description": "limit outside 1-100, a malformed context or identifier"},
        401: {"description": "Unknown or missing write key"},
    },
)
def recommendations(
    request: Request,
    state: State,
    userId: str | None = None,  # noqa: N803 - Segment's spelling
    anonymousId: str | None = None,  # noqa: N803
    limit: str | None = None,
    context: str | None = None,
    writeKey: str | None = None,  # noqa: N803
) -> Response:
    """`{"items": [{"product_id", "score", "source", name, url, image, price}], "personalised",
    "basis", "notes"}`. Personal only with the visitor's `preferences` consent; otherwise
    the popular products, and `notes` says so. An unknown person gets popular products; an
    unknown product context is ignored with a note."""
    source = state.write_keys.resolve(
        write_key_from(request.headers.get("authorization"), {"writeKey": writeKey})
    )
    count = _limit(limit)
    product = serving.parse_context(context)
    with state.store.read() as conn:
        answer = serving.recommend(
            conn,
            business_id=source.business_id,
            user_id=_identifier("userId", userId),
            anonymous_id=_identifier("anonymousId", anonymousId),
            context=product,
            limit=count,
        )
    return json_response(answer.as_json())


@router.get("/api/products", summary="The product catalogue, a page at a time")
def list_products(state: State, caller: Reader, offset: int = 0, limit: int = 200) -> Any:
    if not offset >= 0 or not 1 <= limit <= 1000:
        raise InvalidInput([FieldProblem("limit", "between 1 and 1000, offset 0 or more")])
    with state.store.read() as conn:
        total, items, _ = catalogue.listing(
            conn, business_id=caller.business_id, limit=limit, offset=offset
        )
    return {"total": total, "products": [p.as_dict() for p in items]}


@router.post(
    "/api/products",
    summary="Add or change products (one object or a list), like identify for products",
)
async def put_products(request: Request, state: State, caller: Editor) -> Any:
    body = await read_limited(request, limit=MAX_JSON_BYTES)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput([FieldProblem("body", "not valid JSON")]) from None
    items = data if isinstance(data, list) else [data]
    parsed: list[catalogue.Product] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        prefix = f"[{index}]." if isinstance(data, list) else ""
        if not isinstance(item, dict):
            problems.append(FieldProblem(prefix or "body", "must be an object"))
            continue
        try:
            parsed.append(catalogue.parse_product(item, prefix=prefix))
        except InvalidInput as exc:
            problems += exc.problems
    if problems:
        raise InvalidInput(problems)

    def work(conn: Any) -> int:
        return catalogue.upsert(conn, business_id=caller.business_id, items=parsed)

    saved = await store_work.write(state, work)
    return {"saved": saved}


@router.post(
    "/api/products/import",
    summary="Import the catalogue from CSV (header: product_id,name,url,image,price,...)",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_products(request: Request, state: State, caller: Editor) -> Any:
    body = await read_limited(request, limit=MAX_IMPORT_BYTES)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput([FieldProblem("body", "CSV must be UTF-8")]) from None

    parsed = await store_work.run(catalogue.parse_csv, text)

    def work(conn: Any) -> int:
        return catalogue.upsert(conn, business_id=caller.business_id, items=parsed)

    saved = await store_work.write(state, work)
    return {"saved": saved}


@router.get("/api/recommendations/runs", summary="The last trainings and their quality")
def list_runs(state: State, caller: Reader) -> Any:
    with state.store.read() as conn:
        found = service.runs(conn, business_id=caller.business_id)
    return [
        {
            "id": r.id,
            "status": r.status,
            "model": r.model,
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "evaluation": r.evaluation,
            "counts": r.counts,
            "error": r.error,
        }
        for r in found
    ]


@router.get("/api/recommendations/preview", summary="What one profile would be recommended now")
def preview(state: State, caller: Reader, profile_id: str, limit: str | None = None) -> Response:
    count = _limit(limit)
    with state.store.read() as conn:
        answer = serving.recommend(
            conn, business_id=caller.business_id, profile_id=profile_id, limit=count
        )
    return json_response(answer.as_json())


@router.post("/api/recommendations/train", summary="Retrain now (the recommend.train job)")
async def train_now(state: State, caller: Trainer) -> Any:
    await run_soon(state, business_id=caller.business_id, name=JOB)
    return {"requested": JOB}
