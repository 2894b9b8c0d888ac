"""Builds what messaging and leads need from settings: the mailer, wiring, page renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from accord.core.settings import Settings
from accord.leads.service import RateLimiter, granted_purposes_of_leads, score_email_engagement
from accord.messaging.service import Mailer, Signer, SmtpConfig, Wiring
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


def mailer_from(settings: Settings) -> Mailer:
    return Mailer(
        smtp=SmtpConfig(
            # Without a configured server, campaigns go to a local MTA on port 25.
            host=settings.smtp_host or "127.0.0.1",
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
            rate_per_second=settings.email_rate_per_second,
            concurrency=settings.email_concurrency,
        ),
        signer=Signer(settings.resolved_secret_key()),
        base_url=settings.resolved_public_url(),
        chunk=settings.email_send_chunk,
        min_human_delay=timedelta(seconds=settings.email_min_human_seconds),
    )


def default_wiring() -> Wiring:
    """Until the consent ledger is merged, consent at send time is the leads' own
    confirmed (double opt-in) consent records; human opens and clicks score leads."""
    return Wiring(granted_purposes=granted_purposes_of_leads, on_engagement=score_email_engagement)


def build(settings: Settings, wiring: Wiring | None = None) -> EmailWiring:
    return EmailWiring(
        mailer=mailer_from(settings),
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
