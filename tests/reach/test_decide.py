"""The one reach decision: a table of cases, and properties that hold for every input."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.reach.decide import PRECEDENCE, QuietHours, Reach, decide, refusal_of

GRANTED = {"marketing": True}
NIGHT = QuietHours(start=time(21), end=time(8))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"channel": "email", "consent": GRANTED}, Reach(True)),
        (
            {"channel": "email", "consent": {}},
            Reach(False, "no_consent", "no consent for marketing"),
        ),
        (
            {"channel": "sms", "consent": {"marketing": None}},
            Reach(False, "no_consent", "no consent for marketing"),
        ),
        (
            {"channel": "email", "consent": {"marketing": False}},
            Reach(False, "no_consent", "no consent for marketing"),
        ),
        (
            {"channel": "ads", "consent": GRANTED, "purpose": "statistics"},
            Reach(False, "no_consent", "no consent for statistics"),
        ),
        (
            {"channel": "email", "consent": GRANTED, "suppressions": ["manual"]},
            Reach(False, "suppressed", "manual"),
        ),
        (
            {"channel": "email", "consent": {}, "suppressions": ["unsubscribed"]},
            Reach(False, "unsubscribed", "unsubscribed"),
        ),
        (
            {"channel": "email", "consent": GRANTED, "suppressions": ["manual", "hard_bounce"]},
            Reach(False, "bounced", "hard_bounce"),
        ),
        (
            {"channel": "sms", "consent": GRANTED, "suppressions": ["unsubscribed", "complaint"]},
            Reach(False, "complained", "complaint"),
        ),
        (
            {"channel": "sms", "consent": GRANTED, "has_address": False},
            Reach(False, "no_address", "no phone"),
        ),
        (
            {"channel": "push", "consent": GRANTED, "quiet_hours": NIGHT, "local_time": time(23)},
            Reach(False, "quiet_hours", "quiet hours"),
        ),
        (
            {"channel": "push", "consent": GRANTED, "quiet_hours": NIGHT, "local_time": time(9)},
            Reach(True),
        ),
    ],
)
def test_decisions(kwargs: dict[str, object], expected: Reach) -> None:
    assert decide(**kwargs) == expected  # type: ignore[arg-type]


def test_explained_in_one_line() -> None:
    assert Reach(True).explained() == ""
    assert Reach(False, "no_consent", "no consent for sms").explained() == "no consent for sms"
    assert Reach(False, "unsubscribed", "unsubscribed").explained() == "unsubscribed"
    assert Reach(False, "bounced", "hard_bounce").explained() == "bounced (hard_bounce)"


def test_stored_reasons_map_to_refusals() -> None:
    assert refusal_of("Hard_Bounce") == "bounced"
    assert refusal_of("unsubscribe") == "unsubscribed"
    assert refusal_of("list suppression") == "suppressed"


CHANNELS = st.sampled_from(["email", "sms", "push", "whatsapp", "webhook", "ads", "other"])
PURPOSES = st.sampled_from(["marketing", "statistics", "preferences"])
CONSENT = st.dictionaries(PURPOSES, st.none() | st.booleans())
REASONS = st.lists(
    st.sampled_from(["manual", "unsubscribed", "hard_bounce", "complaint", "list x"]), max_size=3
)
TIMES = st.none() | st.times()
QUIET = st.none() | st.builds(QuietHours, start=st.times(), end=st.times())


@given(CHANNELS, CONSENT, REASONS, st.none() | PURPOSES, st.booleans(), QUIET, TIMES)
def test_never_allowed_when_suppressed_or_without_consent(
    channel: str,
    consent: dict[str, bool | None],
    reasons: list[str],
    purpose: str | None,
    has_address: bool,
    quiet: QuietHours | None,
    local: time | None,
) -> None:
    found = decide(
        channel=channel,
        consent=consent,
        suppressions=reasons,
        purpose=purpose,
        has_address=has_address,
        quiet_hours=quiet,
        local_time=local,
    )
    needed = purpose or "marketing"
    if found.allowed:
        assert not reasons and consent.get(needed) is True and has_address
        assert found.reason is None
    else:
        assert found.reason in PRECEDENCE
    if reasons:
        assert found.reason in ("complained", "bounced", "unsubscribed", "suppressed")
    # More suppressions never make a refusal less binding.
    more = decide(channel=channel, consent=consent, suppressions=[*reasons, "complaint"])
    assert more.reason == "complained"
