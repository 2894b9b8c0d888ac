"""Pure parts of leads: answer validation, the visitor's language, the rate limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.core.errors import InvalidInput, TooManyRequests
from accord.identity.rules import phone_e164
from accord.leads.i18n import pick_language, text
from accord.leads.identify import lead_traits
from accord.leads.models import FormIn
from accord.leads.spam import RateLimiter, check_honeypot
from accord.leads.validation import validate_submission
from accord.messaging.templates import compile_template, personalisation

FORM = FormIn.model_validate(
    {
        "slug": "f",
        "title": {"en": "T"},
        "fields": [
            {"key": "email", "kind": "email"},
            {"key": "phone", "kind": "phone"},
            {"key": "topics", "kind": "checkboxes", "options": ["a", "b"], "required": True},
            {"key": "why", "kind": "text", "max_length": 10},
        ],
        "consents": [{"purpose": "terms", "label": {"en": "I accept"}, "required": True}],
        "privacy_policy_url": "https://x.example/privacy",
        "from_address": "a@x.example",
        "phone_region": "IT",
    }
)


def test_valid_answers_are_normalised() -> None:
    clean = validate_submission(
        FORM,
        {
            "email": [" Ada@Example.COM "],
            "phone": ["347 123 4567"],
            "topics": ["a", "b"],
            "why": ["because"],
            "consent_terms": ["yes"],
            "utm_source": ["ads"],
        },
        lang="en",
    )
    assert clean.email == "ada@example.com" and clean.phone == "+393471234567"
    assert clean.answers == {"topics": ["a", "b"], "why": "because"}
    assert clean.purposes == ["terms"] and clean.utm == {"utm_source": "ads"}


def test_every_problem_is_reported_in_the_visitors_language() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_submission(
            FORM,
            {"email": ["nope"], "phone": ["12"], "topics": ["z"], "why": ["far too long"]},
            lang="it",
        )
    problems = {p.field: p.reason for p in caught.value.problems}
    assert set(problems) == {"email", "phone", "topics", "why", "consent_terms"}
    assert problems["consent_terms"] == "questa risposta è obbligatoria"
    assert problems["why"] == "al massimo 10 caratteri"


def test_a_form_needs_one_email_field() -> None:
    with pytest.raises(ValueError, match="exactly one field of kind email"):
        FormIn.model_validate(
            {**FORM.model_dump(mode="json"), "fields": [{"key": "name", "kind": "name"}]}
        )


@given(st.sampled_from(["+39 347 123 4567", "+44 7911 123456", "+1 415 555 2671"]))
def test_phone_numbers_become_e164(number: str) -> None:
    normalised = phone_e164(number, None)
    assert normalised.startswith("+") and normalised[1:].isdigit()
    assert phone_e164(normalised, None) == normalised


@pytest.mark.parametrize(
    ("query", "header", "offered", "expected"),
    [
        (None, "it-IT,it;q=0.9,en;q=0.8", ["en", "it"], "it"),
        (None, "fr-FR,en;q=0.5,it;q=0.7", ["en", "it"], "it"),
        ("en", "it", ["en", "it"], "en"),
        (None, "de", ["en", "it"], "en"),
        (None, None, ["it"], "it"),
        ("xx", "garbage;;q=oops", ["en"], "en"),
    ],
)
def test_pick_language(
    query: str | None, header: str | None, offered: list[str], expected: str
) -> None:
    assert pick_language(query, header, offered) == expected


def test_unknown_language_falls_back_to_english() -> None:
    assert text("submit", "de") == "Send"


def test_rate_limiter_refuses_a_flood_then_forgets_it() -> None:
    limiter = RateLimiter(limit=3, window_seconds=60)
    for second in range(3):
        limiter.hit("1.2.3.4", now=1000.0 + second)
    with pytest.raises(TooManyRequests) as caught:
        limiter.hit("1.2.3.4", now=1010.0)
    assert caught.value.retry_after_seconds == 51
    limiter.hit("5.6.7.8", now=1010.0)  # others are not affected
    limiter.hit("1.2.3.4", now=1061.0)  # the window has passed


def test_honeypot() -> None:
    check_honeypot("")
    check_honeypot(None)
    with pytest.raises(InvalidInput):
        check_honeypot("https://spam.example")


def test_item_15_leads_have_first_name_for_templates() -> None:
    traits = lead_traits({"name": "Giulia Maria Rossi", "email": "g@people.example"})
    assert traits["first_name"] == "Giulia" and traits["last_name"] == "Maria Rossi"
    assert lead_traits({"name": "Cher"})["first_name"] == "Cher"
    assert "first_name" not in lead_traits({"email": "x@people.example"})
    greeting = compile_template(
        subject='Hi {{ contact.first_name | default("friend") }}', html="<p>x</p>", text=""
    )
    rendered = greeting.render(personalisation(traits, email="g@people.example"))
    assert rendered.subject == "Hi Giulia"
