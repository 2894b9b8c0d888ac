"""Raw MIME of outgoing email, built directly as bytes (the stdlib's `EmailMessage`
parses every header it is given, which costs more than everything else in a send)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate

CRLF = b"\r\n"


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    recipient: str
    data: bytes


def _header(name: str, value: str) -> bytes:
    if any(ch in value for ch in "\r\n"):
        raise ValueError(f"header {name} holds a line break")
    if value.isascii() and len(value) + len(name) < 996:
        return f"{name}: {value}".encode("ascii")
    # RFC 2047 encoded words for non-ASCII text (subjects, names).
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode()}".encode("ascii")


def _body(content: str) -> bytes:
    return base64.encodebytes(content.encode("utf-8")).replace(b"\n", CRLF)


def _head(*, sender: str, recipient: str, headers: Sequence[tuple[str, str]]) -> list[bytes]:
    return [
        _header("From", sender),
        _header("To", recipient),
        _header("Date", formatdate(usegmt=True)),
        *(_header(name, value) for name, value in headers),
        b"MIME-Version: 1.0",
    ]


def build_mime(
    *,
    sender: str,
    recipient: str,
    headers: Sequence[tuple[str, str]],
    text: str,
    html: str,
) -> OutgoingEmail:
    """multipart/alternative with a text and an HTML part, both UTF-8 in base64."""
    boundary = f"=_accord_{secrets.token_hex(12)}"
    lines = [
        *_head(sender=sender, recipient=recipient, headers=headers),
        f'Content-Type: multipart/alternative; boundary="{boundary}"'.encode(),
        b"",
    ]
    marker = f"--{boundary}".encode()
    parts = [
        CRLF.join(lines),
        marker,
        b'Content-Type: text/plain; charset="utf-8"',
        b"Content-Transfer-Encoding: base64",
        b"",
        _body(text),
        marker,
        b'Content-Type: text/html; charset="utf-8"',
        b"Content-Transfer-Encoding: base64",
        b"",
        _body(html),
        f"--{boundary}--".encode(),
        b"",
    ]
    return OutgoingEmail(sender=sender, recipient=recipient, data=CRLF.join(parts))


def build_text_mime(
    *, sender: str, recipient: str, headers: Sequence[tuple[str, str]], text: str
) -> OutgoingEmail:
    """A single text/plain part, UTF-8 in base64."""
    lines = [
        *_head(sender=sender, recipient=recipient, headers=headers),
        b'Content-Type: text/plain; charset="utf-8"',
        b"Content-Transfer-Encoding: base64",
        b"",
        _body(text),
    ]
    return OutgoingEmail(sender=sender, recipient=recipient, data=CRLF.join(lines))
