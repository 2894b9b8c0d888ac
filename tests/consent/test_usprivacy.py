"""US Privacy strings: the IAB specification's examples, validation and round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

VECTORS = json.loads((Path(__file__).parent / "vectors" / "usprivacy.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["string"])
def test_specification_examples(vector: dict[str, Any]) -> None:
    model = USPrivacy(
        notice_given=vector["notice_given"],
        opted_out_of_sale=vector["opted_out_of_sale"],
        lspa_covered=vector["lspa_covered"],
    )
    assert decode(vector["string"]) == model
    assert encode(model) == vector["string"]


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["string"])
def test_specification_rules(vector: dict[str, Any]) -> None:
    with pytest.raises(MalformedUSPrivacyString) as raised:
        decode(vector["string"])
    assert raised.value.field_name == vector["field"]


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
        ("1--N", "opted_out_of_sale"),
    ],
)
def test_malformed(text: str, field: str) -> None:
    with pytest.raises(MalformedUSPrivacyString) as raised:
        decode(text)
    assert raised.value.field_name == field
    assert raised.value.problems[0].field == "usPrivacy"
    assert not is_valid(text)


def test_encoder_refuses_an_unknown_opt_out_where_the_ccpa_applies() -> None:
    with pytest.raises(ValueError, match="opted_out_of_sale"):
        encode(USPrivacy(notice_given=True))


_flags = st.sampled_from([True, False, None])


@given(
    st.builds(USPrivacy, notice_given=_flags, opted_out_of_sale=st.booleans(), lspa_covered=_flags)
)
def test_round_trip(model: USPrivacy) -> None:
    text = encode(model)
    assert decode(text) == model
    assert encode(decode(text)) == text


@given(st.text(max_size=6))
def test_arbitrary_text_decodes_or_raises_malformed(text: str) -> None:
    flags = text[1:].upper()
    expected = len(text) == 4 and text[0] == "1" and all(c in "YN-" for c in flags)
    expected = expected and (flags == "---" or flags[1] != "-")
    assert is_valid(text) == expected
