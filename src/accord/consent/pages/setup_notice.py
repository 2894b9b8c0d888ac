"""Consent set-up pages: the banner designer, the texts per language, and the live preview.

Both editors publish a new notice version built from the current one with one change
(the look of a variant, or one language's texts), so everything else carries over.
The preview renders the unsaved draft with the real /cmp.js in its preview mode.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from accord.consent import cmp_config, config
from accord.consent.models import NOTICE_TEXT_KEYS, REGIMES, NoticeIn, NoticeVariantIn
from accord.consent.pages.setup_common import (
    LANGUAGE,
    Manage,
    Posted,
    Problems,
    Read,
    add,
    field,
    from_invalid,
    from_validation,
    page,
)
from accord.core.errors import InvalidInput, NotFound
from accord.web import store_work
from accord.web.auth import Caller
from accord.web.cmp import default_texts, translation_languages
from accord.web.state import State
from accord.web.ui import redirect, render

router = APIRouter(include_in_schema=False)

LOOK_FIELDS = ("layout", "background", "text", "accent", "logo_url")
# Texts the banner shows whatever the visitor does; the others may be left blank.
OPTIONAL_TEXTS = ("close", "privacy_policy_label", "privacy_policy_url")
TEXT_LABELS = {
    "title": "Title",
    "description": "Description",
    "accept_all": "Accept all button",
    "reject_all": "Reject all button",
    "customise": "Customise button",
    "save": "Save choices button",
    "close": "Close button",
    "privacy_policy_label": "Privacy policy link text",
    "privacy_policy_url": "Privacy policy address",
    "reopen_label": "Reopen button (after a choice)",
    "do_not_sell_label": "Do Not Sell link (CCPA)",
    "placeholder": "Placeholder of blocked content ({purpose} is replaced)",
    "placeholder_button": "Placeholder button",
}
MAX_TEXT = {"description": 4000, "privacy_policy_url": 1000}


def _current(conn: Connection, business_id: str, key: str) -> tuple[dict[str, Any], list[Any]]:
    prop = config.get_property(conn, business_id=business_id, key=key)
    variants = config.current_variants(conn, property_id=prop["id"])
    if not variants:
        raise NotFound(f"published notice of property {key!r}")
    return prop, variants


def _chosen(variants: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next((v for v in variants if v["variant"] == name), variants[0])


def as_variant_in(notice: dict[str, Any]) -> dict[str, Any]:
    """A published variant as the fields of `NoticeVariantIn`, to publish it again."""
    return {
        "variant": notice["variant"],
        "weight": notice["weight"],
        "default_language": notice["default_language"],
        "texts": notice["texts"],
        "layout": notice["layout"],
        "colours": notice["colours"],
        "logo_url": notice["logo_url"],
    }


def look_values(notice: dict[str, Any]) -> dict[str, str]:
    colours = notice["colours"]
    return {
        "layout": notice["layout"],
        "background": colours["background"],
        "text": colours["text"],
        "accent": colours["accent"],
        "logo_url": notice["logo_url"] or "",
    }


def with_look(base: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    return {
        **base,
        "layout": values["layout"],
        "colours": {k: values[k] for k in ("background", "text", "accent")},
        "logo_url": values["logo_url"] or None,
    }


def check_texts(texts: dict[str, str]) -> Problems:
    """What the banner needs of one language's texts, by field (`text_<key>`)."""
    problems: Problems = {}
    for key in NOTICE_TEXT_KEYS:
        value = texts.get(key, "")
        if key not in OPTIONAL_TEXTS and not value:
            add(problems, f"text_{key}", "must not be empty")
        if len(value) > MAX_TEXT.get(key, 200):
            add(problems, f"text_{key}", f"at most {MAX_TEXT.get(key, 200)} characters")
    return problems | check_address(texts.get("privacy_policy_url", ""), "text_privacy_policy_url")


def check_address(url: str, name: str) -> Problems:
    """cmp.js shows links and images only from http(s) addresses and paths of the same site."""
    if url and (not url.startswith(("http://", "https://", "/")) or url.startswith("//")):
        return {name: ["must start with https://, http:// or /"]}
    return {}


def check_language(language: str) -> Problems:
    if not LANGUAGE.fullmatch(language):
        return {"language": ["a language code such as en, de or pt-BR"]}
    return {}


