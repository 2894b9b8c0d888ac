"""Every outgoing consent signal derived from the one canonical consent state, by one precedence.

Precedence, per purpose: a strictly necessary purpose is always granted; otherwise the
subject's explicit choice wins — except that under the CCPA a Global Privacy Control
signal received after an opt-in to sale or sharing overrides it, unless that opt-in was
itself recorded while GPC was sent (CCPA regulations §7025(c)(3)); without a choice, GPC
(or a "Do Not Sell or Share" request) denies the purposes that sell or share data or
serve targeted advertising; otherwise the regime's default applies: denied in opt-in
regimes (GDPR, UK GDPR, LGPD), granted in opt-out regimes (CCPA, default).

A TC string is emitted only with a configured, IAB-registered CMP id, only where the GDPR
applies, and only from explicit choices: TCF consent is never inferred from a default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from accord.consent import gpp, tcf, usprivacy
from accord.consent.models import GPC_OVERRIDES_OPT_IN

__all__ = [
    "AD_SIGNALS",
    "CONSENT_MODE_SIGNALS",
    "DEFAULT_PURPOSE_MAP",
    "CmpSettings",
    "Decision",
    "PurposeSignals",
    "consent_mode",
    "effective_purposes",
    "gpp_us_national",
    "purpose_map_from_config",
    "purposes_from_tc_string",
    "tc_string",
    "us_privacy",
    "vendors_from_tc_string",
]

CONSENT_MODE_SIGNALS: tuple[str, ...] = (
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)
AD_SIGNALS = frozenset({"ad_storage", "ad_user_data", "ad_personalization"})
# TCF purposes of advertising: basic ads, ad profiles, personalised ads.
AD_TCF_PURPOSES = frozenset({2, 3, 4})
OPT_IN_REGIMES = frozenset({"gdpr", "uk_gdpr", "lgpd"})
TCF_REGIMES = frozenset({"gdpr", "uk_gdpr"})
NECESSARY = "necessary"

Basis = Literal["necessary", "explicit", "gpc", "do_not_sell", "regime_default"]
Signal = Literal["granted", "denied"]


class _LegitimateInterest(Protocol):
    @property
    def purposes(self) -> Mapping[str, bool]: ...

    @property
    def vendors(self) -> Mapping[str, bool]: ...


class ConsentStateLike(Protocol):
    """The fields of `accord.consent.models.ConsentState` that signals read."""

    @property
    def regime(self) -> str: ...

    @property
    def purposes(self) -> Mapping[str, bool]: ...

    @property
    def vendors(self) -> Mapping[str, bool]: ...

    @property
    def special_features(self) -> Mapping[str, bool]: ...

    @property
    def legitimate_interest(self) -> _LegitimateInterest: ...

    @property
    def gpc(self) -> bool: ...

    @property
    def sale_opt_out(self) -> bool: ...

    @property
    def notice_version(self) -> int: ...

    @property
    def language(self) -> str: ...

    @property
    def updated_at(self) -> datetime | None: ...

    @property
    def granted_with_gpc(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class PurposeSignals:
    """What one purpose key stands for in the standards."""

    tcf_purposes: tuple[int, ...] = ()
    consent_mode: tuple[str, ...] = ()
    # Selling or sharing data, or targeted advertising: what GPC and "Do Not Sell" refuse.
    sale_or_sharing: bool = False


DEFAULT_PURPOSE_MAP: Mapping[str, PurposeSignals] = {
    # Only security_storage is strictly necessary; functionality storage (language, chat
    # widgets, remembered settings) is a preference the visitor may refuse.
    "necessary": PurposeSignals(consent_mode=("security_storage",)),
    "preferences": PurposeSignals(
        tcf_purposes=(5, 6), consent_mode=("functionality_storage", "personalization_storage")
    ),
    "statistics": PurposeSignals(tcf_purposes=(7, 8, 9, 10), consent_mode=("analytics_storage",)),
    "marketing": PurposeSignals(
        tcf_purposes=(1, 2, 3, 4),
        consent_mode=("ad_storage", "ad_user_data", "ad_personalization"),
        sale_or_sharing=True,
    ),
}


def purpose_map_from_config(purposes: Iterable[Mapping[str, Any]]) -> dict[str, PurposeSignals]:
    """The map from configured purposes (`{"key", "tcf_purposes", "consent_mode"}` as the config
    API returns them). A purpose is sale or sharing when it feeds an advertising signal."""
    out = {}
    for purpose in purposes:
        tcf_ids = tuple(int(i) for i in purpose.get("tcf_purposes") or ())
        signals = tuple(str(s) for s in purpose.get("consent_mode") or ())
        out[str(purpose["key"])] = PurposeSignals(
            tcf_purposes=tcf_ids,
            consent_mode=signals,
            sale_or_sharing=bool(
                AD_SIGNALS.intersection(signals) or AD_TCF_PURPOSES.intersection(tcf_ids)
            ),
        )
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    basis: Basis


def _decide(state: ConsentStateLike, key: str, signals: PurposeSignals) -> Decision:
    if key == NECESSARY:
        return Decision(True, "necessary")
    if key in state.purposes:
        granted = bool(state.purposes[key])
        if (
            granted
            and signals.sale_or_sharing
            and state.gpc
            and state.regime in GPC_OVERRIDES_OPT_IN
            and key not in state.granted_with_gpc
        ):
            return Decision(False, "gpc")
        return Decision(granted, "explicit")
    if signals.sale_or_sharing and state.gpc:
        return Decision(False, "gpc")
    if signals.sale_or_sharing and state.sale_opt_out:
        return Decision(False, "do_not_sell")
    return Decision(state.regime not in OPT_IN_REGIMES, "regime_default")


def effective_purposes(
    state: ConsentStateLike, purpose_map: Mapping[str, PurposeSignals] = DEFAULT_PURPOSE_MAP
) -> dict[str, Decision]:
    """The decision for every purpose the map or the state knows, with the rule that made it."""
    keys = dict.fromkeys([*purpose_map, *state.purposes])
    return {key: _decide(state, key, purpose_map.get(key, PurposeSignals())) for key in keys}


def consent_mode(
    state: ConsentStateLike, purpose_map: Mapping[str, PurposeSignals] = DEFAULT_PURPOSE_MAP
) -> dict[str, Signal]:
    """Google Consent Mode v2: all seven signals. A signal is granted only when at least one
    purpose feeds it and every purpose feeding it is granted."""
    decisions = effective_purposes(state, purpose_map)
    out: dict[str, Signal] = {}
    for signal in CONSENT_MODE_SIGNALS:
        feeding = [key for key, p in purpose_map.items() if signal in p.consent_mode]
        granted = bool(feeding) and all(decisions[key].granted for key in feeding)
        out[signal] = "granted" if granted else "denied"
    return out


def _sale_opted_out(state: ConsentStateLike, purpose_map: Mapping[str, PurposeSignals]) -> bool:
    decisions = effective_purposes(state, purpose_map)
    selling = [key for key, p in purpose_map.items() if p.sale_or_sharing]
    return any(not decisions[key].granted for key in selling)


def us_privacy(
    state: ConsentStateLike,
    purpose_map: Mapping[str, PurposeSignals] = DEFAULT_PURPOSE_MAP,
    *,
    lspa_covered: bool = False,
) -> str:
    """The `1YNN`-form US Privacy string; `1---` where the CCPA does not apply."""
    if state.regime != "ccpa":
        return usprivacy.NOT_APPLICABLE
    return usprivacy.encode(
        usprivacy.USPrivacy(
            notice_given=state.notice_version > 0,
            opted_out_of_sale=_sale_opted_out(state, purpose_map),
            lspa_covered=lspa_covered,
        )
    )


def gpp_us_national(
    state: ConsentStateLike,
    purpose_map: Mapping[str, PurposeSignals] = DEFAULT_PURPOSE_MAP,
    *,
    mspa_covered: bool = False,
) -> str:
    """A GPP string with the US National section (id 7) where the CCPA regime applies, and the
    empty GPP string `DBAA` (no applicable section) elsewhere."""
    if state.regime != "ccpa":
        return gpp.encode(gpp.GPPString())
    opted_out = 1 if _sale_opted_out(state, purpose_map) else 2
    notice = 1 if state.notice_version > 0 else 2
    section = gpp.UsNat(
        version=2,
        sharing_notice=notice,
        sale_opt_out_notice=notice,
        sharing_opt_out_notice=notice,
        targeted_advertising_opt_out_notice=notice,
        sale_opt_out=opted_out,
        sharing_opt_out=opted_out,
        targeted_advertising_opt_out=opted_out,
        mspa_covered_transaction=1 if mspa_covered else 2,
        # A covered transaction in opt-out option mode; not in service provider mode.
        mspa_opt_out_option_mode=1 if mspa_covered else 0,
        mspa_service_provider_mode=2 if mspa_covered else 0,
        gpc=state.gpc,
    )
    problems = gpp.usnat_problems(section)
    if problems:
        raise ValueError("; ".join(problems))
    return gpp.encode(gpp.GPPString(usnat=section))


@dataclass(frozen=True, slots=True)
class CmpSettings:
    """The `cmp` block of a property's configuration."""

    cmp_id: int | None = None
    cmp_version: int = 1
    consent_screen: int = 1
    tcf_policy_version: int = 5
    gvl_version: int | None = None
    publisher_cc: str = "AA"
    tcf_enabled: bool = True

    @classmethod
    def from_config(cls, cmp: Mapping[str, Any]) -> CmpSettings:
        return cls(
            cmp_id=cmp.get("cmp_id"),
            cmp_version=int(cmp.get("cmp_version") or 1),
            tcf_policy_version=int(cmp.get("tcf_policy_version") or 5),
            gvl_version=cmp.get("gvl_version"),
            publisher_cc=str(cmp.get("publisher_cc") or "AA").upper(),
            tcf_enabled=bool(cmp.get("tcf_enabled", True)),
        )


