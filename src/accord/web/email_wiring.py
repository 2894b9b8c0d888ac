"""Builds what messaging and leads need over HTTP: the mailer, the wiring, the page renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from accord.core.settings import Settings
from accord.leads.spam import RateLimiter
from accord.messaging.mailer import Mailer
from accord.messaging.ports import Wiring
from accord.process.email import default_wiring
from accord.web.state import State

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class EmailWiring:
    mailer: Mailer
    wiring: Wiring
    pages: Environment
    form_limiter: RateLimiter
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.pages.get_template(name).render(**context), status_code)


def build(settings: Settings, wiring: Wiring | None = None) -> EmailWiring:
    return EmailWiring(
        mailer=Mailer.from_settings(settings),
        wiring=wiring or default_wiring(),
        pages=Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True),
        ),
        form_limiter=RateLimiter(
            limit=settings.form_rate_limit, window_seconds=settings.form_rate_window_seconds
        ),
        settings=settings,
    )


def email_wiring(state: State) -> EmailWiring:
    if state.email is None:
        raise RuntimeError("email and leads are not set up in this app")
    return state.email


Email = Annotated[EmailWiring, Depends(email_wiring)]