def starting_texts(notice: dict[str, Any], language: str) -> dict[str, str]:
    """The texts to edit: the language's own, else Accord's shipped texts for it, else the
    default language's."""
    if language in notice["texts"]:
        return dict(notice["texts"][language])
    base = dict(notice["texts"][notice["default_language"]])
    if language.lower() in translation_languages():
        shipped = default_texts(language.lower())
        base |= {k: v for k, v in shipped.items() if k in NOTICE_TEXT_KEYS}
    return base


def _publish(
    conn: Connection, caller: Caller, key: str, variants: list[Any], changed: dict[str, Any]
) -> dict[str, Any]:
    """Publish the current variants again with `changed` in place of its own variant."""
    spec = NoticeIn.model_validate(
        {
            "variants": [
                changed if v["variant"] == changed["variant"] else as_variant_in(v)
                for v in variants
            ]
        }
    )
    published = config.publish_notice(
        conn, business_id=caller.business_id, property_key=key, spec=spec
    )
    store_work.record(
        conn,
        caller,
        "consent_notice.publish",
        asset=("consent_property", key),
        spec=spec.model_dump(mode="json"),
    )
    return published


def versions_of(conn: Connection, business_id: str, key: str) -> list[dict[str, Any]]:
    """Every published version, newest first, with its variants."""
    by_version: dict[int, dict[str, Any]] = {}
    for notice in config.notice_versions(conn, business_id=business_id, property_key=key):
        version = by_version.setdefault(
            notice["version"],
            {"version": notice["version"], "published_at": notice["published_at"], "variants": []},
        )
        version["variants"].append(notice)
    return sorted(by_version.values(), key=lambda v: v["version"], reverse=True)


# --- Banner designer ------------------------------------------------------------------


