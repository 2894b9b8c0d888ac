"""Outgoing email through the configured SMTP server, and signed links that expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage


@dataclass(frozen=True)
class MailServer:
    host: str | None
    port: int
    username: str | None
    password: str | None
    starttls: bool
    sender: str

    @property
    def configured(self) -> bool:
        return self.host is not None


def send(server: MailServer, *, to: str, subject: str, body: str) -> bool:
    """Send a plain-text email; False when no mail server is configured."""
    if server.host is None:
        return False
    message = EmailMessage()
    message["From"] = server.sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        if server.starttls:
            smtp.starttls()
        if server.username and server.password:
            smtp.login(server.username, server.password)
        smtp.send_message(message)
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, *, purpose: str, payload: str, ttl_seconds: int) -> str:
    """A URL-safe token binding `payload` to `purpose` until it expires."""
    expires = int(time.time()) + ttl_seconds
    body = f"{purpose}|{payload}|{expires}".encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def unsign(secret: str, *, purpose: str, token: str) -> str | None:
    """The payload of a token made by `sign` for `purpose`, or None if forged or expired."""
    try:
        body_text, mac_text = token.split(".", 1)
        body = _unb64(body_text)
        mac = _unb64(mac_text)
    except ValueError:
        return None
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        got_purpose, rest = body.decode().split("|", 1)
        payload, expires = rest.rsplit("|", 1)
        if got_purpose != purpose or int(expires) < time.time():
            return None
    except (UnicodeDecodeError, ValueError):
        return None
    return payload
