"""The one place typed errors become HTTP responses: status, field and reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord.core.errors import (
    AccordError,
    Conflict,
    CsrfRejected,
    ExperimentState,
    FieldProblem,
    Forbidden,
    InvalidInput,
    InvalidLink,
    InvalidToken,
    LinkExpired,
    MailNotSent,
    NotFound,
    OriginNotAllowed,
    PayloadTooLarge,
    SignInFailed,
    TooManyAttempts,
    TooManyRequests,
    UnknownWriteKey,
    UnsupportedMediaType,
    WebhookNotDelivered,
)
from accord.store.full import storage_full

log = logging.getLogger(__name__)
# What a client is asked to wait when the disk is full, before it sends again.
STORAGE_RETRY_AFTER_SECONDS = 30


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
    elif isinstance(exc, NotFound):
        status, code = 404, "not_found"
    elif isinstance(exc, OriginNotAllowed):
        status, code = 403, "origin_not_allowed"
        problems = [{"field": "Origin", "reason": str(exc)}]
    elif isinstance(exc, Forbidden):
        status, code = 403, "forbidden"
    elif isinstance(exc, CsrfRejected):
        status, code = 403, "csrf_rejected"
        problems = [{"field": "csrf_token", "reason": str(exc)}]
    elif isinstance(exc, SignInFailed):
        status, code = 401, "sign_in_failed"
    elif isinstance(exc, TooManyAttempts):
        status, code = 429, "too_many_attempts"
        headers["Retry-After"] = str(exc.retry_after_seconds)
    elif isinstance(exc, Conflict):
        status, code = 409, "conflict"
    elif isinstance(exc, InvalidLink):
        status, code = 400, "invalid_link"
    elif isinstance(exc, LinkExpired):
        status, code = 410, "link_expired"
    elif isinstance(exc, TooManyRequests):
        status, code = 429, "too_many_requests"
        headers["Retry-After"] = str(exc.retry_after_seconds)
    elif isinstance(exc, MailNotSent):
        # The mail server, not the caller, failed: a gateway error, worth a retry later.
        status, code = 502, "mail_not_sent"
        problems = [{"field": "email", "reason": exc.reason}]
    elif isinstance(exc, WebhookNotDelivered):
        # The receiver, not the caller, failed: a gateway error, like a mail server's.
        status, code = 502, "webhook_not_delivered"
        problems = [{"field": "webhook", "reason": exc.reason}]
    elif isinstance(exc, ExperimentState):
        status, code = 409, "experiment_state"
        problems = [{"field": exc.field, "reason": exc.reason}]
    else:
        status, code = 400, "bad_request"
    return json_response(error_body(code, str(exc), problems), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AccordError)
    async def _handle(request: Request, exc: AccordError) -> Response:
        if isinstance(exc, InvalidToken) and _wants_page(request):
            # A page asked for without a session sends the browser to sign in.
            return RedirectResponse(f"/sign-in?next={quote(request.url.path)}", status_code=303)
        if _wants_page(request):
            from accord.web.auth import NO_BUSINESS, TwoFactorEnrolmentRequired

            if isinstance(exc, TwoFactorEnrolmentRequired):
                return RedirectResponse("/account/two-factor", status_code=303)
            if isinstance(exc, Forbidden) and exc.reason == NO_BUSINESS:
                return RedirectResponse("/businesses", status_code=303)
            answer = to_response(exc)
            page = _error_page(request, exc, answer.status_code)
            if "retry-after" in answer.headers:
                page.headers["Retry-After"] = answer.headers["retry-after"]
            return page
        return to_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _handle_validation(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own checks (query, path, header and body models) answer in Accord's one
        # shape: 400 with each field and its reason, like every other refused input.
        return await _handle(request, validation_problems(exc.errors(), request=True))

    @app.exception_handler(StarletteHTTPException)
    async def _handle_http(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown URLs and wrong methods: a page for a browser, FastAPI's JSON otherwise.
        if _wants_page(request):
            return _page(request, exc.status_code, _HTTP_MESSAGES.get(exc.status_code, exc.detail))
        return await http_exception_handler(request, exc)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    async def _handle_storage(request: Request, exc: Exception) -> Response:
        # A full disk is the operator's to fix and passes once space returns: the caller
        # is told to come back (503, Retry-After) and /healthz says the store is degraded.
        if not storage_full(exc):
            raise exc
        state = getattr(request.app.state, "accord", None)
        if state is not None:
            state.storage.record_full()
        log.error("storage is full: %s", exc)
        headers = {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)}
        message = "storage is full; nothing was saved, try again later"
        if _wants_page(request):
            page = _page(request, 503, "Accord cannot save anything right now: its disk is full.")
            page.headers.update(headers)
            return page
        problems = [{"field": "storage", "reason": "the disk or the database is full"}]
        return json_response(
            error_body("storage_full", message, problems), status_code=503, headers=headers
        )

    @app.exception_handler(Exception)
    async def _handle_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette logs the exception and re-raises it after this answer is sent.
        if _wants_page(request):
            return _page(request, 500, "Accord could not show this page. The error is logged.")
        return json_response(
            error_body("internal_error", "internal server error", []), status_code=500
        )


def validation_problems(errors: Sequence[Any], *, request: bool = False) -> InvalidInput:
    """Pydantic's errors as one `InvalidInput`: `batch[0].type`, `purpose`…

    With `request`, each location starts with where FastAPI found the value (`query`,
    `body`…), which is left out of the field's name.
    """
    problems = []
    for error in errors:
        location = list(error.get("loc", ()))
        source = location.pop(0) if request and location else "body"
        field = ""
        for part in location:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        problems.append(FieldProblem(field or str(source), str(error.get("msg", "is not valid"))))
    return InvalidInput(problems or [FieldProblem("body", "is not valid")])


_HTTP_MESSAGES = {
    404: "There is no page at this address.",
    405: "This address does not answer that kind of request.",
}


def _wants_page(request: Request) -> bool:
    # Browsers ask for HTML when they navigate or post a form; API clients do not.
    path = request.url.path
    return not path.startswith(("/api/", "/v1/")) and "text/html" in request.headers.get(
        "accept", ""
    )


def _error_page(request: Request, exc: AccordError, status: int) -> Response:
    return _page(request, status, str(exc))


def _page(request: Request, status: int, message: str) -> Response:
    # Imported here: the UI module imports this one for its error shape.
    from accord.web.ui import render_error

    return render_error(request, status=status, message=message)
