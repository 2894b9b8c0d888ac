"""On random event streams, the incremental graph keeps its guardrails and matches batch."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.accounts.service import bootstrap
from accord.core.settings import Settings
from accord.identity.batch import check_graph
from accord.identity.service import get_rules, set_rules
from accord.store.db import Store
from tests.identity.helpers import assert_conserved, ev, groups, process


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for minute in range(draw(st.integers(1, 15))):
        fields: dict[str, Any] = {}
        if draw(st.booleans()):
            fields["userId"] = draw(st.sampled_from(["u1", "u2", "u3", "null"]))
        if draw(st.integers(0, 3)) or not fields:
            fields["anonymousId"] = draw(st.sampled_from(["a1", "a2", "a3", "a4", "a5", "0"]))
        email = draw(st.sampled_from([None, "x@example.org", "y@example.org", "z@example.org"]))
        if email:
            fields["traits"] = {"email": email, "n": minute}
        device = draw(st.sampled_from([None, "d1", "d2"]))
        if device:
            fields["context"] = {"device": {"id": device}}
        out.append(ev("identify" if email else "track", minute % 60, **fields))
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(streams(), st.integers(2, 6), st.integers(1, 7))
def test_guardrails_hold_and_batch_agrees(
    store: Store, settings: Settings, stream: list[dict[str, Any]], size: int, batch: int
) -> None:
    # A business per example: the store is shared by all of them.
    keys = bootstrap(store, name=f"Random {uuid.uuid4().hex}")
    with store.write() as conn:
        set_rules(
            conn,
            business_id=keys.business_id,
            rules={
                "max_component_identifiers": size,
                "limits": {
                    "email": {"max": 2},
                    "user_id": {"max": 1},
                    "device_id": {"max": 1},
                    "anonymous_id": {"max": 3},
                },
            },
        )
    process(store, keys, settings.resolved_lake_url(), stream, batch=batch)
    for group in groups(store, keys.business_id):
        kinds = [member.split(":", 1)[0] for member in group]
        assert kinds.count("user_id") <= 1
        assert kinds.count("email") <= 2
        assert kinds.count("device_id") <= 1
        assert kinds.count("anonymous_id") <= 3
        assert not any(member.endswith((":null", ":0")) for member in group)
    assert_conserved(store, keys.business_id, stream)
    with store.read() as conn:
        rules = get_rules(conn, business_id=keys.business_id)
        report = check_graph(
            conn, business_id=keys.business_id, rules=rules, engine_url="duckdb://"
        )
    assert report.consistent, (report.mismatched, report.violations)
