"""Signals derived from the canonical state: precedence, Consent Mode, US Privacy, GPP, TCF."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent import gpp, tcf
from accord.consent.models import ConsentState, LegitimateInterest, Subject
from accord.consent.signals import (
    CONSENT_MODE_SIGNALS,
    CmpSettings,
    Decision,
    consent_mode,
    effective_purposes,
    gpp_us_national,
    purpose_map_from_config,
    purposes_from_tc_string,
    tc_string,
    us_privacy,
    vendors_from_tc_string,
)

WHEN = datetime(2026, 11, 23, 15, 30, 12, tzinfo=UTC)


def state(**changes: Any) -> ConsentState:
    base: dict[str, Any] = {
        "subject": Subject(anonymous_id="a-1"),
        "property_id": "shop-web",
        "regime": "gdpr",
        "purposes": {},
        "notice_version": 3,
        "language": "de",
        "updated_at": WHEN,
    }
    base.update(changes)
    return ConsentState(**base)


# (case, state changes, expected decision for "marketing", expected for "statistics")
PRECEDENCE = [
    (
        "opt-in regime, no choice",
        {"regime": "gdpr"},
        Decision(False, "regime_default"),
        Decision(False, "regime_default"),
    ),
    (
        "uk_gdpr is opt-in",
        {"regime": "uk_gdpr"},
        Decision(False, "regime_default"),
        Decision(False, "regime_default"),
    ),
    (
        "lgpd is opt-in",
        {"regime": "lgpd"},
        Decision(False, "regime_default"),
        Decision(False, "regime_default"),
    ),
    (
        "opt-out regime, no choice",
        {"regime": "ccpa"},
        Decision(True, "regime_default"),
        Decision(True, "regime_default"),
    ),
    (
        "default regime is opt-out",
        {"regime": "default"},
        Decision(True, "regime_default"),
        Decision(True, "regime_default"),
    ),
    (
        "explicit grant in opt-in",
        {"purposes": {"marketing": True}},
        Decision(True, "explicit"),
        Decision(False, "regime_default"),
    ),
    (
        "explicit refusal in opt-out",
        {"regime": "ccpa", "purposes": {"statistics": False}},
        Decision(True, "regime_default"),
        Decision(False, "explicit"),
    ),
    (
        "GPC denies sale and sharing only",
        {"regime": "ccpa", "gpc": True, "sale_opt_out": True},
        Decision(False, "gpc"),
        Decision(True, "regime_default"),
    ),
    (
        "Do Not Sell denies sale and sharing only",
        {"regime": "ccpa", "sale_opt_out": True},
        Decision(False, "do_not_sell"),
        Decision(True, "regime_default"),
    ),
    (
        "ccpa: GPC after an opt-in overrides it",
        {"regime": "ccpa", "gpc": True, "purposes": {"marketing": True}},
        Decision(False, "gpc"),
        Decision(True, "regime_default"),
    ),
    (
        "ccpa: an opt-in given while sending GPC stands",
        {
            "regime": "ccpa",
            "gpc": True,
            "purposes": {"marketing": True},
            "granted_with_gpc": frozenset({"marketing"}),
        },
        Decision(True, "explicit"),
        Decision(True, "regime_default"),
    ),
    (
        "gdpr: an explicit opt-in beats GPC",
        {"gpc": True, "purposes": {"marketing": True}},
        Decision(True, "explicit"),
        Decision(False, "regime_default"),
    ),
    (
        "GPC in opt-in regime",
        {"gpc": True, "purposes": {"statistics": True}},
        Decision(False, "gpc"),
        Decision(True, "explicit"),
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "marketing", "statistics"), PRECEDENCE, ids=[p[0] for p in PRECEDENCE]
)
def test_precedence(
    case: str, changes: dict[str, Any], marketing: Decision, statistics: Decision
) -> None:
    decisions = effective_purposes(state(**changes))
    assert decisions["marketing"] == marketing
    assert decisions["statistics"] == statistics
    assert decisions["necessary"] == Decision(True, "necessary")


def test_necessary_cannot_be_refused() -> None:
    assert effective_purposes(state(purposes={"necessary": False}))["necessary"].granted


G, D = "granted", "denied"
# (case, state changes, expected Consent Mode v2 signals in CONSENT_MODE_SIGNALS order)
CONSENT_MODE = [
    ("gdpr, nothing chosen", {}, (D, D, D, D, D, D, G)),
    (
        "gdpr, accept all",
        {"purposes": {"preferences": True, "statistics": True, "marketing": True}},
        (G, G, G, G, G, G, G),
    ),
    ("gdpr, statistics only", {"purposes": {"statistics": True}}, (D, D, D, G, D, D, G)),
    ("gdpr, preferences only", {"purposes": {"preferences": True}}, (D, D, D, D, G, G, G)),
    ("ccpa, nothing chosen", {"regime": "ccpa"}, (G, G, G, G, G, G, G)),
    ("ccpa with GPC", {"regime": "ccpa", "gpc": True, "sale_opt_out": True}, (D, D, D, G, G, G, G)),
    (
        "ccpa, marketing refused",
        {"regime": "ccpa", "purposes": {"marketing": False}},
        (D, D, D, G, G, G, G),
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "expected"), CONSENT_MODE, ids=[c[0] for c in CONSENT_MODE]
)
def test_consent_mode(case: str, changes: dict[str, Any], expected: tuple[str, ...]) -> None:
    signals = consent_mode(state(**changes))
    assert tuple(signals) == CONSENT_MODE_SIGNALS
    assert tuple(signals.values()) == expected


def test_a_signal_fed_by_a_refused_custom_purpose_is_denied() -> None:
    purposes = [
        {"key": "necessary", "tcf_purposes": [], "consent_mode": ["security_storage"]},
        {"key": "marketing", "tcf_purposes": [1, 2, 3, 4], "consent_mode": ["ad_storage"]},
        {"key": "retargeting", "tcf_purposes": [], "consent_mode": ["ad_storage"]},
    ]
    purpose_map = purpose_map_from_config(purposes)
    assert purpose_map["retargeting"].sale_or_sharing
    signals = consent_mode(state(purposes={"marketing": True, "retargeting": False}), purpose_map)
    assert signals["ad_storage"] == "denied"
    assert signals["analytics_storage"] == "denied"  # nothing feeds it
    assert signals["security_storage"] == "granted"


US_PRIVACY = [
    ("not applicable outside ccpa", {"regime": "gdpr"}, "1---"),
    ("ccpa, no opt-out", {"regime": "ccpa"}, "1YNN"),
    ("ccpa, GPC", {"regime": "ccpa", "gpc": True}, "1YYN"),
    ("ccpa, Do Not Sell", {"regime": "ccpa", "sale_opt_out": True}, "1YYN"),
    ("ccpa, marketing refused", {"regime": "ccpa", "purposes": {"marketing": False}}, "1YYN"),
    (
        "ccpa, explicit grant given while sending GPC",
        {
            "regime": "ccpa",
            "gpc": True,
            "purposes": {"marketing": True},
            "granted_with_gpc": frozenset({"marketing"}),
        },
        "1YNN",
    ),
    (
        "ccpa, GPC after an explicit grant",
        {"regime": "ccpa", "gpc": True, "purposes": {"marketing": True}},
        "1YYN",
    ),
    ("ccpa, no notice shown yet", {"regime": "ccpa", "notice_version": 0}, "1NNN"),
]


@pytest.mark.parametrize(
    ("case", "changes", "expected"), US_PRIVACY, ids=[c[0] for c in US_PRIVACY]
)
def test_us_privacy(case: str, changes: dict[str, Any], expected: str) -> None:
    assert us_privacy(state(**changes)) == expected


def test_us_privacy_lspa() -> None:
    assert us_privacy(state(regime="ccpa"), lspa_covered=True) == "1YNY"


@pytest.mark.parametrize(
    ("changes", "opted_out", "gpc"),
    [
        ({"regime": "ccpa"}, 2, False),
        ({"regime": "ccpa", "gpc": True, "sale_opt_out": True}, 1, True),
        ({"regime": "ccpa", "purposes": {"marketing": False}}, 1, False),
    ],
)
def test_gpp_us_national(changes: dict[str, Any], opted_out: int, gpc: bool) -> None:
    text = gpp_us_national(state(**changes))
    decoded = gpp.decode(text)
    assert text.startswith("DBABLA~")
    assert decoded.usnat is not None
    assert decoded.usnat.sale_opt_out == opted_out
    assert decoded.usnat.sharing_opt_out == opted_out
    assert decoded.usnat.targeted_advertising_opt_out == opted_out
    assert decoded.usnat.sale_opt_out_notice == 1
    assert decoded.usnat.gpc is gpc
    assert decoded.usnat.mspa_covered_transaction == 2
    assert gpp.usnat_problems(decoded.usnat) == []


def test_gpp_mspa_covered() -> None:
    decoded = gpp.decode(gpp_us_national(state(regime="ccpa"), mspa_covered=True))
    assert decoded.usnat is not None
    assert (decoded.usnat.mspa_covered_transaction, decoded.usnat.mspa_opt_out_option_mode) == (
        1,
        1,
    )


def test_gpp_outside_the_us_has_no_section() -> None:
    assert gpp_us_national(state(regime="gdpr")) == "DBAA"
    assert gpp.decode("DBAA").section_ids == ()


CMP = CmpSettings(cmp_id=300, cmp_version=4, gvl_version=120, publisher_cc="DE")


@pytest.mark.parametrize(
    ("cmp", "changes"),
    [
        (CmpSettings(), {}),
        (CmpSettings(cmp_id=300), {}),  # no GVL version
        (CmpSettings(cmp_id=300, gvl_version=120, tcf_enabled=False), {}),
        (CMP, {"regime": "ccpa"}),  # the GDPR does not apply
    ],
)
def test_no_tc_string_without_a_registered_cmp_or_outside_the_gdpr(
    cmp: CmpSettings, changes: dict[str, Any]
) -> None:
    assert tc_string(state(**changes), cmp) is None


def test_tc_string_carries_the_explicit_choices() -> None:
    subject = state(
        purposes={"marketing": True, "statistics": False, "preferences": True},
        vendors={"755": True, "28": False},
        special_features={"1": True},
        legitimate_interest=LegitimateInterest(purposes={"statistics": True}, vendors={"91": True}),
    )
    text = tc_string(subject, CMP)
    assert text is not None
    tc = tcf.decode(text)
    assert (tc.cmp_id, tc.cmp_version, tc.vendor_list_version) == (300, 4, 120)
    assert tc.tcf_policy_version == 5
    assert (tc.consent_language, tc.publisher_cc) == ("DE", "DE")
    assert tc.is_service_specific
    assert tc.purposes_consent == {1, 2, 3, 4, 5, 6}
    assert tc.purposes_li_transparency == {7, 8, 9, 10}
    assert tc.special_feature_opt_ins == {1}
    assert tc.vendor_consents == {755}
    assert tc.vendor_legitimate_interests == {91}
    assert tc.disclosed_vendors == {755, 28, 91}
    assert tc.created == tc.last_updated == datetime(2026, 11, 23, tzinfo=UTC)
    assert purposes_from_tc_string(tc) == {
        "preferences": True,
        "statistics": False,
        "marketing": True,
    }
    assert vendors_from_tc_string(tc) == {"28": False, "91": False, "755": True}


def test_tcf_consent_is_never_inferred_from_a_default() -> None:
    text = tc_string(state(regime="gdpr", purposes={}), CMP)
    assert text is not None
    tc = tcf.decode(text)
    assert tc.purposes_consent == frozenset()
    assert purposes_from_tc_string(tc) == {
        "preferences": False,
        "statistics": False,
        "marketing": False,
    }


def test_vendor_tcf_ids_map_accord_vendor_ids() -> None:
    text = tc_string(state(vendors={"google": True}), CMP, vendor_tcf_ids={"google": 755})
    assert text is not None
    assert tcf.decode(text).vendor_consents == {755}


_choice = st.dictionaries(
    st.sampled_from(["preferences", "statistics", "marketing"]), st.booleans()
)


@given(_choice, st.dictionaries(st.integers(1, 2000).map(str), st.booleans(), max_size=20))
def test_tc_string_round_trips_every_choice(
    purposes: dict[str, bool], vendors: dict[str, bool]
) -> None:
    subject = state(purposes=purposes, vendors=vendors)
    text = tc_string(subject, CMP)
    assert text is not None
    tc = tcf.decode(text)
    got = purposes_from_tc_string(tc)
    for key in ("preferences", "statistics", "marketing"):
        assert got[key] == purposes.get(key, False)
    assert vendors_from_tc_string(tc) == {
        k: v for k, v in sorted(vendors.items(), key=lambda kv: int(kv[0]))
    }


def test_cmp_settings_from_the_config_block() -> None:
    block = {
        "cmp_id": 300,
        "cmp_version": 2,
        "tcf_policy_version": 5,
        "gvl_version": 150,
        "publisher_cc": "de",
        "tcf_enabled": True,
    }
    cmp = CmpSettings.from_config(block)
    assert cmp == CmpSettings(cmp_id=300, cmp_version=2, gvl_version=150, publisher_cc="DE")
    text = tc_string(state(purposes={"marketing": True}), cmp)
    assert text is not None and tcf.decode(text).vendor_list_version == 150
    unregistered = CmpSettings.from_config({**block, "cmp_id": None, "tcf_enabled": False})
    assert tc_string(state(purposes={"marketing": True}), unregistered) is None


def test_item_14_only_security_storage_is_granted_before_any_choice() -> None:
    # docs/cmp.md: "everything denied except security_storage"; functionality storage
    # belongs to preferences, which the visitor may refuse.
    before = consent_mode(state())
    assert [k for k, v in before.items() if v == "granted"] == ["security_storage"]
    refused = consent_mode(state(purposes={"preferences": False, "statistics": True}))
    assert refused["functionality_storage"] == "denied"
    assert consent_mode(state(purposes={"preferences": True}))["functionality_storage"] == "granted"


def test_item_14_gpc_after_an_opt_in_overrides_it_under_ccpa() -> None:
    opted_in = state(regime="ccpa", purposes={"marketing": True}, notice_version=1)
    assert us_privacy(opted_in) == "1YNN"
    later_gpc = state(regime="ccpa", purposes={"marketing": True}, notice_version=1, gpc=True)
    assert effective_purposes(later_gpc)["marketing"] == Decision(False, "gpc")
    assert us_privacy(later_gpc) == "1YYN"
    assert consent_mode(later_gpc)["ad_storage"] == "denied"
    again = state(
        regime="ccpa",
        purposes={"marketing": True},
        notice_version=1,
        gpc=True,
        granted_with_gpc=frozenset({"marketing"}),
    )
    assert us_privacy(again) == "1YNN"
