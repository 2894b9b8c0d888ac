"""The one place typed errors become HTTP responses: status, field and reason."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from accord.core.errors import (
    AccordError,
    ExperimentState,
    InvalidInput,
    InvalidToken,
    NotFound,
    PayloadTooLarge,
    UnknownWriteKey,
    UnsupportedMediaType,
)


def error_body(code: str, message: str, problems: list[dict[str, str]]) -> dict[str, object]:
    # `code` is where Segment's client libraries look for the error's name.
    return {"success": False, "error": code, "code": code, "message": message, "problems": problems}


def json_response(
    data: object, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def to_response(exc: AccordError) -> Response:
    headers: dict[str, str] = {}
    problems: list[dict[str, str]] = []
    if isinstance(exc, InvalidInput):
        status, code = 400, "invalid_input"
        problems = [{"field": p.field, "reason": p.reason} for p in exc.problems]
    elif isinstance(exc, PayloadTooLarge):
        status, code = 413, "payload_too_large"
        problems = [{"field": exc.field, "reason": exc.reason}]
    elif isinstance(exc, UnsupportedMediaType):
        status, code = 415, "unsupported_media_type"
        problems = [{"field": "Content-Type", "reason": exc.reason}]
    elif isinstance(exc, UnknownWriteKey):
        status, code = 401, "unknown_write_key"
        headers["WWW-Authenticate"] = 'Basic realm="accord"'
        problems = [{"field": "writeKey", "reason": str(exc)}]
    elif isinstance(exc, InvalidToken):
        status, code = 401, "invalid_token"
        headers["WWW-Authenticate"] = 'Bearer realm="accord"'
        problems = [{"field": "Authorization", "reason": str(exc)}]
    elif isinstance(exc, ExperimentState):
        status, code = 409, "experiment_state"
        problems = [{"field": exc.field, "reason": exc.reason}]
    elif isinstance(exc, NotFound):
        status, code = 404, "not_found"
    else:
        status, code = 400, "bad_request"
    return json_response(error_body(code, str(exc), problems), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AccordError)
    async def _handle(_request: Request, exc: AccordError) -> Response:
        return to_response(exc)
