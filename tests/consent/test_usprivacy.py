"""US Privacy strings: the IAB examples, validation and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent.usprivacy import (
    NOT_APPLICABLE,
    MalformedUSPrivacyString,
    USPrivacy,
    decode,
    encode,
    is_valid,
)

# Examples of the IAB "CCPA Compliance Framework US Privacy String Format" 1.0.
EXAMPLES = [
    ("1YNN", USPrivacy(notice_given=True, opted_out_of_sale=False, lspa_covered=False)),
    ("1YYY", USPrivacy(notice_given=True, opted_out_of_sale=True, lspa_covered=True)),
    ("1YNY", USPrivacy(notice_given=True, opted_out_of_sale=False, lspa_covered=True)),
    ("1---", USPrivacy()),
    ("1NN-", USPrivacy(notice_given=False, opted_out_of_sale=False, lspa_covered=None)),
]


@pytest.mark.parametrize(("text", "model"), EXAMPLES)
def test_examples(text: str, model: USPrivacy) -> None:
    assert decode(text) == model
    assert encode(model) == text


def test_not_applicable() -> None:
    assert not decode(NOT_APPLICABLE).applies
    assert decode("1YNN").applies


def test_lower_case_flags_are_read() -> None:
    assert decode("1ynn") == decode("1YNN")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "usPrivacy"),
        ("1YN", "usPrivacy"),
        ("2YNN", "version"),
        ("1XNN", "notice_given"),
        ("1Y1N", "opted_out_of_sale"),
        ("1YN?", "lspa_covered"),
        ("1YNNN", "usPrivacy"),
    ],
)
def test_malformed(text: str, field: str) -> None:
    with pytest.raises(MalformedUSPrivacyString) as raised:
        decode(text)
    assert raised.value.field_name == field
    assert not is_valid(text)


_flags = st.sampled_from([True, False, None])


@given(st.builds(USPrivacy, notice_given=_flags, opted_out_of_sale=_flags, lspa_covered=_flags))
def test_round_trip(model: USPrivacy) -> None:
    text = encode(model)
    assert decode(text) == model
    assert encode(decode(text)) == text


@given(st.text(max_size=6))
def test_arbitrary_text_decodes_or_raises_malformed(text: str) -> None:
    assert is_valid(text) == (
        len(text) == 4 and text[0] == "1" and all(c in "YNyn-" for c in text[1:])
    )