def _tcf_vendor_ids(
    choices: Mapping[str, bool], tcf_ids: Mapping[str, int] | None
) -> dict[int, bool]:
    out: dict[int, bool] = {}
    for key, granted in choices.items():
        vendor = tcf_ids.get(key) if tcf_ids is not None else (int(key) if key.isdigit() else None)
        if vendor is not None and 1 <= vendor <= tcf.MAX_VENDOR_ID:
            out[vendor] = bool(granted)
    return out


def _language(language: str) -> str:
    code = language[:2].upper()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else "EN"


def tc_string(
    state: ConsentStateLike,
    cmp: CmpSettings,
    purpose_map: Mapping[str, PurposeSignals] = DEFAULT_PURPOSE_MAP,
    *,
    vendor_tcf_ids: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> str | None:
    """The TC string of the state, or None unless a registered CMP id and a GVL version are
    configured and the GDPR applies. Only explicit grants become TCF consent; purpose 1
    (store and access information on a device) is granted when any non-necessary purpose is.

    `vendor_tcf_ids` maps Accord vendor ids to GVL ids; without it, decimal ids are GVL ids.
    Every vendor the subject saw (granted or refused) is written as disclosed (TCF v2.3).
    """
    if cmp.cmp_id is None or cmp.gvl_version is None or not cmp.tcf_enabled:
        return None
    if state.regime not in TCF_REGIMES:
        return None
    granted = [key for key, value in state.purposes.items() if value and key != NECESSARY]
    purposes = {i for key in granted for i in purpose_map.get(key, PurposeSignals()).tcf_purposes}
    if granted:
        purposes.add(1)
    li = {
        i
        for key, value in state.legitimate_interest.purposes.items()
        if value
        for i in purpose_map.get(key, PurposeSignals()).tcf_purposes
        if i in tcf.LI_PURPOSES
    }
    vendors = _tcf_vendor_ids(state.vendors, vendor_tcf_ids)
    li_vendors = _tcf_vendor_ids(state.legitimate_interest.vendors, vendor_tcf_ids)
    features = {
        int(key) for key, value in state.special_features.items() if value and key.isdigit()
    }
    # Day granularity: the ledger keeps the exact time; the string need not carry it.
    moment = state.updated_at or now or datetime.now(UTC)
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return tcf.encode(
        tcf.TCString(
            created=day,
            last_updated=day,
            cmp_id=cmp.cmp_id,
            cmp_version=cmp.cmp_version,
            consent_screen=cmp.consent_screen,
            consent_language=_language(state.language),
            vendor_list_version=cmp.gvl_version,
            tcf_policy_version=cmp.tcf_policy_version,
            is_service_specific=True,
            special_feature_opt_ins=frozenset(f for f in features if 1 <= f <= 12),
            purposes_consent=frozenset(p for p in purposes if 1 <= p <= 24),
            purposes_li_transparency=frozenset(li),
            publisher_cc=cmp.publisher_cc,
            vendor_consents=frozenset(v for v, ok in vendors.items() if ok),
            vendor_legitimate_interests=frozenset(v for v, ok in li_vendors.items() if ok),
            disclosed_vendors=frozenset(vendors) | frozenset(li_vendors),
        )
    )


def purposes_from_tc_string(
    tc: tcf.TCString, purpose_map: Mapping[str, PurposeSignals] = DEFAULT_PURPOSE_MAP
) -> dict[str, bool]:
    """Honour an incoming TC string: a purpose is granted when every TCF purpose it maps to
    has consent (purpose 1 included, for any purpose with TCF purposes). Purposes that map to
    no TCF purpose are left out: the string says nothing about them."""
    out = {}
    for key, signals in purpose_map.items():
        if key == NECESSARY or not signals.tcf_purposes:
            continue
        needed = set(signals.tcf_purposes) | {1}
        out[key] = needed <= tc.purposes_consent
    return out


def vendors_from_tc_string(tc: tcf.TCString) -> dict[str, bool]:
    """Vendor choices an incoming TC string carries, keyed by GVL id. With a DisclosedVendors
    segment every disclosed vendor gets a choice (TCF v2.3: consent only if also disclosed);
    without one, only the vendors with consent are known."""
    if tc.disclosed_vendors is None:
        return {str(v): True for v in sorted(tc.vendor_consents)}
    return {str(v): tc.vendor_consented(v) for v in sorted(tc.disclosed_vendors)}
