"""IAB Global Privacy Platform strings: the header, the US-national section and embedded sections.

A GPP string is `header~section~section…`: the header (type 3, version 1, the section ids as a
Fibonacci-coded range) lists the sections that follow, in the same order. Accord parses the
MSPA US National section (id 7, `usnat`, with its GPC subsection) field by field and carries
the TCF EU v2 section (id 2, a TC string) and the US Privacy section (id 6, `uspv1`) as the
embedded strings they are, checked by their own codecs. Any other section is carried as is.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from accord.consent import tcf, usprivacy
from accord.consent.tcf import BitReader, MalformedTCString, _bits_of
from accord.core.errors import FieldProblem, InvalidInput

__all__ = [
    "SECTION_TCFEUV2",
    "SECTION_USNAT",
    "SECTION_USPV1",
    "GPPString",
    "MalformedGPPString",
    "UsNat",
    "decode",
    "encode",
    "usnat_problems",
]

HEADER_TYPE = 3
HEADER_VERSION = 1
SECTION_TCFEUV2 = 2
SECTION_USPV1 = 6
SECTION_USNAT = 7
USNAT_SUBSECTION_GPC = 1
MAX_GPP_STRING_LENGTH = 64 * 1024


class MalformedGPPString(InvalidInput):
    """A GPP string off the specification; names the section, the field and its bit offset."""

    def __init__(self, field_name: str, offset: int, reason: str, segment: int = 0) -> None:
        self.field_name = field_name
        self.offset = offset
        self.segment = segment
        super().__init__(
            problems=[
                FieldProblem(
                    field="gppString",
                    reason=f"{field_name} (part {segment}, bit {offset}): {reason}",
                )
            ]
        )


# --- Fibonacci coding ------------------------------------------------------------------------

_FIB = [1, 2]
while _FIB[-1] < 1 << 32:
    _FIB.append(_FIB[-1] + _FIB[-2])


def fibonacci_encode(value: int) -> str:
    """Zeckendorf representation, least significant term first, closed by an extra '1'."""
    if value < 1:
        raise ValueError("Fibonacci coding needs a positive integer")
    terms = [f for f in _FIB if f <= value]
    bits = ["0"] * len(terms)
    rest = value
    for i in range(len(terms) - 1, -1, -1):
        if terms[i] <= rest:
            bits[i] = "1"
            rest -= terms[i]
    return "".join(bits) + "1"


def _read_fibonacci(reader: BitReader, name: str) -> int:
    start = reader.pos
    end = reader.bits.find("11", start)
    if end == -1:
        raise reader.fail(name, "Fibonacci code without its closing '11'")
    code = reader.bits[start : end + 1]
    if len(code) > len(_FIB):
        raise reader.fail(name, "Fibonacci code too long")
    reader.pos = end + 2
    return sum(_FIB[i] for i, bit in enumerate(code) if bit == "1")


def _fibonacci_range(ids: Iterable[int]) -> str:
    runs: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][1] + 1 == i:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    parts = [format(len(runs), "012b")]
    last = 0
    for first, end in runs:
        if first < 1:
            raise ValueError("section ids start at 1")
        if first == end:
            parts.append("0" + fibonacci_encode(first - last))
        else:
            parts.append("1" + fibonacci_encode(first - last) + fibonacci_encode(end - first))
        last = end
    return "".join(parts)


def _read_fibonacci_range(reader: BitReader, name: str) -> tuple[int, ...]:
    count = reader.uint(12, f"{name}.NumEntries")
    ids: list[int] = []
    last = 0
    for _ in range(count):
        is_range = reader.flag(name)
        first = last + _read_fibonacci(reader, name)
        end = first + _read_fibonacci(reader, name) if is_range else first
        ids.extend(range(first, end + 1))
        last = end
    return tuple(ids)


def _to_base64url(bits: str) -> str:
    bits += "0" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --- US National section -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsNat:
    """MSPA US National section (id 7). Values follow the spec: 0 not applicable, 1 and 2 as
    each field defines (for notices 1 = provided; for opt-outs 1 = opted out, 2 = did not).

    Version 1 of the section has 12 sensitive-data categories and 2 known-child consents;
    version 2 (August 2024) has 16 and 3. The decoder picks the layout from the section's
    length, so strings of either layout are read whatever their version number says.
    """

    version: int = 2
    sharing_notice: int = 0
    sale_opt_out_notice: int = 0
    sharing_opt_out_notice: int = 0
    targeted_advertising_opt_out_notice: int = 0
    sensitive_data_processing_opt_out_notice: int = 0
    sensitive_data_limit_use_notice: int = 0
    sale_opt_out: int = 0
    sharing_opt_out: int = 0
    targeted_advertising_opt_out: int = 0
    sensitive_data_processing: tuple[int, ...] = (0,) * 16
    known_child_sensitive_data_consents: tuple[int, ...] = (0,) * 3
    personal_data_consents: int = 0
    mspa_covered_transaction: int = 2
    mspa_opt_out_option_mode: int = 0
    mspa_service_provider_mode: int = 0
    # None when the GPC subsection is absent.
    gpc: bool | None = None


_USNAT_SCALARS = (
    "sharing_notice",
    "sale_opt_out_notice",
    "sharing_opt_out_notice",
    "targeted_advertising_opt_out_notice",
    "sensitive_data_processing_opt_out_notice",
    "sensitive_data_limit_use_notice",
    "sale_opt_out",
    "sharing_opt_out",
    "targeted_advertising_opt_out",
)
_USNAT_TAIL = (
    "personal_data_consents",
    "mspa_covered_transaction",
    "mspa_opt_out_option_mode",
    "mspa_service_provider_mode",
)
# Bits of the core segment: 6 + 9*2 + categories*2 + children*2 + 4*2.
_USNAT_V2_BITS = 6 + 18 + 32 + 6 + 8


def _two_bits(value: int, name: str) -> str:
    if not isinstance(value, int) or not 0 <= value <= 3:
        raise ValueError(f"usnat {name} must be 0..3")
    return format(value, "02b")


def _encode_usnat(section: UsNat) -> str:
    layout = (
        len(section.sensitive_data_processing),
        len(section.known_child_sensitive_data_consents),
    )
    if layout not in ((12, 2), (16, 3)):
        raise ValueError("usnat carries 12 sensitive categories and 2 child consents, or 16 and 3")
    if not 0 <= section.version < 64:
        raise ValueError("usnat version must fit 6 bits")
    parts = [format(section.version, "06b")]
    parts += [_two_bits(getattr(section, name), name) for name in _USNAT_SCALARS]
    parts += [_two_bits(v, "sensitive_data_processing") for v in section.sensitive_data_processing]
    parts += [
        _two_bits(v, "known_child_sensitive_data_consents")
        for v in section.known_child_sensitive_data_consents
    ]
    parts += [_two_bits(getattr(section, name), name) for name in _USNAT_TAIL]
    text = _to_base64url("".join(parts))
    if section.gpc is not None:
        text += "." + _to_base64url(
            format(USNAT_SUBSECTION_GPC, "02b") + ("1" if section.gpc else "0")
        )
    return text


def _decode_usnat(text: str, part: int) -> UsNat:
    segments = text.split(".")
    reader = BitReader(_bits_of_gpp(segments[0], part), part, MalformedGPPString)
    wide = len(reader.bits) >= _USNAT_V2_BITS
    values: dict[str, object] = {"version": reader.uint(6, "usnat.Version")}
    for name in _USNAT_SCALARS:
        values[name] = reader.uint(2, f"usnat.{name}")
    values["sensitive_data_processing"] = tuple(
        reader.uint(2, "usnat.SensitiveDataProcessing") for _ in range(16 if wide else 12)
    )
    values["known_child_sensitive_data_consents"] = tuple(
        reader.uint(2, "usnat.KnownChildSensitiveDataConsents") for _ in range(3 if wide else 2)
    )
    for name in _USNAT_TAIL:
        values[name] = reader.uint(2, f"usnat.{name}")
    gpc: bool | None = None
    for sub in segments[1:]:
        sub_reader = BitReader(_bits_of_gpp(sub, part), part, MalformedGPPString)
        kind = sub_reader.uint(2, "usnat.SubsectionType")
        if kind != USNAT_SUBSECTION_GPC or gpc is not None:
            raise sub_reader.fail("usnat.SubsectionType", f"unexpected subsection type {kind}", 0)
        gpc = sub_reader.flag("usnat.Gpc")
    return UsNat(gpc=gpc, **values)  # type: ignore[arg-type]


def usnat_problems(section: UsNat) -> list[str]:
    """Combinations the US National specification forbids (a notice and its opt-out must agree,
    MSPA modes exclude each other); an empty list means the section is consistent."""
    problems = []
    for notice, choice in (
        ("sale_opt_out_notice", "sale_opt_out"),
        ("sharing_opt_out_notice", "sharing_opt_out"),
        ("targeted_advertising_opt_out_notice", "targeted_advertising_opt_out"),
    ):
        pair = (getattr(section, notice), getattr(section, choice))
        if pair not in ((0, 0), (1, 1), (1, 2), (2, 1)):
            problems.append(f"{notice}={pair[0]} does not allow {choice}={pair[1]}")
    modes = (section.mspa_service_provider_mode, section.mspa_opt_out_option_mode)
    if modes[0] == 1 and modes[1] != 2:
        problems.append("service provider mode requires mspa_opt_out_option_mode=2")
    if modes[0] == 2 and modes[1] != 1:
        problems.append("mspa_service_provider_mode=2 requires mspa_opt_out_option_mode=1")
    if modes[0] == 1 and (
        section.sale_opt_out_notice
        or section.sharing_opt_out_notice
        or section.sensitive_data_limit_use_notice
    ):
        problems.append("in service provider mode the opt-out notices must be 0")
    if section.mspa_covered_transaction not in (1, 2):
        problems.append("mspa_covered_transaction must be 1 (yes) or 2 (no)")
    return problems


# --- The whole string ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GPPString:
    tcf_eu_v2: str | None = None
    usp_v1: str | None = None
    usnat: UsNat | None = None
    # (section id, encoded section) for sections Accord carries without reading.
    other_sections: tuple[tuple[int, str], ...] = ()

    @property
    def section_ids(self) -> tuple[int, ...]:
        ids = [i for i, _ in self.other_sections]
        if self.tcf_eu_v2 is not None:
            ids.append(SECTION_TCFEUV2)
        if self.usp_v1 is not None:
            ids.append(SECTION_USPV1)
        if self.usnat is not None:
            ids.append(SECTION_USNAT)
        return tuple(sorted(ids))


def _bits_of_gpp(text: str, part: int) -> str:
    try:
        return _bits_of(text, part)
    except MalformedTCString as exc:
        raise MalformedGPPString("section", exc.offset, exc.reason, part) from exc


def encode(gpp: GPPString) -> str:
    """Header then the sections in ascending id order, joined by '~'."""
    ids = gpp.section_ids
    if len(set(ids)) != len(ids):
        raise ValueError("a section id appears twice")
    header = _to_base64url(
        format(HEADER_TYPE, "06b") + format(HEADER_VERSION, "06b") + _fibonacci_range(ids)
    )
    by_id = dict(gpp.other_sections)
    if gpp.tcf_eu_v2 is not None:
        by_id[SECTION_TCFEUV2] = gpp.tcf_eu_v2
    if gpp.usp_v1 is not None:
        by_id[SECTION_USPV1] = gpp.usp_v1
    if gpp.usnat is not None:
        by_id[SECTION_USNAT] = _encode_usnat(gpp.usnat)
    for section_id, text in by_id.items():
        if not text or "~" in text:
            raise ValueError(f"section {section_id} must be non-empty and free of '~'")
    return "~".join([header, *(by_id[i] for i in ids)])


def decode(text: str) -> GPPString:
    """Decode a GPP string; embedded TC and US Privacy strings are checked by their codecs."""
    if not isinstance(text, str) or not text.strip():
        raise MalformedGPPString("GPPString", 0, "empty")
    if len(text) > MAX_GPP_STRING_LENGTH:
        raise MalformedGPPString("GPPString", 0, f"longer than {MAX_GPP_STRING_LENGTH} characters")
    parts = text.strip().split("~")
    reader = BitReader(_bits_of_gpp(parts[0], 0), 0, MalformedGPPString)
    kind = reader.uint(6, "Type")
    if kind != HEADER_TYPE:
        raise reader.fail("Type", f"header type {kind} is not 3", 0)
    version = reader.uint(6, "Version")
    if version != HEADER_VERSION:
        raise reader.fail("Version", f"GPP version {version} is not supported (only 1)", 6)
    ids = _read_fibonacci_range(reader, "SectionIds")
    if len(ids) != len(parts) - 1:
        raise reader.fail(
            "SectionIds", f"header lists {len(ids)} sections but {len(parts) - 1} follow", 12
        )
    tcf_eu_v2 = usp_v1 = None
    usnat = None
    others = []
    for part, (section_id, section) in enumerate(zip(ids, parts[1:], strict=True), start=1):
        if section_id == SECTION_TCFEUV2:
            try:
                tcf.decode(section, require_disclosed_vendors=False)
            except MalformedTCString as exc:
                raise MalformedGPPString(
                    f"tcfeuv2.{exc.field_name}", exc.offset, exc.reason, part
                ) from exc
            tcf_eu_v2 = section
        elif section_id == SECTION_USPV1:
            try:
                usprivacy.decode(section)
            except usprivacy.MalformedUSPrivacyString as exc:
                raise MalformedGPPString(
                    f"uspv1.{exc.field_name}", exc.position, str(exc), part
                ) from exc
            usp_v1 = section
        elif section_id == SECTION_USNAT:
            usnat = _decode_usnat(section, part)
        else:
            if not section:
                raise MalformedGPPString("section", 0, f"section {section_id} is empty", part)
            others.append((section_id, section))
    return GPPString(tcf_eu_v2=tcf_eu_v2, usp_v1=usp_v1, usnat=usnat, other_sections=tuple(others))
