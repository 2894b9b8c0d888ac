"""The consent gate of collection: reads the ledger and the policy, applies `policy.decide`.

The consent of an event's subject comes from the ledger when the subject has a
record (it is the proof, and a withdrawal counts from its commit: the ledger is read
for every event, never cached), else from `context.consent.categoryPreferences`.
The regime is the one the subject's newest record was given under, else the geo
rules' answer for the event's `context.location.country` or `context.ip`. The
business's policy and geo rules are cached for `ttl_seconds`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from accord.collect.consent_gate import GateDecision
from accord.consent import config, service
from accord.consent.geo import country_of_ip, regime_for
from accord.consent.models import ConsentState
from accord.consent.policy import Outcome, Policy, decide, gpc_of, preferences_of
from accord.store.db import Store


@dataclass(frozen=True)
class _BusinessRules:
    policy: Policy
    geo_rules: dict[str, str]


def _country_of(event: dict[str, Any]) -> str | None:
    context = event.get("context")
    if not isinstance(context, dict):
        return None
    location = context.get("location")
    if isinstance(location, dict) and isinstance(location.get("country"), str):
        code = str(location["country"]).strip().upper()
        if len(code) == 2 and code.isalpha():
            return code
    ip = context.get("ip")
    return country_of_ip(ip) if isinstance(ip, str) else None


@dataclass
class LedgerGate:
    """The production gate; one per app (or CLI import), sharing the store."""

    store: Store
    ttl_seconds: float = 30.0
    _rules: dict[str, tuple[float, _BusinessRules]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _rules_of(self, business_id: str) -> _BusinessRules:
        now = time.monotonic()
        hit = self._rules.get(business_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.store.read() as conn:
            spec = config.get_policy(conn, business_id=business_id)
            rules = _BusinessRules(
                policy=Policy(
                    event_purposes=dict(spec.event_purposes),
                    default_purpose=spec.default_purpose,
                    anonymous_counting=spec.anonymous_counting,
                    honour_gpc=spec.honour_gpc,
                ),
                geo_rules=config.geo_rules(conn, business_id=business_id),
            )
        with self._lock:
            self._rules[business_id] = (now + self.ttl_seconds, rules)
        return rules

    def forget(self, business_id: str) -> None:
        """Drop the cached policy of a business (after it changed)."""
        with self._lock:
            self._rules.pop(business_id, None)

    def decide(self, event: dict[str, Any], *, business_id: str) -> GateDecision:
        return self.decide_many([event], business_id=business_id)[0]

    def decide_many(self, events: list[dict[str, Any]], *, business_id: str) -> list[GateDecision]:
        """Decisions for a request's events, reading the ledger once for all of them."""
        rules = self._rules_of(business_id)
        subjects = [_subject_of(event) for event in events]
        with self.store.read() as conn:
            states = service.current_states(conn, business_id=business_id, subjects=subjects)
        return [
            self._decide(event, state, rules) for event, state in zip(events, states, strict=True)
        ]

    def _decide(
        self, event: dict[str, Any], state: ConsentState | None, rules: _BusinessRules
    ) -> GateDecision:
        consented_with_gpc: frozenset[str] = frozenset()
        if state is not None:
            choices: dict[str, bool] | None = state.purposes
            regime = state.regime
            gpc = state.gpc or gpc_of(event)
            consented_with_gpc = state.granted_with_gpc
        else:
            choices = preferences_of(event)
            regime = regime_for(_country_of(event), None, rules.geo_rules)
            gpc = gpc_of(event)
        verdict = decide(
            event,
            choices=choices,
            regime=regime,
            gpc=gpc,
            policy=rules.policy,
            consented_with_gpc=consented_with_gpc,
        )
        return GateDecision(
            keep=verdict.outcome is not Outcome.DROP,
            anonymise=verdict.outcome is Outcome.ANONYMISE,
            reason=verdict.reason,
        )


def _subject_of(event: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The identifiers whose ledger records speak for an event (an alias's previousId too)."""
    anonymous_ids = [str(event["anonymousId"])] if event.get("anonymousId") else []
    user_ids = [str(event["userId"])] if event.get("userId") else []
    if event.get("type") == "alias" and event.get("previousId"):
        previous = str(event["previousId"])
        anonymous_ids.append(previous)
        user_ids.append(previous)
    return anonymous_ids, user_ids
