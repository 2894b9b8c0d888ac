"""The IAB CCPA US Privacy string (`1YNN`): version, notice, opted out of sale, LSPA covered.

The IAB deprecated the US Privacy string on 31 January 2024 in favour of GPP; Accord still
decodes it from partners and emits it for vendors that have not moved on.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.core.errors import FieldProblem, InvalidInput

__all__ = [
    "NOT_APPLICABLE",
    "MalformedUSPrivacyString",
    "USPrivacy",
    "decode",
    "encode",
    "is_valid",
]

VERSION = 1
# The whole string when the CCPA does not apply to the user.
NOT_APPLICABLE = "1---"
_FLAGS = {"Y": True, "N": False, "-": None}
_NAMES = ("version", "notice_given", "opted_out_of_sale", "lspa_covered")


class MalformedUSPrivacyString(InvalidInput):
    """A US Privacy string that is not four characters of the 1.0 specification."""

    def __init__(self, field_name: str, position: int, reason: str) -> None:
        self.field_name = field_name
        self.position = position
        super().__init__(
            problems=[
                FieldProblem(
                    field="usPrivacy", reason=f"{field_name} (character {position}): {reason}"
                )
            ]
        )


@dataclass(frozen=True, slots=True)
class USPrivacy:
    """Each flag is True (Y), False (N) or None (-, not applicable)."""

    notice_given: bool | None = None
    opted_out_of_sale: bool | None = None
    lspa_covered: bool | None = None
    version: int = VERSION

    @property
    def applies(self) -> bool:
        return not (
            self.notice_given is None
            and self.opted_out_of_sale is None
            and self.lspa_covered is None
        )


def _flag(value: bool | None) -> str:
    return "-" if value is None else ("Y" if value else "N")


def encode(value: USPrivacy) -> str:
    if value.version != VERSION:
        raise ValueError(f"US Privacy version {value.version} is not supported (only 1)")
    if value.opted_out_of_sale is None and value.applies:
        raise ValueError("opted_out_of_sale may be unknown only when the CCPA does not apply")
    return (
        "1" + _flag(value.notice_given) + _flag(value.opted_out_of_sale) + _flag(value.lspa_covered)
    )


def decode(text: str) -> USPrivacy:
    """Decode a US Privacy string; flags are read case-insensitively (senders vary)."""
    if not isinstance(text, str) or len(text) != 4:
        raise MalformedUSPrivacyString("usPrivacy", 0, "must be exactly 4 characters")
    if text[0] != "1":
        raise MalformedUSPrivacyString("version", 0, f"version {text[0]!r} is not supported")
    flags: list[bool | None] = []
    for position in range(1, 4):
        char = text[position].upper()
        if char not in _FLAGS:
            raise MalformedUSPrivacyString(
                _NAMES[position], position, f"{text[position]!r} is not Y, N or -"
            )
        flags.append(_FLAGS[char])
    result = USPrivacy(notice_given=flags[0], opted_out_of_sale=flags[1], lspa_covered=flags[2])
    if result.opted_out_of_sale is None and result.applies:
        # The specification: "Opt-Out of Sale may never be unknown" (except in 1---).
        raise MalformedUSPrivacyString(
            "opted_out_of_sale", 2, "may be '-' only when the CCPA does not apply (1---)"
        )
    return result


def is_valid(text: str) -> bool:
    try:
        decode(text)
    except MalformedUSPrivacyString:
        return False
    return True
