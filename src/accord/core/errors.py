"""Typed errors of the domain; `web/` maps each to one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass, field


class AccordError(Exception):
    """Base of every error a user can cause."""


@dataclass
class FieldProblem:
    field: str
    reason: str


@dataclass
class InvalidInput(AccordError):
    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{p.field}: {p.reason}" for p in self.problems)


@dataclass
class PayloadTooLarge(AccordError):
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass
class UnsupportedMediaType(AccordError):
    reason: str

    def __str__(self) -> str:
        return self.reason


class UnknownWriteKey(AccordError):
    def __str__(self) -> str:
        return "unknown or missing write key"


class InvalidToken(AccordError):
    def __str__(self) -> str:
        return "unknown, revoked or missing admin token"


@dataclass
class NotFound(AccordError):
    what: str

    def __str__(self) -> str:
        return f"{self.what} not found"


@dataclass
class Conflict(AccordError):
    """The request contradicts the current state (a decided review, a removed edge...)."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class Forbidden(AccordError):
    """Authenticated, but the caller's role and tasks do not allow this."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class OriginNotAllowed(AccordError):
    """A browser on a web origin the write key's pixel does not list."""

    origin: str

    def __str__(self) -> str:
        return f"origin {self.origin} is not allowed to send with this write key"


class CsrfRejected(AccordError):
    def __str__(self) -> str:
        return "the form's security token is missing or wrong; reload the page and try again"


@dataclass
class SignInFailed(AccordError):
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class TooManyAttempts(AccordError):
    reason: str
    retry_after_seconds: int

    def __str__(self) -> str:
        return self.reason


@dataclass
class InvalidLink(AccordError):
    """A signed public link (tracking, unsubscribe, confirmation) that fails its check."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class LinkExpired(AccordError):
    what: str

    def __str__(self) -> str:
        return f"this {self.what} link has expired"


@dataclass
class MailNotSent(AccordError):
    """The SMTP server refused an email or could not be reached."""

    recipient: str
    reason: str

    def __str__(self) -> str:
        return f"the email to {self.recipient} could not be sent: {self.reason}"


@dataclass
class WebhookNotDelivered(AccordError):
    """A webhook destination refused a message or could not be reached."""

    url: str
    reason: str

    def __str__(self) -> str:
        return f"the webhook destination {self.url} did not accept the message: {self.reason}"


@dataclass
class TooManyRequests(AccordError):
    reason: str
    retry_after_seconds: int

    def __str__(self) -> str:
        return self.reason


@dataclass
class ExperimentState(AccordError):
    """The experiment's state forbids the change: its plan is frozen, or it has not started."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
