"""What the consent set-up pages share: permissions, posted forms and their problems."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from accord.core.errors import FieldProblem, InvalidInput
from accord.web.auth import Caller, requires
from accord.web.ui import render

Read = Annotated[Caller, Depends(requires("consent.read"))]
Manage = Annotated[Caller, Depends(requires("consent.manage"))]

# {form field: reasons}, shown next to the field it names.
Problems = dict[str, list[str]]

LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


async def posted_form(request: Request) -> FormData:
    """The posted form, read on the event loop so plain `def` handlers can use it."""
    return await request.form()


Posted = Annotated[FormData, Depends(posted_form)]


def field(form: FormData, name: str) -> str:
    """One text field as typed, or "" when absent (never a 422 for a missing field)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def fields(form: FormData, name: str) -> list[str]:
    """Every value of a repeated field (rows, check boxes)."""
    return [v if isinstance(v, str) else "" for v in form.getlist(name)]


def add(problems: Problems, name: str, reason: str) -> None:
    problems.setdefault(name, []).append(reason)


def from_validation(exc: ValidationError, rename: dict[str, str] | None = None) -> Problems:
    """Pydantic's errors by form field: a location joined with dots, renamed when asked."""
    found: Problems = {}
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "form"
        name = (rename or {}).get(location, location)
        add(found, name, str(error["msg"]).removeprefix("Value error, "))
    return found


def from_invalid(exc: InvalidInput, rename: dict[str, str] | None = None) -> Problems:
    found: Problems = {}
    for problem in exc.problems:
        add(found, (rename or {}).get(problem.field, problem.field), problem.reason)
    return found


def as_invalid(problems: Problems) -> InvalidInput:
    return InvalidInput([FieldProblem(k, r) for k, reasons in problems.items() for r in reasons])


def optional_int(text: str) -> str | None:
    """A blank number field means "not set"; anything else is left for validation."""
    return text.strip() or None


def csv_list(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def summary(problems: Problems) -> str:
    count = sum(len(reasons) for reasons in problems.values())
    return f"Nothing was saved: {count} problem{'s' if count != 1 else ''} to fix below."


def page(
    request: Request,
    template: str,
    *,
    caller: Caller,
    status: int = 200,
    problems: Problems | None = None,
    **context: Any,
) -> HTMLResponse:
    """A consent set-up page; with problems, the form is shown again with status 400."""
    found = problems or {}
    if found and status == 200:
        status = 400
    return render(
        request,
        f"consent/setup/{template}",
        caller=caller,
        status=status,
        problems=found,
        error=summary(found) if found else None,
        can_manage=caller.can("consent.manage"),
        **context,
    )


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
