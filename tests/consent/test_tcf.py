"""TC strings: IAB published vectors, the reference decoder, round trips, malformed input."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.consent.tcf import (
    TCF_V23_DEADLINE,
    MalformedTCString,
    PublisherRestriction,
    PublisherTC,
    RestrictionType,
    TCString,
    decode,
    encode,
)
from accord.core.errors import InvalidInput

VECTORS = json.loads((Path(__file__).parent / "vectors" / "tcf.json").read_text())


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _actual(tc: TCString, key: str) -> Any:
    if key.startswith("publisher_restrictions["):
        inside = key[len("publisher_restrictions[") : -1]
        selector = {k: int(v) for k, v in (part.split("=") for part in inside.split(","))}
        vendors: set[int] = set()
        for r in tc.publisher_restrictions:
            if r.purpose_id == selector["purpose"] and r.restriction_type == selector["type"]:
                vendors |= r.vendor_ids
        return sorted(vendors)
    if key.startswith("publisher_tc."):
        assert tc.publisher_tc is not None
        return sorted(getattr(tc.publisher_tc, key.split(".", 1)[1]))
    value = getattr(tc, key)
    if isinstance(value, frozenset):
        return sorted(value)
    return value


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_published_vectors_decode_to_the_asserted_values(vector: dict[str, Any]) -> None:
    tc = decode(vector["tc_string"])
    for key, expected in vector["expected"].items():
        if key in ("created", "last_updated"):
            expected = _instant(expected)
        assert _actual(tc, key) == expected, key


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["vectors"] if v["canonical"]], ids=lambda v: v["name"]
)
def test_canonical_vectors_encode_back_to_the_same_string(vector: dict[str, Any]) -> None:
    assert encode(decode(vector["tc_string"])) == vector["tc_string"]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_any_vector_survives_encode_then_decode(vector: dict[str, Any]) -> None:
    tc = decode(vector["tc_string"])
    assert decode(encode(tc)) == tc


@pytest.mark.parametrize("vector", VECTORS["malformed"], ids=lambda v: v["name"])
def test_malformed_vectors_name_the_field(vector: dict[str, Any]) -> None:
    with pytest.raises(MalformedTCString) as raised:
        decode(vector["tc_string"])
    assert raised.value.field_name.startswith(vector["field"])
    assert isinstance(raised.value, InvalidInput)
    assert raised.value.problems[0].field == "tcString"


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_agrees_with_the_reference_python_decoder(vector: dict[str, Any]) -> None:
    iab_tcf = pytest.importorskip("iab_tcf")
    ours = decode(vector["tc_string"])
    ref = iab_tcf.decode(vector["tc_string"])

    def ids(d: dict[int, bool]) -> frozenset[int]:
        return frozenset(k for k, v in d.items() if v)

    def vendor_ids(ranged: bool, field: dict[int, bool] | None, ranges: Any) -> frozenset[int]:
        if ranged:
            return frozenset(i for a, b in ranges for i in range(a, b + 1))
        return ids(field or {})

    assert ref.cmp_id == ours.cmp_id
    assert ref.cmp_version == ours.cmp_version
    assert ref.consent_screen == ours.consent_screen
    assert ref.consent_language.decode() == ours.consent_language
    assert ref.publisher_cc.decode() == ours.publisher_cc
    assert ref.vendor_list_version == ours.vendor_list_version
    assert ref.tcf_policy_version == ours.tcf_policy_version
    assert ref.is_service_specific == ours.is_service_specific
    assert ref.purpose_one_treatment == ours.purpose_one_treatment
    assert ref.created.replace(tzinfo=UTC) == ours.created.replace(microsecond=0)
    assert ids(ref.special_features_optin) == ours.special_feature_opt_ins
    assert ids(ref.purposes_consent) == ours.purposes_consent
    assert ids(ref.purposes_legitimate_interests) == ours.purposes_li_transparency
    consents = vendor_ids(
        ref.is_consent_range_encoding,
        getattr(ref, "consented_vendors", None),
        getattr(ref, "consented_vendors_range", ()),
    )
    interests = vendor_ids(
        ref.is_interests_range_encoding,
        getattr(ref, "interests_vendors", None),
        getattr(ref, "interests_vendors_range", ()),
    )
    assert consents == ours.vendor_consents
    assert interests == ours.vendor_legitimate_interests
    assert len(ref.pub_restriction_entries) == len(ours.publisher_restrictions)
    if ours.disclosed_vendors is not None:
        assert ids(ref.oob_disclosed_vendors) == ours.disclosed_vendors


# --- TCF v2.3 ------------------------------------------------------------------------------


def _model(**changes: Any) -> TCString:
    base = TCString(
        created=datetime(2026, 3, 2, tzinfo=UTC),
        last_updated=datetime(2026, 3, 2, tzinfo=UTC),
        cmp_id=300,
        cmp_version=2,
        consent_screen=1,
        consent_language="DE",
        vendor_list_version=120,
        purposes_consent=frozenset({1, 2, 3, 4}),
        vendor_consents=frozenset({755}),
        disclosed_vendors=frozenset({755, 28}),
    )
    return replace(base, **changes)


def test_v23_strings_need_a_disclosed_vendors_segment() -> None:
    text = encode(_model(disclosed_vendors=None), require_disclosed_vendors=False)
    with pytest.raises(MalformedTCString) as raised:
        decode(text)
    assert raised.value.field_name == "DisclosedVendors"
    assert "2.3" in str(raised.value)
    assert decode(text, require_disclosed_vendors=False).vendor_consents == {755}


def test_strings_created_before_the_v23_deadline_stay_valid_without_the_segment() -> None:
    before = TCF_V23_DEADLINE - timedelta(seconds=1)
    text = encode(_model(created=before, last_updated=before, disclosed_vendors=None))
    assert decode(text).disclosed_vendors is None


def test_a_vendor_never_disclosed_has_no_consent() -> None:
    tc = decode(encode(_model(vendor_consents=frozenset({755, 99}))))
    assert tc.vendor_consented(755)
    assert not tc.vendor_consented(99)  # consent bit set, but never shown to the user
    assert not tc.vendor_consented(28)  # shown, refused


# --- Encoding choices ---------------------------------------------------------------------


def _vendor_section_kind(text: str) -> str:
    # The VendorConsents encoding bit sits right after the 16-bit MaxVendorId at bit 213.
    from accord.consent.tcf import _bits_of

    bits = _bits_of(text.split(".")[0], 0)
    return "range" if bits[213 + 16] == "1" else "bitfield"


def test_encoder_picks_range_encoding_when_shorter() -> None:
    many = frozenset(range(1, 1001))
    text = encode(_model(vendor_consents=many, disclosed_vendors=many))
    assert _vendor_section_kind(text) == "range"
    assert len(text) < 100
    assert decode(text).vendor_consents == many


def test_encoder_picks_bit_field_when_shorter() -> None:
    scattered = frozenset(range(1, 200, 2))
    text = encode(_model(vendor_consents=scattered, disclosed_vendors=scattered))
    assert _vendor_section_kind(text) == "bitfield"
    assert decode(text).vendor_consents == scattered


@given(st.frozensets(st.integers(1, 3000), max_size=300))
def test_vendor_sections_take_the_shorter_encoding(ids: frozenset[int]) -> None:
    from accord.consent.tcf import _vendors

    max_id = max(ids, default=0)
    runs = sorted(ids)
    entries = []
    for i in runs:
        if entries and entries[-1][1] + 1 == i:
            entries[-1][1] = i
        else:
            entries.append([i, i])
    as_range = 12 + sum(17 if a == b else 33 for a, b in entries)
    # MaxVendorId (16) and the encoding bit (1), then the shorter body; a tie is a bit field.
    assert len(_vendors(ids, "v")) == 17 + min(max_id, as_range)


def test_deciseconds_are_the_finest_time_a_tc_string_keeps() -> None:
    moment = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
    tc = decode(encode(_model(created=moment, last_updated=moment)))
    assert tc.created == datetime(2026, 3, 2, 10, 0, 0, 100000, tzinfo=UTC)


def test_encoder_rejects_what_no_tc_string_can_carry() -> None:
    with pytest.raises(ValueError, match="purposes_consent"):
        encode(_model(purposes_consent=frozenset({25})))
    with pytest.raises(ValueError, match="consent_language"):
        encode(_model(consent_language="de"))
    with pytest.raises(ValueError, match="cmp_id"):
        encode(_model(cmp_id=4096))
    with pytest.raises(ValueError, match="vendor"):
        encode(_model(vendor_consents=frozenset({70000})))


# --- Malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "segment"),
        ("CO!tybn4", "segment"),
        ("COtybn4PA_zT4KjACBENA", "VendorListVersion"),
        ("COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.", "segment"),
        ("COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.cAAAAAAAITg.cAAAAAAAITg", "SegmentType"),
        ("COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA.4A", "SegmentType"),
    ],
)
def test_malformed_strings_name_field_and_bit_offset(text: str, field: str) -> None:
    with pytest.raises(MalformedTCString) as raised:
        decode(text)
    assert raised.value.field_name.startswith(field)
    assert raised.value.offset >= 0
    assert "bit" in str(raised.value)


def test_truncation_reports_the_bit_offset_of_the_field() -> None:
    with pytest.raises(MalformedTCString) as raised:
        decode("COtybn4PA_zT4KjACBENA")  # 126 bits: VendorListVersion needs bits 120..131
    assert raised.value.field_name == "VendorListVersion"
    assert raised.value.offset == 120


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.=!", max_size=120))
def test_arbitrary_text_either_decodes_or_raises_malformed(text: str) -> None:
    try:
        tc = decode(text)
    except MalformedTCString:
        return
    assert tc.version == 2


# --- Round trips ------------------------------------------------------------------------------

_ids = st.frozensets
_letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
_deciseconds = st.integers(min_value=0, max_value=(1 << 36) - 1).map(
    lambda d: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=d * 100)
)
_vendor_ids = st.one_of(
    _ids(st.integers(1, 400), max_size=60),
    _ids(st.integers(1, 65535), max_size=8),
    st.builds(lambda a, n: frozenset(range(a, a + n)), st.integers(1, 5000), st.integers(0, 900)),
)
_restrictions = st.lists(
    st.builds(
        PublisherRestriction,
        purpose_id=st.integers(0, 63),
        restriction_type=st.sampled_from(list(RestrictionType)),
        vendor_ids=_ids(st.integers(1, 65535), max_size=10),
    ),
    max_size=4,
).map(tuple)


@st.composite
def _publisher_tc(draw: st.DrawFn) -> PublisherTC:
    count = draw(st.integers(0, 63))
    custom = _ids(st.integers(1, count), max_size=count) if count else st.just(frozenset[int]())
    return PublisherTC(
        purposes_consent=draw(_ids(st.integers(1, 24))),
        purposes_li_transparency=draw(_ids(st.integers(1, 24))),
        num_custom_purposes=count,
        custom_purposes_consent=draw(custom),
        custom_purposes_li_transparency=draw(custom),
    )


_models = st.builds(
    TCString,
    created=_deciseconds,
    last_updated=_deciseconds,
    cmp_id=st.integers(0, 4095),
    cmp_version=st.integers(0, 4095),
    consent_screen=st.integers(0, 63),
    consent_language=_letters,
    vendor_list_version=st.integers(0, 4095),
    tcf_policy_version=st.integers(0, 63),
    is_service_specific=st.booleans(),
    use_non_standard_texts=st.booleans(),
    special_feature_opt_ins=_ids(st.integers(1, 12)),
    purposes_consent=_ids(st.integers(1, 24)),
    purposes_li_transparency=_ids(st.integers(1, 24)),
    purpose_one_treatment=st.booleans(),
    publisher_cc=_letters,
    vendor_consents=_vendor_ids,
    vendor_legitimate_interests=_vendor_ids,
    publisher_restrictions=_restrictions,
    disclosed_vendors=st.none() | _vendor_ids,
    allowed_vendors=st.none() | _vendor_ids,
    publisher_tc=st.none() | _publisher_tc(),
)


@settings(max_examples=200, deadline=None)
@given(_models)
def test_decode_of_encode_is_identity(tc: TCString) -> None:
    text = encode(tc, require_disclosed_vendors=False)
    assert "=" not in text
    assert decode(text, require_disclosed_vendors=False) == tc


@settings(max_examples=200, deadline=None)
@given(_models)
def test_encode_of_decode_is_identity_for_canonical_strings(tc: TCString) -> None:
    text = encode(tc, require_disclosed_vendors=False)
    decoded = decode(text, require_disclosed_vendors=False)
    assert encode(decoded, require_disclosed_vendors=False) == text


@settings(max_examples=100, deadline=None)
@given(_models)
def test_reference_decoder_reads_what_accord_encodes(tc: TCString) -> None:
    iab_tcf = pytest.importorskip("iab_tcf")
    ref = iab_tcf.decode(encode(tc, require_disclosed_vendors=False))
    assert ref.cmp_id == tc.cmp_id
    assert {k for k, v in ref.purposes_consent.items() if v} == tc.purposes_consent
    if ref.is_consent_range_encoding:
        got = {i for a, b in ref.consented_vendors_range for i in range(a, b + 1)}
    else:
        got = {k for k, v in ref.consented_vendors.items() if v}
    assert got == tc.vendor_consents


def test_item_14_encode_refuses_a_v23_string_without_disclosed_vendors() -> None:
    with pytest.raises(ValueError, match="DisclosedVendors"):
        encode(_model(disclosed_vendors=None))
    # a decisecond before the deadline is still a pre-v2.3 string, as decode reads it
    just_before = TCF_V23_DEADLINE - timedelta(milliseconds=1)
    assert decode(encode(_model(created=just_before, disclosed_vendors=None))).created < (
        TCF_V23_DEADLINE
    )
    with pytest.raises(ValueError, match="version"):
        encode(_model(version=1))


@settings(max_examples=300, deadline=None)
@given(_models, st.booleans())
def test_item_14_encode_refuses_exactly_what_decode_refuses(tc: TCString, strict: bool) -> None:
    """Property: whatever model encode accepts, decode (with the same strictness) accepts
    and reads back unchanged; whatever it refuses, the loose string is refused by decode."""
    try:
        text = encode(tc, require_disclosed_vendors=strict)
    except ValueError:
        loose = encode(tc, require_disclosed_vendors=False)
        with pytest.raises(MalformedTCString):
            decode(loose, require_disclosed_vendors=strict)
        return
    assert decode(text, require_disclosed_vendors=strict) == tc


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 40)), min_size=1, max_size=12))
def test_item_14_range_entries_in_any_order_decode_to_their_union(
    entries: list[tuple[int, int]],
) -> None:
    """Range entries out of order (or overlapping) are accepted and read as the union of
    their ids, as docs/consent-standards.md says; encode writes them ascending."""
    from accord.consent.tcf import BitReader

    bits = "".join(
        ("1" + format(first, "016b") + format(first + extra, "016b"))
        if extra
        else ("0" + format(first, "016b"))
        for first, extra in entries
    )
    union = frozenset(i for first, extra in entries for i in range(first, first + extra + 1))
    assert BitReader(bits).ranges(len(entries), "VendorConsents") == union
    tc = _model(vendor_consents=union, disclosed_vendors=union)
    assert decode(encode(tc)).vendor_consents == union
