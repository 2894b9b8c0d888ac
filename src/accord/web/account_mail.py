"""Account emails (invitations, address confirmations) from handlers, through the SMTP sender.

Unlike campaigns, account emails never fall back to a local MTA: without
`ACCORD_SMTP_HOST` nothing is sent and the UI shows the link to pass on instead.
"""

from __future__ import annotations

from fastapi import Request

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
    request: Request, state: AppState, *, invitation: NewInvitation, business_name: str
) -> str | None:
    """Email an invitation's link and mark it sent; None once sent.

    Without a mail server nothing is sent and the link is returned, for the admin to pass on.
    """
    settings = state.settings
    email = team.invitation_email(
        invitation, business_name=business_name, base_url=base_url(request, settings)
    )
    if not await send(settings, email):
        return email.link
    invitation_id = invitation.invitation.id
    await store_work.write(state, lambda conn: team.mark_sent(conn, invitation_id=invitation_id))
    return None
