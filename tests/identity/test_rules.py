"""Identifier normalisation, blocking and rule validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from accord.identity.rules import (
    BUILTIN_KINDS,
    DEFAULT_BLOCKED_VALUES,
    IdentityRules,
    clean,
    identifiers_of,
    is_blocked,
    normalise,
)

RULES = IdentityRules()
kinds = st.sampled_from([*BUILTIN_KINDS, "crm_id"])
values = st.one_of(st.text(max_size=40), st.integers(), st.none(), st.booleans(), st.floats())


@given(kinds, values)
def test_normalising_is_idempotent(kind: str, raw: object) -> None:
    once = normalise(kind, raw)
    if once is not None:
        assert normalise(kind, once) == once
        assert once == once.strip()
        assert 0 < len(once) <= 255


@given(st.emails())
def test_emails_are_case_insensitive(email: str) -> None:
    assert normalise("email", email.upper()) == normalise("email", email.lower())
    assert normalise("email", f"  {email} ") == email.lower()


@pytest.mark.parametrize(
    "raw",
    ["+33 6 12 34 56 78", "+33612345678", "+33 (0)6-12-34-56-78", "0033612345678"],
)
def test_phones_become_e164(raw: str) -> None:
    region = None if raw.startswith("+") else "FR"
    assert normalise("phone", raw, phone_region=region) == "+33612345678"


@pytest.mark.parametrize("raw", ["12", "not a phone", "+1 000", "0612345678"])
def test_bad_phones_are_unusable(raw: str) -> None:
    # A national number without a default region cannot be placed in a country.
    assert normalise("phone", raw) is None


@pytest.mark.parametrize(
    "value",
    [
        *DEFAULT_BLOCKED_VALUES[:-1],
        "NULL",
        "Undefined",
        "0000",
        "---",
        "00000000-0000-0000-0000-000000000000",
        "[object Object]",
    ],
)
def test_default_placeholders_are_blocked(value: str) -> None:
    assert is_blocked(value, RULES)
    assert clean("anonymous_id", value, RULES) is None


@pytest.mark.parametrize("value", ["u-1", "a0b", "10", "-1x", "nullish"])
def test_real_values_pass(value: str) -> None:
    assert not is_blocked(value, RULES)


@given(
    st.dictionaries(
        st.sampled_from(["userId", "anonymousId"]),
        st.one_of(st.sampled_from(DEFAULT_BLOCKED_VALUES), st.text(max_size=12)),
    ),
    st.one_of(st.sampled_from(DEFAULT_BLOCKED_VALUES), st.emails()),
)
def test_identifiers_never_include_blocked_values_and_follow_priority(
    ids: dict[str, str], email: str
) -> None:
    event = {"type": "identify", **ids, "traits": {"email": email}}
    found = identifiers_of(event, RULES)
    assert all(not is_blocked(value, RULES) for _, value in found)
    ranks = [RULES.rank(kind) for kind, _ in found]
    assert ranks == sorted(ranks)
    assert len(found) == len(set(found))


def test_custom_types_and_patterns() -> None:
    rules = IdentityRules(custom_kinds=["crm_id"], blocked_patterns=[r"^test-"])
    assert rules.priority == ["user_id", "email", "phone", "device_id", "crm_id", "anonymous_id"]
    event = {
        "type": "track",
        "anonymousId": "test-123",
        "context": {
            "externalIds": [{"id": " C-9 ", "type": "crm_id"}, {"id": "x", "type": "other"}]
        },
    }
    assert identifiers_of(event, rules) == [("crm_id", "C-9")]


@pytest.mark.parametrize(
    "bad",
    [
        {"custom_kinds": ["email"]},
        {"custom_kinds": ["Bad Name"]},
        {"priority": ["user_id", "email"]},
        {"limits": {"nope": {"max": 1}}},
        {"limits": {"email": {"max": 0}}},
        {"blocked_patterns": ["("]},
        {"default_phone_region": "XX"},
        {"trait_policies": {"plan": "loudest"}},
    ],
)
def test_invalid_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        IdentityRules.model_validate(bad)
