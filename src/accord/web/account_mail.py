"""Account emails (invitations, address confirmations) from handlers, through the SMTP sender.

Unlike campaigns, account emails never fall back to a local MTA: without
`ACCORD_SMTP_HOST` nothing is sent and the UI shows the link to pass on instead.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from sqlalchemy import Connection

from accord.accounts import team
from accord.accounts.models import AccountEmail
from accord.accounts.team import NewInvitation
from accord.core.settings import Settings
from accord.messaging import smtp
from accord.messaging.smtp import SmtpConfig
from accord.web import store_work
from accord.web.state import AppState


def base_url(request: Request, settings: Settings) -> str:
    """Where the links in emails and snippets point: the public URL, else this request's."""
    return (settings.public_url or str(request.base_url)).rstrip("/")


async def send(settings: Settings, email: AccountEmail) -> bool:
    """Send an account email; False when no mail server is configured (nothing is sent)."""
    if settings.smtp_host is None:
        return False
    await smtp.send_text(
        SmtpConfig.from_settings(settings),
        sender=settings.mail_from,
        to=email.to,
        subject=email.subject,
        text=email.text,
    )
    return True


async def send_invitation(
    request: Request, state: AppState, make: Callable[[Connection], NewInvitation]
) -> tuple[NewInvitation, str | None]:
    """Make (or renew) an invitation in one transaction, then email its link and mark it sent.

    Returns the invitation and, when no mail server is configured (nothing is sent), its
    link for the admin to pass on.
    """
    invitation = await store_work.write(state, make)
    settings = state.settings
    email = team.invitation_email(invitation, base_url=base_url(request, settings))
    if not await send(settings, email):
        return invitation, email.link
    invitation_id = invitation.invitation.id
    await store_work.write(state, lambda conn: team.mark_sent(conn, invitation_id=invitation_id))
    return invitation, None
