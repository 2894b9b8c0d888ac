"""The one decision whether a person may be contacted on a channel now, as a pure function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Literal

# Why a person may not be contacted, most binding first: a person's own complaint or
# unsubscribe and a mailbox that does not exist outrank everything, then any other
# suppression, then missing consent, then no address on the channel, then the hour.
Refusal = Literal[
    "complained", "bounced", "unsubscribed", "suppressed", "no_consent", "no_address", "quiet_hours"
]
PRECEDENCE: tuple[Refusal, ...] = (
    "complained",
    "bounced",
    "unsubscribed",
    "suppressed",
    "no_consent",
    "no_address",
    "quiet_hours",
)

# The purpose whose consent a channel needs. Every outbound channel carries marketing;
# a channel not listed needs `marketing` too (consent-first default).
CHANNEL_PURPOSES: dict[str, str] = {
    "email": "marketing",
    "sms": "marketing",
    "whatsapp": "marketing",
    "push": "marketing",
    "webhook": "marketing",
    "ads": "marketing",
}
DEFAULT_PURPOSE = "marketing"
# The identifier kind a channel delivers to; channels not listed need none.
CHANNEL_ADDRESS: dict[str, str] = {"email": "email", "sms": "phone", "whatsapp": "phone"}

# Stored suppression reasons (free text written by unsubscribes, bounce processing,
# operators, journeys) and the refusal each one means.
_REASON_REFUSAL: dict[str, Refusal] = {
    "unsubscribe": "unsubscribed",
    "unsubscribed": "unsubscribed",
    "bounce": "bounced",
    "bounced": "bounced",
    "hard_bounce": "bounced",
    "complaint": "complained",
    "complained": "complained",
}


@dataclass(frozen=True)
class QuietHours:
    """Local hours when nothing is sent; `start == end` means none."""

    start: time
    end: time


@dataclass(frozen=True)
class Reach:
    """Allowed, or refused with a reason code and a detail people can read."""

    allowed: bool
    reason: Refusal | None = None
    detail: str = ""

    def explained(self) -> str:
        """One line for people: `no consent for marketing`, `suppressed (manual)`."""
        if self.reason is None or self.reason in ("no_consent", "no_address", "quiet_hours"):
            return self.detail
        if self.detail in ("", self.reason):
            return self.reason
        return f"{self.reason} ({self.detail})"


ALLOWED = Reach(True)


def refusal_of(stored_reason: str) -> Refusal:
    """The refusal a stored suppression reason means."""
    return _REASON_REFUSAL.get(stored_reason.strip().lower(), "suppressed")


def purpose_of(channel: str) -> str:
    return CHANNEL_PURPOSES.get(channel, DEFAULT_PURPOSE)


def in_quiet_hours(local: time, quiet: QuietHours) -> bool:
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def decide(
    *,
    channel: str,
    consent: Mapping[str, bool | None],
    suppressions: Sequence[str] = (),
    purpose: str | None = None,
    has_address: bool = True,
    quiet_hours: QuietHours | None = None,
    local_time: time | None = None,
) -> Reach:
    """May this person be contacted on `channel` now?

    `consent` is purpose → granted (None or absent: never asked, which is a refusal);
    `suppressions` the stored reasons of every suppression that names the person;
    `purpose` overrides the channel's purpose (an export for another purpose).
    """
    if suppressions:
        refusals = {refusal_of(reason): reason for reason in suppressions}
        worst = min(refusals, key=PRECEDENCE.index)
        return Reach(False, worst, refusals[worst])
    needed = purpose or purpose_of(channel)
    if consent.get(needed) is not True:
        return Reach(False, "no_consent", f"no consent for {needed}")
    if not has_address:
        return Reach(False, "no_address", f"no {CHANNEL_ADDRESS.get(channel, 'address')}")
    if (
        quiet_hours is not None
        and local_time is not None
        and in_quiet_hours(local_time, quiet_hours)
    ):
        return Reach(False, "quiet_hours", "quiet hours")
    return ALLOWED
