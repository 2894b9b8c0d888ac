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
class ExperimentState(AccordError):
    """The experiment's state forbids the change: its plan is frozen, or it has not started."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
