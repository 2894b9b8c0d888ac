"""Signed URL-safe tokens of public links: email tracking, unsubscribe, confirmations, notices.

Built on itsdangerous. A token is bound to its purpose (the serializer's salt), so a
token made for one kind of link is refused by every other. Permanent tokens serve links
in sent email, which must keep working; timed ones expire, and the age is checked when
the token is read.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from accord.core.errors import InvalidLink, LinkExpired


class Signer:
    """Signs and checks the tokens of tracking, unsubscribe and other public links."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._by_purpose: dict[str, URLSafeSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        serializer = self._by_purpose.get(purpose)
        if serializer is None:
            serializer = self._by_purpose[purpose] = URLSafeSerializer(self._secret, salt=purpose)
        return serializer

    def dumps(self, purpose: str, payload: Any) -> str:
        """A token that never expires (links in email already sent)."""
        return str(self._serializer(purpose).dumps(payload))

    def loads(self, purpose: str, token: str) -> Any:
        try:
            return self._serializer(purpose).loads(token)
        except BadSignature as exc:
            raise InvalidLink("the link is not valid: it was changed or cut") from exc

    def dumps_timed(self, purpose: str, payload: Any) -> str:
        """A token stamped with its time of making; `loads_timed` refuses it when too old."""
        return str(URLSafeTimedSerializer(self._secret, salt=purpose).dumps(payload))

    def loads_timed(
        self, purpose: str, token: str, *, max_age_seconds: int, what: str = "link"
    ) -> Any:
        """The payload of a link that expires; expired and forged links differ in error."""
        serializer = URLSafeTimedSerializer(self._secret, salt=purpose)
        try:
            return serializer.loads(token, max_age=max_age_seconds)
        except SignatureExpired as exc:
            raise LinkExpired(what) from exc
        except BadSignature as exc:
            raise InvalidLink(f"the {what} link is not valid: it was changed or cut") from exc

    def loads_timed_or_none(self, purpose: str, token: str, *, max_age_seconds: int) -> Any:
        """The payload of a timed token, or None when it is forged, cut or expired."""
        try:
            return self.loads_timed(purpose, token, max_age_seconds=max_age_seconds)
        except (InvalidLink, LinkExpired):
            return None
