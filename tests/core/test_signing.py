"""The one link signer: tokens round-trip, are bound to their purpose, resist tampering, expire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.core.errors import InvalidLink, LinkExpired
from accord.core.signing import Signer


@given(st.text(max_size=200), st.sampled_from(["verify-email", "notice", "unsubscribe"]))
def test_tokens_round_trip_and_resist_tampering(payload: str, purpose: str) -> None:
    signer = Signer("secret")
    for token, read in (
        (signer.dumps(purpose, payload), lambda s, p, t: s.loads(p, t)),
        (
            signer.dumps_timed(purpose, payload),
            lambda s, p, t: s.loads_timed(p, t, max_age_seconds=60),
        ),
    ):
        assert read(signer, purpose, token) == payload
        for other, where, forged in (
            (Signer("other secret"), purpose, token),
            (signer, "something-else", token),
            (signer, purpose, "garbage"),
        ):
            with pytest.raises(InvalidLink):
                read(other, where, forged)


def test_timed_tokens_expire_and_say_so() -> None:
    signer = Signer("secret")
    token = signer.dumps_timed("confirm", ["lead_1", "en"])
    assert signer.loads_timed("confirm", token, max_age_seconds=60) == ["lead_1", "en"]
    with pytest.raises(LinkExpired):
        signer.loads_timed("confirm", token, max_age_seconds=-1, what="confirmation")
    assert signer.loads_timed_or_none("confirm", token, max_age_seconds=-1) is None
    assert signer.loads_timed_or_none("confirm", token + "x", max_age_seconds=60) is None
    assert signer.loads_timed_or_none("confirm", token, max_age_seconds=60) == ["lead_1", "en"]
