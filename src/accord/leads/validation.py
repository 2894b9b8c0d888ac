"""Server-side validation of a form submission: required answers, email, phone, choices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from accord.core.errors import FieldProblem, InvalidInput
from accord.identity.rules import phone_e164
from accord.leads.i18n import text
from accord.leads.models import FormIn

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@dataclass
class CleanSubmission:
    email: str
    name: str | None = None
    phone: str | None = None
    company: str | None = None
    answers: dict[str, str | list[str]] = field(default_factory=dict)
    utm: dict[str, str] = field(default_factory=dict)
    purposes: list[str] = field(default_factory=list)


def normalise_email_address(value: str, *, check_deliverability: bool) -> str:
    try:
        found = validate_email(value, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return found.normalized.lower()


def validate_submission(
    form: FormIn,
    values: Mapping[str, Sequence[str]],
    *,
    lang: str,
    check_deliverability: bool = False,
) -> CleanSubmission:
    """Every problem at once, each on its field, in the visitor's language."""
    problems: list[FieldProblem] = []
    clean = CleanSubmission(email="")

    def first(key: str) -> str:
        found = values.get(key) or []
        return found[0].strip() if found else ""

    for spec in form.fields:
        if spec.kind == "checkboxes":
            chosen = [v for v in values.get(spec.key) or [] if v]
            unknown = [v for v in chosen if v not in spec.options]
            if unknown:
                problems.append(FieldProblem(spec.key, text("unknown_option", lang)))
            elif spec.required and not chosen:
                problems.append(FieldProblem(spec.key, text("required", lang)))
            else:
                clean.answers[spec.key] = chosen
            continue
        value = first(spec.key)
        if not value:
            if spec.required or spec.kind == "email":
                problems.append(FieldProblem(spec.key, text("required", lang)))
            continue
        if len(value) > spec.max_length:
            problems.append(FieldProblem(spec.key, text("too_long", lang, n=spec.max_length)))
            continue
        try:
            if spec.kind == "email":
                clean.email = normalise_email_address(
                    value, check_deliverability=check_deliverability
                )
            elif spec.kind == "phone":
                clean.phone = phone_e164(value, form.phone_region)
            elif spec.kind == "choice":
                if value not in spec.options:
                    raise ValueError(text("unknown_option", lang))
                clean.answers[spec.key] = value
            elif spec.kind == "name":
                clean.name = value
            elif spec.kind == "company":
                clean.company = value
            else:
                clean.answers[spec.key] = value
        except ValueError as exc:
            problems.append(FieldProblem(spec.key, f"{text('invalid', lang)}: {exc}"))
    for key in UTM_KEYS:
        value = first(key)
        if value:
            clean.utm[key] = value[:200]
    for consent in form.consents:
        ticked = first(f"consent_{consent.purpose}") == "yes"
        if ticked:
            clean.purposes.append(consent.purpose)
        elif consent.required:
            problems.append(FieldProblem(f"consent_{consent.purpose}", text("required", lang)))
    if problems:
        raise InvalidInput(problems)
    return clean
