"""IAB TCF v2.2 / v2.3 TC strings: an immutable model, a strict decoder and a canonical encoder.

The layout follows the IAB Tech Lab "Transparency and Consent String with Global Vendor
List Format" specification. A TC string is base64url (no padding) segments joined by '.':
the core segment first, then optional segments identified by a 3-bit segment type:
DisclosedVendors (1, mandatory in TC strings created from TCF v2.3 on), AllowedVendors
(2, removed in v2.3 but still decoded from older strings) and PublisherTC (3).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from itertools import compress

from accord.core.errors import FieldProblem, InvalidInput

__all__ = [
    "TCF_V23_DEADLINE",
    "MalformedTCString",
    "PublisherRestriction",
    "PublisherTC",
    "RestrictionType",
    "TCString",
    "decode",
    "encode",
]

# TC strings created from this instant on must carry a DisclosedVendors segment (TCF v2.3).
TCF_V23_DEADLINE = datetime(2026, 2, 28, tzinfo=UTC)
# Purposes for which TCF v2.2 still allows legitimate interest as a legal basis.
LI_PURPOSES = frozenset({2, 7, 8, 9, 10, 11})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALPHABET_SET = frozenset(_ALPHABET)
_BIT_BYTES = str.maketrans("01", "\x00\x01")

SEGMENT_CORE = 0
SEGMENT_DISCLOSED_VENDORS = 1
SEGMENT_ALLOWED_VENDORS = 2
SEGMENT_PUBLISHER_TC = 3

MAX_VENDOR_ID = (1 << 16) - 1
# A TC string's size is bounded: 12-bit entry counts of 33-bit ranges, 16-bit bit fields.
MAX_TC_STRING_LENGTH = 64 * 1024


class MalformedTCString(InvalidInput):
    """A TC string that does not follow the specification; names the field and its bit offset."""

    def __init__(self, field_name: str, offset: int, reason: str, segment: int = 0) -> None:
        self.field_name = field_name
        self.offset = offset
        self.segment = segment
        self.reason = reason
        super().__init__(
            problems=[
                FieldProblem(
                    field="tcString",
                    reason=f"{field_name} (segment {segment}, bit {offset}): {reason}",
                )
            ]
        )

    def __str__(self) -> str:
        return self.problems[0].reason


# Builds the error a reader raises: (field, bit offset, reason, segment index).
ErrorFactory = Callable[[str, int, str, int], InvalidInput]


class RestrictionType(IntEnum):
    NOT_ALLOWED = 0
    REQUIRE_CONSENT = 1
    REQUIRE_LEGITIMATE_INTEREST = 2
    UNDEFINED = 3


@dataclass(frozen=True, slots=True)
class PublisherRestriction:
    purpose_id: int
    restriction_type: RestrictionType
    vendor_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class PublisherTC:
    purposes_consent: frozenset[int] = frozenset()
    purposes_li_transparency: frozenset[int] = frozenset()
    num_custom_purposes: int = 0
    custom_purposes_consent: frozenset[int] = frozenset()
    custom_purposes_li_transparency: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class TCString:
    """Every field of a v2 TC string. Sets hold the 1-based ids whose bit is 1."""

    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    tcf_policy_version: int = 5
    is_service_specific: bool = True
    use_non_standard_texts: bool = False
    special_feature_opt_ins: frozenset[int] = frozenset()
    purposes_consent: frozenset[int] = frozenset()
    purposes_li_transparency: frozenset[int] = frozenset()
    purpose_one_treatment: bool = False
    publisher_cc: str = "AA"
    vendor_consents: frozenset[int] = frozenset()
    vendor_legitimate_interests: frozenset[int] = frozenset()
    publisher_restrictions: tuple[PublisherRestriction, ...] = ()
    # None when the segment is absent; an empty set is a present, empty segment.
    disclosed_vendors: frozenset[int] | None = None
    allowed_vendors: frozenset[int] | None = None
    publisher_tc: PublisherTC | None = None
    version: int = field(default=2)

    def vendor_consented(self, vendor_id: int) -> bool:
        """Consent for a vendor, honouring TCF v2.3: a vendor never disclosed has no consent."""
        if self.disclosed_vendors is not None and vendor_id not in self.disclosed_vendors:
            return False
        return vendor_id in self.vendor_consents

    def vendor_legitimate_interest(self, vendor_id: int) -> bool:
        """Legitimate interest established and not objected to, for a disclosed vendor."""
        if self.disclosed_vendors is not None and vendor_id not in self.disclosed_vendors:
            return False
        return vendor_id in self.vendor_legitimate_interests


# --- Reading ---------------------------------------------------------------------------


def _bits_of(segment: str, index: int) -> str:
    """The bits of one base64url segment; trailing '=' padding is tolerated."""
    text = segment.rstrip("=")
    if not text:
        raise MalformedTCString("segment", 0, "empty segment", index)
    if not _ALPHABET_SET.issuperset(text):
        position = next(i for i, c in enumerate(text) if c not in _ALPHABET_SET)
        raise MalformedTCString(
            "segment",
            position * 6,
            f"character {text[position]!r} at position {position} is not base64url",
            index,
        )
    # 'A' is six zero bits: completing the last quantum changes no bit before it.
    raw = base64.urlsafe_b64decode(text + "A" * (-len(text) % 4))
    return format(int.from_bytes(raw, "big"), f"0{len(raw) * 8}b")[: len(text) * 6]


class BitReader:
    """Reads fixed-width fields from a string of '0'/'1'; every error names field and offset."""

    __slots__ = ("bits", "errors", "pos", "segment")

    def __init__(self, bits: str, segment: int = 0, errors: ErrorFactory | None = None) -> None:
        self.bits = bits
        self.pos = 0
        self.segment = segment
        self.errors: ErrorFactory = errors or MalformedTCString

    def fail(self, name: str, reason: str, offset: int | None = None) -> InvalidInput:
        return self.errors(name, self.pos if offset is None else offset, reason, self.segment)

    def _take(self, width: int, name: str) -> str:
        end = self.pos + width
        if end > len(self.bits):
            raise self.fail(name, f"needs {width} bits, only {len(self.bits) - self.pos} left")
        chunk = self.bits[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, width: int, name: str) -> int:
        return int(self._take(width, name), 2)

    def flag(self, name: str) -> bool:
        return self._take(1, name) == "1"

    def ids(self, width: int, name: str) -> frozenset[int]:
        """A bit field: the 1-based positions of the set bits."""
        chunk = self._take(width, name)
        # Bytes of 0/1 select the positions in C, far faster than a loop over the bits.
        return frozenset(compress(range(1, width + 1), chunk.translate(_BIT_BYTES).encode()))

    def letters(self, count: int, name: str) -> str:
        start = self.pos
        out = []
        for _ in range(count):
            value = self.uint(6, name)
            if value > 25:
                raise self.fail(name, f"letter value {value} is not A-Z", start)
            out.append(chr(65 + value))
        return "".join(out)

    def instant(self, name: str) -> datetime:
        deciseconds = self.uint(36, name)
        return _EPOCH + timedelta(milliseconds=deciseconds * 100)

    def ranges(self, count: int, name: str, max_id: int | None = None) -> frozenset[int]:
        """`count` entries of (IsRange bit, start id, [end id]), 16-bit ids."""
        out: set[int] = set()
        for _ in range(count):
            at = self.pos
            is_range = self.flag(name)
            first = self.uint(16, name)
            last = self.uint(16, name) if is_range else first
            if first < 1:
                raise self.fail(name, "vendor id 0 in a range entry", at)
            if last < first:
                raise self.fail(name, f"range end {last} is before its start {first}", at)
            if max_id is not None and last > max_id:
                raise self.fail(name, f"vendor id {last} exceeds MaxVendorId {max_id}", at)
            out.update(range(first, last + 1))
        return frozenset(out)

    def vendors(self, name: str) -> frozenset[int]:
        """MaxVendorId, IsRangeEncoding, then a bit field or NumEntries and range entries."""
        max_id = self.uint(16, f"{name}.MaxVendorId")
        if self.flag(f"{name}.IsRangeEncoding"):
            count = self.uint(12, f"{name}.NumEntries")
            return self.ranges(count, name, max_id)
        return self.ids(max_id, name)


def _decode_core(reader: BitReader) -> dict[str, object]:
    version = reader.uint(6, "Version")
    if version != 2:
        raise reader.fail("Version", f"TC string version {version} is not supported (only 2)", 0)
    fields: dict[str, object] = {"version": version}
    fields["created"] = reader.instant("Created")
    fields["last_updated"] = reader.instant("LastUpdated")
    fields["cmp_id"] = reader.uint(12, "CmpId")
    fields["cmp_version"] = reader.uint(12, "CmpVersion")
    fields["consent_screen"] = reader.uint(6, "ConsentScreen")
    fields["consent_language"] = reader.letters(2, "ConsentLanguage")
    fields["vendor_list_version"] = reader.uint(12, "VendorListVersion")
    fields["tcf_policy_version"] = reader.uint(6, "TcfPolicyVersion")
    fields["is_service_specific"] = reader.flag("IsServiceSpecific")
    fields["use_non_standard_texts"] = reader.flag("UseNonStandardTexts")
    fields["special_feature_opt_ins"] = reader.ids(12, "SpecialFeatureOptIns")
    fields["purposes_consent"] = reader.ids(24, "PurposesConsent")
    fields["purposes_li_transparency"] = reader.ids(24, "PurposesLITransparency")
    fields["purpose_one_treatment"] = reader.flag("PurposeOneTreatment")
    fields["publisher_cc"] = reader.letters(2, "PublisherCC")
    fields["vendor_consents"] = reader.vendors("VendorConsents")
    fields["vendor_legitimate_interests"] = reader.vendors("VendorLegitimateInterests")
    restrictions = []
    for _ in range(reader.uint(12, "NumPubRestrictions")):
        purpose_id = reader.uint(6, "PubRestrictions.PurposeId")
        restriction_type = RestrictionType(reader.uint(2, "PubRestrictions.RestrictionType"))
        count = reader.uint(12, "PubRestrictions.NumEntries")
        vendor_ids = reader.ranges(count, "PubRestrictions.Entries")
        restrictions.append(PublisherRestriction(purpose_id, restriction_type, vendor_ids))
    fields["publisher_restrictions"] = tuple(restrictions)
    return fields


def _decode_publisher_tc(reader: BitReader) -> PublisherTC:
    consent = reader.ids(24, "PubPurposesConsent")
    li = reader.ids(24, "PubPurposesLITransparency")
    count = reader.uint(6, "NumCustomPurposes")
    return PublisherTC(
        purposes_consent=consent,
        purposes_li_transparency=li,
        num_custom_purposes=count,
        custom_purposes_consent=reader.ids(count, "CustomPurposesConsent"),
        custom_purposes_li_transparency=reader.ids(count, "CustomPurposesLITransparency"),
    )


def decode(tc_string: str, *, require_disclosed_vendors: bool = True) -> TCString:
    """Decode a TC string, raising `MalformedTCString` for anything off-specification.

    With `require_disclosed_vendors` (the default), a string created on or after the TCF v2.3
    deadline without a DisclosedVendors segment is rejected, as the v2.3 specification makes
    such strings invalid; strings created before the deadline stay valid without it.
    """
    if not isinstance(tc_string, str):
        raise MalformedTCString("TCString", 0, "a TC string is text")
    if len(tc_string) > MAX_TC_STRING_LENGTH:
        raise MalformedTCString("TCString", 0, f"longer than {MAX_TC_STRING_LENGTH} characters")
    segments = tc_string.strip().split(".")
    core_reader = BitReader(_bits_of(segments[0], 0), 0)
    fields = _decode_core(core_reader)
    seen: set[int] = set()
    disclosed: frozenset[int] | None = None
    allowed: frozenset[int] | None = None
    publisher_tc: PublisherTC | None = None
    for index, segment in enumerate(segments[1:], start=1):
        reader = BitReader(_bits_of(segment, index), index)
        kind = reader.uint(3, "SegmentType")
        if kind in seen:
            raise reader.fail("SegmentType", f"segment type {kind} appears twice", 0)
        seen.add(kind)
        if kind == SEGMENT_DISCLOSED_VENDORS:
            disclosed = reader.vendors("DisclosedVendors")
        elif kind == SEGMENT_ALLOWED_VENDORS:
            allowed = reader.vendors("AllowedVendors")
        elif kind == SEGMENT_PUBLISHER_TC:
            publisher_tc = _decode_publisher_tc(reader)
        else:
            raise reader.fail("SegmentType", f"unknown segment type {kind}", 0)
    created = fields["created"]
    assert isinstance(created, datetime)
    if require_disclosed_vendors and disclosed is None and created >= TCF_V23_DEADLINE:
        raise MalformedTCString(
            "DisclosedVendors",
            0,
            "TCF v2.3: a TC string created on or after 2026-02-28 must carry a "
            "DisclosedVendors segment",
            len(segments),
        )
    return TCString(
        disclosed_vendors=disclosed,
        allowed_vendors=allowed,
        publisher_tc=publisher_tc,
        **fields,  # type: ignore[arg-type]
    )


# --- Writing ---------------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _uint(value: int, width: int, name: str) -> str:
    _check(isinstance(value, int) and 0 <= value < (1 << width), f"{name} must fit {width} bits")
    return format(value, f"0{width}b")


def _bitfield(ids: Iterable[int], width: int, name: str) -> str:
    values = ids if isinstance(ids, frozenset | set) else set(ids)
    _check(
        not values or (min(values) >= 1 and max(values) <= width),
        f"{name}: ids must lie in 1..{width}",
    )
    cells = bytearray(b"0" * width)
    for i in values:
        cells[i - 1] = 49  # '1'
    return cells.decode("ascii")


def _letters(text: str, name: str) -> str:
    _check(len(text) == 2 and all("A" <= c <= "Z" for c in text), f"{name} must be two A-Z letters")
    return "".join(format(ord(c) - 65, "06b") for c in text)


def _deciseconds(moment: datetime, name: str) -> str:
    _check(moment.tzinfo is not None, f"{name} must be timezone-aware")
    delta = moment - _EPOCH
    return _uint(delta // timedelta(milliseconds=100), 36, name)


def _deciseconds_floor(moment: datetime) -> datetime:
    """The instant a TC string keeps of `moment` (whole deciseconds), as `decode` reads it."""
    _check(moment.tzinfo is not None, "created must be timezone-aware")
    return _EPOCH + timedelta(milliseconds=(moment - _EPOCH) // timedelta(milliseconds=100) * 100)


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive ids folded into (first, last) runs, in ascending order."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and runs[-1][1] + 1 == i:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _range_entries(ids: Iterable[int], name: str) -> str:
    runs = _runs(ids)
    _check(len(runs) < 4096, f"{name}: more than 4095 range entries")
    parts = [_uint(len(runs), 12, f"{name}.NumEntries")]
    for first, last in runs:
        _check(first >= 1 and last <= MAX_VENDOR_ID, f"{name}: vendor id outside 1..65535")
        if first == last:
            parts.append("0" + format(first, "016b"))
        else:
            parts.append("1" + format(first, "016b") + format(last, "016b"))
    return "".join(parts)


def _vendors(ids: frozenset[int], name: str) -> str:
    """MaxVendorId, then the shorter of bit field and range encoding (bit field on a tie)."""
    max_id = max(ids, default=0)
    _check(max_id <= MAX_VENDOR_ID, f"{name}: vendor id above 65535")
    if ids and min(ids) < 1:
        raise ValueError(f"{name}: vendor ids start at 1")
    header = format(max_id, "016b")
    runs = _runs(ids)
    range_length = 12 + sum(17 if a == b else 33 for a, b in runs)
    if range_length < max_id and len(runs) < 4096:
        return header + "1" + _range_entries(ids, name)
    return header + "0" + _bitfield(ids, max_id, name)


def _to_base64url(bits: str) -> str:
    """Pad to whole bytes, base64url, no '=' padding: the form of the IAB reference encoders."""
    bits += "0" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _encode_core(tc: TCString) -> str:
    parts = [
        _uint(tc.version, 6, "version"),
        _deciseconds(tc.created, "created"),
        _deciseconds(tc.last_updated, "last_updated"),
        _uint(tc.cmp_id, 12, "cmp_id"),
        _uint(tc.cmp_version, 12, "cmp_version"),
        _uint(tc.consent_screen, 6, "consent_screen"),
        _letters(tc.consent_language, "consent_language"),
        _uint(tc.vendor_list_version, 12, "vendor_list_version"),
        _uint(tc.tcf_policy_version, 6, "tcf_policy_version"),
        "1" if tc.is_service_specific else "0",
        "1" if tc.use_non_standard_texts else "0",
        _bitfield(tc.special_feature_opt_ins, 12, "special_feature_opt_ins"),
        _bitfield(tc.purposes_consent, 24, "purposes_consent"),
        _bitfield(tc.purposes_li_transparency, 24, "purposes_li_transparency"),
        "1" if tc.purpose_one_treatment else "0",
        _letters(tc.publisher_cc, "publisher_cc"),
        _vendors(tc.vendor_consents, "vendor_consents"),
        _vendors(tc.vendor_legitimate_interests, "vendor_legitimate_interests"),
        _uint(len(tc.publisher_restrictions), 12, "publisher_restrictions"),
    ]
    for restriction in tc.publisher_restrictions:
        parts.append(_uint(restriction.purpose_id, 6, "publisher_restrictions.purpose_id"))
        parts.append(_uint(int(restriction.restriction_type), 2, "restriction_type"))
        parts.append(_range_entries(restriction.vendor_ids, "publisher_restrictions"))
    return _to_base64url("".join(parts))


def _encode_publisher_tc(ptc: PublisherTC) -> str:
    count = ptc.num_custom_purposes
    return _to_base64url(
        "".join(
            [
                format(SEGMENT_PUBLISHER_TC, "03b"),
                _bitfield(ptc.purposes_consent, 24, "publisher_tc.purposes_consent"),
                _bitfield(ptc.purposes_li_transparency, 24, "publisher_tc.purposes_li"),
                _uint(count, 6, "publisher_tc.num_custom_purposes"),
                _bitfield(ptc.custom_purposes_consent, count, "custom_purposes_consent"),
                _bitfield(ptc.custom_purposes_li_transparency, count, "custom_purposes_li"),
            ]
        )
    )


def encode(tc: TCString, *, require_disclosed_vendors: bool = True) -> str:
    """The canonical TC string of a model: core, DisclosedVendors, AllowedVendors, PublisherTC.

    Created and LastUpdated are stored in deciseconds: finer parts of a second are dropped.
    Raises ValueError for a model no TC string can carry (ids or numbers out of range) and
    for one `decode` would refuse: a version other than 2, or (with
    `require_disclosed_vendors`, the default, as for `decode`) no DisclosedVendors segment
    in a string created on or after the TCF v2.3 deadline.
    """
    _check(tc.version == 2, f"version must be 2 (TC string version {tc.version} is refused)")
    _check(
        not require_disclosed_vendors
        or tc.disclosed_vendors is not None
        or _deciseconds_floor(tc.created) < TCF_V23_DEADLINE,
        "disclosed_vendors: TCF v2.3: a TC string created on or after 2026-02-28 must "
        "carry a DisclosedVendors segment",
    )
    segments = [_encode_core(tc)]
    if tc.disclosed_vendors is not None:
        segments.append(
            _to_base64url(
                format(SEGMENT_DISCLOSED_VENDORS, "03b")
                + _vendors(tc.disclosed_vendors, "disclosed_vendors")
            )
        )
    if tc.allowed_vendors is not None:
        segments.append(
            _to_base64url(
                format(SEGMENT_ALLOWED_VENDORS, "03b")
                + _vendors(tc.allowed_vendors, "allowed_vendors")
            )
        )
    if tc.publisher_tc is not None:
        segments.append(_encode_publisher_tc(tc.publisher_tc))
    return ".".join(segments)
