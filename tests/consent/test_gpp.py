"""GPP strings: IAB reference vectors, Fibonacci ranges, usnat, embedded sections, round trips."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.consent import gpp
from accord.consent.gpp import (
    GPPString,
    MalformedGPPString,
    UsNat,
    decode,
    encode,
    fibonacci_encode,
    usnat_problems,
)
from accord.consent.tcf import BitReader

VECTORS = json.loads((Path(__file__).parent / "vectors" / "gpp.json").read_text())
TC_STRING = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA"


@pytest.mark.parametrize("vector", VECTORS["fibonacci_ranges"], ids=lambda v: v["bits"])
def test_fibonacci_ranges(vector: dict[str, Any]) -> None:
    assert gpp._fibonacci_range(vector["ids"]) == vector["bits"]
    reader = BitReader(vector["bits"], 0, MalformedGPPString)
    assert list(gpp._read_fibonacci_range(reader, "ids")) == vector["ids"]


def test_fibonacci_codes() -> None:
    # 1 -> 11, 2 -> 011, 3 -> 0011, 4 -> 1011, 12 -> 101011 (1 + 3 + 8)
    assert [fibonacci_encode(n) for n in (1, 2, 3, 4, 12)] == [
        "11",
        "011",
        "0011",
        "1011",
        "101011",
    ]


@given(st.frozensets(st.integers(1, 3000), max_size=40))
def test_fibonacci_range_round_trip(ids: frozenset[int]) -> None:
    reader = BitReader(gpp._fibonacci_range(ids), 0, MalformedGPPString)
    assert gpp._read_fibonacci_range(reader, "ids") == tuple(sorted(ids))


@pytest.mark.parametrize("vector", VECTORS["headers"], ids=lambda v: v["header"])
def test_headers(vector: dict[str, Any]) -> None:
    sections = {2: TC_STRING, 6: "1YNN"}
    model = GPPString(
        tcf_eu_v2=TC_STRING if 2 in vector["section_ids"] else None,
        usp_v1="1YNN" if 6 in vector["section_ids"] else None,
    )
    text = encode(model)
    assert text.split("~")[0] == vector["header"]
    assert text.split("~")[1:] == [sections[i] for i in vector["section_ids"]]
    assert decode(text) == model
    assert decode(text).section_ids == tuple(vector["section_ids"])


@pytest.mark.parametrize("vector", VECTORS["usnat"], ids=lambda v: v["section"])
def test_usnat_vectors(vector: dict[str, Any]) -> None:
    text = "DBABLA~" + vector["section"]
    model = decode(text)
    assert model.section_ids == (7,)
    assert model.usnat is not None
    for key, expected in vector["fields"].items():
        actual = getattr(model.usnat, key)
        assert (list(actual) if isinstance(actual, tuple) else actual) == expected, key
    assert encode(model) == text


def test_the_us_national_header_is_dbabla() -> None:
    assert encode(GPPString(usnat=UsNat())).startswith("DBABLA~")


def test_usnat_without_gpc_subsection() -> None:
    model = decode("DBABLA~BAAAAAAAAQA")
    assert model.usnat is not None and model.usnat.gpc is None
    assert encode(model) == "DBABLA~BAAAAAAAAQA"


def test_all_three_sections_together() -> None:
    model = GPPString(tcf_eu_v2=TC_STRING, usp_v1="1YYN", usnat=UsNat(gpc=True))
    text = encode(model)
    parts = text.split("~")
    assert parts[1] == TC_STRING and parts[2] == "1YYN"
    assert decode(text) == model


def test_other_sections_are_carried() -> None:
    model = GPPString(usnat=UsNat(), other_sections=((8, "BAAAAAAA.QA"),))
    assert decode(encode(model)) == model


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "GPPString"),
        ("DBABMA", "SectionIds"),  # lists section 2, none follows
        ("CBAA", "Type"),
        ("DCAA", "Version"),
        ("DBABMA~COtyb", "tcfeuv2."),
        ("DBABTA~1YXN", "uspv1.opted_out_of_sale"),
        ("DBABLA~BAAA", "usnat."),
        ("DBABLA~BAAAAAAAAQA.wA", "usnat.SubsectionType"),
        ("DB!A", "section"),
    ],
)
def test_malformed(text: str, field: str) -> None:
    with pytest.raises(MalformedGPPString) as raised:
        decode(text)
    assert raised.value.field_name.startswith(field)
    assert raised.value.problems[0].field == "gppString"


def test_usnat_problems() -> None:
    consistent = UsNat(sale_opt_out_notice=1, sale_opt_out=1)
    assert usnat_problems(consistent) == []
    assert usnat_problems(UsNat(sale_opt_out_notice=0, sale_opt_out=1))
    assert usnat_problems(UsNat(mspa_service_provider_mode=1, mspa_opt_out_option_mode=0))
    assert usnat_problems(UsNat(mspa_covered_transaction=0))


def test_encoder_rejects_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="sale_opt_out"):
        encode(GPPString(usnat=UsNat(sale_opt_out=4)))
    with pytest.raises(ValueError, match="12 sensitive"):
        encode(GPPString(usnat=UsNat(sensitive_data_processing=(0,) * 13)))


_two = st.integers(0, 3)


@st.composite
def _usnats(draw: st.DrawFn) -> UsNat:
    wide = draw(st.booleans())
    return UsNat(
        version=draw(st.integers(0, 63)),
        sharing_notice=draw(_two),
        sale_opt_out_notice=draw(_two),
        sharing_opt_out_notice=draw(_two),
        targeted_advertising_opt_out_notice=draw(_two),
        sensitive_data_processing_opt_out_notice=draw(_two),
        sensitive_data_limit_use_notice=draw(_two),
        sale_opt_out=draw(_two),
        sharing_opt_out=draw(_two),
        targeted_advertising_opt_out=draw(_two),
        sensitive_data_processing=tuple(
            draw(st.lists(_two, min_size=16 if wide else 12, max_size=16 if wide else 12))
        ),
        known_child_sensitive_data_consents=tuple(
            draw(st.lists(_two, min_size=3 if wide else 2, max_size=3 if wide else 2))
        ),
        personal_data_consents=draw(_two),
        mspa_covered_transaction=draw(_two),
        mspa_opt_out_option_mode=draw(_two),
        mspa_service_provider_mode=draw(_two),
        gpc=draw(st.none() | st.booleans()),
    )


_models = st.builds(
    GPPString,
    tcf_eu_v2=st.none() | st.just(TC_STRING),
    usp_v1=st.none() | st.sampled_from(["1YNN", "1---", "1YYY"]),
    usnat=st.none() | _usnats(),
    other_sections=st.lists(
        st.tuples(st.integers(8, 40), st.text("ABCDEFGHIJK.", min_size=1, max_size=10)),
        max_size=3,
        unique_by=lambda t: t[0],
    ).map(lambda items: tuple(sorted(items))),
)


@settings(max_examples=200, deadline=None)
@given(_models)
def test_round_trips(model: GPPString) -> None:
    text = encode(model)
    assert decode(text) == model
    assert encode(decode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ABCDLMNQYabc-_~.1", max_size=40))
def test_arbitrary_text_decodes_or_raises_malformed(text: str) -> None:
    try:
        model = decode(text)
    except MalformedGPPString:
        return
    assert decode(encode(model)) == model


def test_usnat_layout_follows_the_data_not_the_version_field() -> None:
    v2 = replace(UsNat(), version=2, sensitive_data_processing=(1,) * 16)
    assert decode(encode(GPPString(usnat=v2))).usnat == v2
