"""The form builder page's posted fields, read into a form definition and checked."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from accord.core.errors import FieldProblem
from accord.leads.forms import Form
from accord.leads.i18n import LANGUAGES
from accord.leads.models import FormIn

NOT_PRETICKED = "a consent box must start unticked: only an active choice is consent"

BLANK_SPEC: dict[str, Any] = {
    "slug": "",
    "languages": ["en"],
    "title": {},
    "welcome": {},
    "thank_you": {},
    "fields": [
        {"key": "email", "kind": "email", "label": {"en": "Email"}, "required": True},
        {"key": "name", "kind": "name", "label": {"en": "Name"}, "required": False},
        {"key": "utm_source", "kind": "hidden", "label": {}, "required": False},
        {"key": "utm_campaign", "kind": "hidden", "label": {}, "required": False},
    ],
    "consents": [
        {"purpose": "marketing", "label": {"en": "Email me news and offers"}},
    ],
    "privacy_policy_url": "",
    "next_url": "",
    "double_opt_in": True,
    "list_id": "",
    "coupon_pool_id": "",
    "download_name": "",
    "from_address": "",
    "phone_region": "",
}


def spec_of(form: Form) -> dict[str, Any]:
    spec: dict[str, Any] = form.spec.model_dump(mode="json")
    for key in ("next_url", "list_id", "coupon_pool_id", "download_name", "phone_region"):
        spec[key] = spec[key] or ""
    return spec


def _texts(form: FormData, prefix: str, languages: list[str]) -> dict[str, str]:
    found = {lang: str(form.get(f"{prefix}_{lang}", "")).strip() for lang in languages}
    return {lang: value for lang, value in found.items() if value}


def _column(form: FormData, name: str) -> list[str]:
    return [str(v) for v in form.getlist(name)]


def posted_spec(form: FormData) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The builder's fields as a form definition, and the problems only the page can see
    (a pre-ticked consent box, a new field whose key is taken)."""
    problems: list[FieldProblem] = []
    languages = [
        lang.strip().lower()
        for lang in str(form.get("languages", "")).replace(",", " ").split()
        if lang.strip()
    ] or ["en"]
    languages = list(dict.fromkeys(languages))
    removed = set(_column(form, "remove_field"))
    required = set(_column(form, "field_required"))
    labels = {lang: _column(form, f"field_label_{lang}") for lang in languages}
    fields: list[dict[str, Any]] = []
    keys, kinds, options = (
        _column(form, "field_key"),
        _column(form, "field_kind"),
        _column(form, "field_options"),
    )
    for index, (key, kind) in enumerate(zip(keys, kinds, strict=False)):
        key = key.strip()
        if not key or key in removed:
            continue
        label = {
            lang: labels[lang][index].strip()
            for lang in languages
            if index < len(labels[lang]) and labels[lang][index].strip()
        }
        choices = options[index] if index < len(options) else ""
        fields.append(
            {
                "key": key,
                "kind": kind,
                "label": label,
                "required": key in required,
                "options": [o.strip() for o in choices.splitlines() if o.strip()],
            }
        )
    new_key = str(form.get("new_field_key", "")).strip()
    if new_key:
        if any(f["key"] == new_key for f in fields):
            problems.append(FieldProblem(f"fields.{new_key}", "a field with this key exists"))
        else:
            kind = str(form.get("new_field_kind", "text"))
            fields.append({"key": new_key, "kind": kind, "label": {}, "required": False})
    removed_consents = set(_column(form, "remove_consent"))
    consent_required = set(_column(form, "consent_required"))
    consent_labels = {lang: _column(form, f"consent_label_{lang}") for lang in languages}
    starts = _column(form, "consent_start")
    consents: list[dict[str, Any]] = []
    for index, purpose in enumerate(_column(form, "consent_purpose")):
        purpose = purpose.strip()
        if not purpose or purpose in removed_consents:
            continue
        start = starts[index] if index < len(starts) else "unticked"
        if start != "unticked":
            problems.append(FieldProblem(f"consents.{purpose}", NOT_PRETICKED))
        consents.append(
            {
                "purpose": purpose,
                "label": {
                    lang: consent_labels[lang][index].strip()
                    for lang in languages
                    if index < len(consent_labels[lang]) and consent_labels[lang][index].strip()
                },
                "required": purpose in consent_required,
                "start": start,
            }
        )
    new_purpose = str(form.get("new_consent_purpose", "")).strip()
    if new_purpose:
        if any(c["purpose"] == new_purpose for c in consents):
            problems.append(FieldProblem(f"consents.{new_purpose}", "this purpose is listed"))
        else:
            consents.append({"purpose": new_purpose, "label": {}, "required": False})
    spec = {
        "slug": str(form.get("slug", "")).strip(),
        "languages": languages,
        "title": _texts(form, "title", languages),
        "welcome": _texts(form, "welcome", languages),
        "thank_you": _texts(form, "thank_you", languages),
        "fields": fields,
        "consents": consents,
        "privacy_policy_url": str(form.get("privacy_policy_url", "")).strip(),
        "next_url": str(form.get("next_url", "")).strip(),
        "double_opt_in": form.get("double_opt_in") == "on",
        "list_id": str(form.get("list_id", "")).strip(),
        "coupon_pool_id": str(form.get("coupon_pool_id", "")).strip(),
        "download_name": str(form.get("download_name", "")).strip(),
        "from_address": str(form.get("from_address", "")).strip(),
        "phone_region": str(form.get("phone_region", "")).strip().upper(),
    }
    if not spec["privacy_policy_url"]:
        problems.append(
            FieldProblem("privacy_policy_url", "a link to the privacy policy is required")
        )
    if not spec["title"]:
        problems.append(FieldProblem("title", "give the page a title"))
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        problems.append(
            FieldProblem("languages", f"not supported: {unknown}; use {sorted(LANGUAGES)}")
        )
    return spec, problems


def validated(spec: dict[str, Any]) -> tuple[FormIn | None, list[FieldProblem]]:
    body = {k: v for k, v in spec.items() if v != "" or k in ("slug", "from_address")}
    body["consents"] = [
        {k: v for k, v in c.items() if k != "start"} for c in spec.get("consents", [])
    ]
    try:
        return FormIn.model_validate(body), []
    except ValidationError as exc:
        return None, [
            FieldProblem(".".join(str(p) for p in e["loc"]) or "form", e["msg"])
            for e in exc.errors()
        ]


def unique_problems(problems: list[FieldProblem]) -> list[FieldProblem]:
    seen: dict[tuple[str, str], FieldProblem] = {}
    for problem in problems:
        seen.setdefault((problem.field, problem.reason), problem)
    return list(seen.values())
