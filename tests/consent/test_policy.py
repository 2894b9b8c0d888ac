"""The collection policy as a table of cases, and properties that hold for every input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.collect.consent_gate import GateDecision, anonymise, apply_decision
from accord.consent.models import REGIMES
from accord.consent.policy import Outcome, Policy, decide, event_purpose, preferences_of

KEEP, ANON, DROP = Outcome.KEEP, Outcome.ANONYMISE, Outcome.DROP
POLICY = Policy(event_purposes={"Order Completed": "necessary", "Ad Clicked": "marketing"})
STRICT = Policy(anonymous_counting=False)


def track(name: str = "Viewed", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "anonymousId": "a1", **extra}


CASES = [
    # event, choices, regime, gpc, policy, outcome
    (track(), {"statistics": True}, "gdpr", False, POLICY, KEEP),
    (track(), {"statistics": False}, "gdpr", False, POLICY, ANON),
    (track(), None, "gdpr", False, POLICY, ANON),
    (track(), None, "uk_gdpr", False, STRICT, DROP),
    (track(), None, "lgpd", False, POLICY, ANON),
    (track(), {}, "gdpr", False, POLICY, ANON),
    (track(), None, "ccpa", False, POLICY, KEEP),
    (track(), None, "default", False, POLICY, KEEP),
    (track(), {"statistics": False}, "ccpa", False, POLICY, ANON),
    (track(), {"statistics": False}, "default", False, STRICT, DROP),
    (track("Order Completed"), None, "gdpr", False, POLICY, KEEP),
    (track("Order Completed"), {"statistics": False}, "gdpr", False, POLICY, KEEP),
    (track("Ad Clicked"), {"statistics": True}, "gdpr", False, POLICY, ANON),
    (track("Ad Clicked"), {"marketing": True}, "gdpr", False, POLICY, KEEP),
    (track("Ad Clicked"), None, "ccpa", True, POLICY, ANON),
    (track("Ad Clicked"), None, "ccpa", True, Policy(honour_gpc=False), KEEP),
    # CCPA: GPC received after an opt-in overrides it (see the item 14 test below)
    (track("Ad Clicked"), {"marketing": True}, "ccpa", True, POLICY, ANON),
    (track("Ad Clicked"), {"marketing": True}, "gdpr", True, POLICY, KEEP),
    (track("Ad Clicked"), None, "ccpa", False, POLICY, KEEP),
    (track(), None, "ccpa", True, POLICY, KEEP),  # GPC is about sale and sharing only
    ({"type": "identify", "userId": "u"}, None, "gdpr", False, POLICY, DROP),
    ({"type": "identify", "userId": "u"}, {"statistics": True}, "gdpr", False, POLICY, KEEP),
    ({"type": "alias", "userId": "u", "previousId": "a"}, None, "gdpr", False, POLICY, DROP),
    ({"type": "group", "userId": "u", "groupId": "g"}, None, "ccpa", False, POLICY, KEEP),
    ({"type": "page", "anonymousId": "a"}, None, "gdpr", False, POLICY, ANON),
    ({"type": "screen", "anonymousId": "a"}, None, "gdpr", False, STRICT, DROP),
    (
        {"type": "identify", "userId": "u"},
        None,
        "gdpr",
        False,
        Policy(event_purposes={"$identify": "necessary"}),
        KEEP,
    ),
]


@pytest.mark.parametrize(("event", "choices", "regime", "gpc", "policy", "outcome"), CASES)
def test_policy_table(
    event: dict[str, Any],
    choices: dict[str, bool] | None,
    regime: str,
    gpc: bool,
    policy: Policy,
    outcome: Outcome,
) -> None:
    verdict = decide(event, choices=choices, regime=regime, gpc=gpc, policy=policy)
    assert verdict.outcome is outcome, verdict.reason


def test_event_purpose_by_name_then_type_then_default() -> None:
    policy = Policy(event_purposes={"Signed Up": "marketing", "$page": "preferences"})
    assert event_purpose(track("Signed Up"), policy) == "marketing"
    assert event_purpose(track("Other"), policy) == "statistics"
    assert event_purpose({"type": "page"}, policy) == "preferences"


def test_category_preferences_are_read_from_the_context() -> None:
    event = track(context={"consent": {"categoryPreferences": {"Marketing": True, "x": "yes"}}})
    assert preferences_of(event) == {"marketing": True}
    assert preferences_of(track()) is None


purposes = st.sampled_from(["statistics", "marketing", "preferences", "custom_1"])
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["track", "page", "screen", "identify", "group", "alias"]),
        "event": st.sampled_from(["A", "B", "Ad Clicked"]),
        "anonymousId": st.just("a"),
    }
)


@given(
    event=events,
    choices=st.none() | st.dictionaries(purposes, st.booleans()),
    regime=st.sampled_from(["gdpr", "uk_gdpr", "lgpd"]),
    gpc=st.booleans(),
    mapping=st.dictionaries(st.sampled_from(["A", "B", "Ad Clicked"]), purposes),
)
def test_opt_in_regimes_keep_identifiers_only_with_a_grant(
    event: dict[str, Any],
    choices: dict[str, bool] | None,
    regime: str,
    gpc: bool,
    mapping: dict[str, str],
) -> None:
    policy = Policy(event_purposes=mapping)
    verdict = decide(event, choices=choices, regime=regime, gpc=gpc, policy=policy)
    if verdict.outcome is Outcome.KEEP:
        assert (choices or {}).get(event_purpose(event, policy)) is True


@given(regime=st.sampled_from(REGIMES), choices=st.dictionaries(purposes, st.booleans()))
def test_a_refusal_is_never_kept_whole(regime: str, choices: dict[str, bool]) -> None:
    for purpose, granted in choices.items():
        verdict = decide(
            track("E"),
            choices=choices,
            regime=regime,
            gpc=False,
            policy=Policy(event_purposes={"E": purpose}),
        )
        assert (verdict.outcome is Outcome.KEEP) == granted


def test_anonymise_removes_identifiers_and_free_text() -> None:
    event = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m1",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "userId": "u1",
        "anonymousId": "a1",
        "properties": {"price": 10.5, "currency": "EUR", "note": "call me on 0612", "ok": True},
        "context": {
            "ip": "81.2.69.160",
            "userAgent": "Mozilla",
            "traits": {"email": "x@example.com"},
            "page": {"path": "/p/1", "url": "https://shop.example/p/1?email=x@example.com"},
            "locale": "de-DE",
        },
    }
    out = apply_decision(event, GateDecision(keep=True, anonymise=True))
    assert out == anonymise(event)
    assert "userId" not in out and "anonymousId" not in out
    assert out["properties"] == {"price": 10.5, "currency": "EUR", "ok": True}
    assert out["context"] == {"locale": "de-DE", "page": {"path": "/p/1"}}
    assert "x@example.com" not in str(out)


def test_item_14_ccpa_opt_in_given_with_gpc_on_stands() -> None:
    event = track("Ad Clicked")
    later = decide(event, choices={"marketing": True}, regime="ccpa", gpc=True, policy=POLICY)
    assert later.outcome is ANON and "Global Privacy Control" in later.reason
    again = decide(
        event,
        choices={"marketing": True},
        regime="ccpa",
        gpc=True,
        policy=POLICY,
        consented_with_gpc=frozenset({"marketing"}),
    )
    assert again.outcome is KEEP
