"""What the email pages share: their callers, and problems read from forms and shown by field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends
from pydantic import ValidationError

from accord.core.errors import FieldProblem
from accord.web.auth import Caller, requires

Reader = Annotated[Caller, Depends(requires("email.read"))]
Manager = Annotated[Caller, Depends(requires("email.manage"))]

PAGE_SIZE = 200
RATE_LABELS = {
    "delivery_rate": "Delivery",
    "open_rate": "Human open",
    "click_through_rate": "Click-through (CTR)",
    "click_to_open_rate": "Click-to-open",
    "unsubscribe_rate": "Unsubscribe",
    "bounce_rate": "Bounce",
    "complaint_rate": "Complaint",
}


def problems_text(problems: list[FieldProblem]) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problems)


def pydantic_problems(exc: ValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(".".join(str(p) for p in e["loc"]) or "form", e["msg"]) for e in exc.errors()
    ]


def by_field(problems: list[FieldProblem]) -> dict[str, list[str]]:
    """Problems keyed by the field they belong next to."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        found.setdefault(problem.field, []).append(problem.reason)
    return found


def due(text: str, field: str, problems: list[FieldProblem]) -> datetime | None:
    """A `datetime-local` value, read as UTC."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(FieldProblem(field, "use a date and time like 2026-05-01T09:30"))
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
