"""Leads into the identity graph: one identify event per lead, through collection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accord.accounts.models import SourceRef
from accord.collect.consent_gate import ConsentGate
from accord.collect.service import append, normalise_request
from accord.collect.validation import Limits
from accord.core.clock import iso, utcnow
from accord.leads.validation import CleanSubmission
from accord.store.db import Store


def join_identity(
    store: Store,
    *,
    source: SourceRef,
    leads_traits: Sequence[tuple[str, str, dict[str, Any], dict[str, Any]]],
    gate: ConsentGate,
    limits: Limits,
) -> int:
    """Append one identify event per lead (message id, anonymous id, traits, context) to
    collection, so the identity graph and profiles take leads in like any other person."""
    if not leads_traits:
        return 0
    received_at = utcnow()
    events = normalise_request(
        {
            "batch": [
                {
                    "type": "identify",
                    "messageId": message_id,
                    "anonymousId": anonymous_id,
                    "traits": traits,
                    "context": context,
                    "timestamp": iso(received_at),
                }
                for message_id, anonymous_id, traits, context in leads_traits
            ]
        },
        kind="batch",
        received_at=received_at,
        limits=limits,
        max_batch_events=len(leads_traits),
    )
    return append(store, source=source, events=events, gate=gate, received_at=received_at).stored


def lead_traits(lead: CleanSubmission | dict[str, Any]) -> dict[str, Any]:
    """A lead's profile traits: email, name, phone, company, and the name split into
    `first_name` and `last_name`, the names email templates greet people by."""
    values = lead if isinstance(lead, dict) else vars(lead)
    traits = {k: values.get(k) for k in ("email", "name", "phone", "company") if values.get(k)}
    parts = str(traits.get("name", "")).split(maxsplit=1)
    if parts:
        traits["first_name"] = parts[0]
    if len(parts) == 2:
        traits["last_name"] = parts[1]
    return traits