def _banner_page(
    request: Request,
    state: State,
    caller: Caller,
    key: str,
    variant: str,
    *,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        prop, variants = _current(conn, caller.business_id, key)
    notice = _chosen(variants, variant)
    return page(
        request,
        "banner.html",
        caller=caller,
        problems=problems,
        prop=prop,
        current=notice,
        variants=variants,
        values=values or look_values(notice),
        languages=sorted(notice["texts"]),
        regimes=REGIMES,
    )


@router.get("/consent/properties/{key}/banner")
def banner_page(
    key: str, request: Request, state: State, caller: Read, variant: str = ""
) -> Response:
    return _banner_page(request, state, caller, key, variant)


@router.post("/consent/properties/{key}/banner")
def publish_banner(
    key: str, request: Request, state: State, caller: Manage, form: Posted
) -> Response:
    values = {name: field(form, name).strip() for name in LOOK_FIELDS}
    variant = field(form, "variant")
    problems = check_address(values["logo_url"], "logo_url")
    if problems:
        return _banner_page(request, state, caller, key, variant, values=values, problems=problems)
    try:
        with state.store.write() as conn:
            _, variants = _current(conn, caller.business_id, key)
            notice = _chosen(variants, variant)
            changed = NoticeVariantIn.model_validate(with_look(as_variant_in(notice), values))
            published = _publish(conn, caller, key, variants, changed.model_dump(mode="json"))
    except ValidationError as exc:
        problems = from_validation(
            exc, {f"colours.{c}": c for c in ("background", "text", "accent")}
        )
        return _banner_page(request, state, caller, key, variant, values=values, problems=problems)
    return redirect(
        request,
        f"/consent/properties/{key}/banner?variant={notice['variant']}",
        notice=f"Version {published['version']} published with the new look",
    )


# --- Texts per language ---------------------------------------------------------------


def _texts_page(
    request: Request,
    state: State,
    caller: Caller,
    key: str,
    variant: str,
    language: str,
    *,
    texts: dict[str, str] | None = None,
    make_default: bool = False,
    problems: Problems | None = None,
) -> Response:
    with state.store.read() as conn:
        prop, variants = _current(conn, caller.business_id, key)
        versions = versions_of(conn, caller.business_id, key)
    notice = _chosen(variants, variant)
    language = language or notice["default_language"]
    found = dict(problems or {})
    if texts is None:
        found |= check_language(language)
        texts = starting_texts(notice, language) if not found else {}
    return page(
        request,
        "texts.html",
        caller=caller,
        problems=found,
        prop=prop,
        current=notice,
        variants=variants,
        language=language,
        languages=sorted(notice["texts"]),
        shipped=translation_languages(),
        texts=texts,
        labels=TEXT_LABELS,
        keys=NOTICE_TEXT_KEYS,
        make_default=make_default,
        versions=versions,
    )


@router.get("/consent/properties/{key}/texts")
def texts_page(
    key: str,
    request: Request,
    state: State,
    caller: Read,
    variant: str = "",
    lang: str = "",
) -> Response:
    return _texts_page(request, state, caller, key, variant, lang.strip())


def posted_texts(form: FormData) -> dict[str, str]:
    """The texts the form holds; a key it does not hold gets the default when published."""
    return {
        key: field(form, f"text_{key}").strip() for key in NOTICE_TEXT_KEYS if f"text_{key}" in form
    }


@router.post("/consent/properties/{key}/texts")
def publish_texts(
    key: str, request: Request, state: State, caller: Manage, form: Posted
) -> Response:
    language = field(form, "language").strip()
    variant = field(form, "variant")
    texts = posted_texts(form)
    make_default = field(form, "make_default") == "on"
    problems = check_language(language) | check_texts(texts)
    if problems:
        return _texts_page(
            request,
            state,
            caller,
            key,
            variant,
            language,
            texts=texts,
            make_default=make_default,
            problems=problems,
        )
    try:
        with state.store.write() as conn:
            _, variants = _current(conn, caller.business_id, key)
            notice = as_variant_in(_chosen(variants, variant))
            changed = {
                **notice,
                "texts": {**notice["texts"], language: texts},
                "default_language": language if make_default else notice["default_language"],
            }
            published = _publish(conn, caller, key, variants, changed)
    except (ValidationError, InvalidInput) as exc:
        found = from_validation(exc) if isinstance(exc, ValidationError) else from_invalid(exc)
        return _texts_page(
            request,
            state,
            caller,
            key,
            variant,
            language,
            texts=texts,
            make_default=make_default,
            problems=found,
        )
    return redirect(
        request,
        f"/consent/properties/{key}/texts?variant={changed['variant']}&lang={language}",
        notice=f"Version {published['version']} published; the other languages are unchanged",
    )


# --- Preview --------------------------------------------------------------------------


def _preview(
    request: Request,
    state: State,
    caller: Caller,
    key: str,
    *,
    variant: str,
    language: str,
    regime: str,
    form: FormData | None,
) -> Response:
    """The draft (the current variant with what the form changes) shown by cmp.js."""
    regime = regime if regime in REGIMES else "gdpr"
    with state.store.read() as conn:
        _, variants = _current(conn, caller.business_id, key)
        chosen = _chosen(variants, variant)
        draft = as_variant_in(chosen)
        if LANGUAGE.fullmatch(language) and language not in draft["texts"]:
            # A language being added: what its texts page starts from.
            draft["texts"] = {**draft["texts"], language: starting_texts(chosen, language)}
        if form is not None and "layout" in form:
            draft = with_look(draft, {name: field(form, name).strip() for name in LOOK_FIELDS})
        if form is not None and "text_title" in form and LANGUAGE.fullmatch(language):
            draft["texts"] = {**draft["texts"], language: posted_texts(form)}
        problem = None
        try:
            spec = NoticeVariantIn.model_validate(draft)
            banner = cmp_config.preview_config(
                conn,
                business_id=caller.business_id,
                property_key=key,
                draft=spec,
                language=language,
                regime=regime,
            )
        except ValidationError as exc:
            problems = from_validation(exc)
            problem = "; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items())
            banner = None
    return render(
        request,
        "consent/setup/preview.html",
        caller=caller,
        status=400 if problem else 200,
        key=key,
        banner=banner,
        problem=problem,
    )


@router.get("/consent/properties/{key}/preview")
def preview_published(
    key: str,
    request: Request,
    state: State,
    caller: Read,
    variant: str = "",
    lang: str = "",
    regime: str = "gdpr",
) -> Response:
    return _preview(
        request, state, caller, key, variant=variant, language=lang, regime=regime, form=None
    )


@router.post("/consent/properties/{key}/preview")
def preview_draft(key: str, request: Request, state: State, caller: Read, form: Posted) -> Response:
    """Changes nothing: it shows what publishing the posted form would show visitors."""
    return _preview(
        request,
        state,
        caller,
        key,
        variant=field(form, "variant"),
        language=field(form, "language").strip(),
        regime=field(form, "regime"),
        form=form,
    )
