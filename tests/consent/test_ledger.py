"""The ledger: one hash chain per business, and verification that names the first bad record."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text

from accord.accounts.models import Bootstrap
from accord.accounts.service import bootstrap
from accord.consent import config, ledger
from accord.consent.gate import LedgerGate
from accord.consent.models import PolicyIn, PropertyIn
from accord.consent.service import (
    current_state,
    current_states,
    granted_purposes,
    history,
    record_consent,
    subject_state,
)
from accord.consent.signals import effective_purposes
from accord.core.clock import utcnow
from accord.core.errors import InvalidInput
from accord.store.db import Store


@pytest.fixture
def shop(store: Store, keys: Bootstrap) -> str:
    with store.write() as conn:
        config.create_property(
            conn, business_id=keys.business_id, spec=PropertyIn(key="shop-web", name="Shop")
        )
    return keys.business_id


def _record(store: Store, business_id: str, anonymous_id: str, **choices: bool) -> str:
    with store.write() as conn:
        return record_consent(
            conn,
            business_id=business_id,
            property_key="shop-web",
            anonymous_id=anonymous_id,
            purposes=choices or {"marketing": True},
            source="banner",
            regime="gdpr",
            ip="203.0.113.77",
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile",
        ).record_id


def _verify(store: Store, business_id: str) -> ledger.Verification:
    with store.read() as conn:
        return ledger.verify(conn, business_id=business_id)


def test_records_chain_and_verify(store: Store, shop: str) -> None:
    ids = [_record(store, shop, f"a{i}", marketing=i % 2 == 0) for i in range(5)]
    result = _verify(store, shop)
    assert result.ok and result.records == 5
    with store.read() as conn:
        rows = conn.execute(
            text(
                "SELECT id, position, prev_hash, hash, ip, device FROM consent_records "
                "ORDER BY position"
            )
        ).all()
    assert [r.id for r in rows] == ids
    assert rows[0].prev_hash == "0" * 64
    assert all(rows[i].prev_hash == rows[i - 1].hash for i in range(1, 5))
    assert result.head_hash == rows[-1].hash
    assert rows[0].ip == "203.0.113.0" and rows[0].device == "mobile"


def _exec(store: Store, sql: str, **params: object) -> None:
    with store.write() as conn:
        conn.execute(text(sql), params)


def _alter(store: Store) -> None:
    _exec(store, "UPDATE consent_records SET purposes = :p WHERE position = 3", p='{"x":true}')


def _alter_time(store: Store) -> None:
    with store.write() as conn:
        conn.execute(
            text("UPDATE consent_records SET recorded_at = :t WHERE position = 3"),
            {"t": utcnow() - timedelta(days=400)},
        )


def _delete_middle(store: Store) -> None:
    _exec(store, "DELETE FROM consent_records WHERE position = 3")


def _delete_last(store: Store) -> None:
    _exec(store, "DELETE FROM consent_records WHERE position = 5")


def _reorder(store: Store) -> None:
    _exec(store, "UPDATE consent_records SET position = 100 WHERE position = 3")
    _exec(store, "UPDATE consent_records SET position = 3 WHERE position = 4")
    _exec(store, "UPDATE consent_records SET position = 4 WHERE position = 100")


def _insert(store: Store) -> None:
    # A forged copy of record 2 put in as record 3, everything after moved one on.
    for position in (5, 4, 3):
        _exec(
            store,
            "UPDATE consent_records SET position = :n WHERE position = :p",
            n=position + 1,
            p=position,
        )
    _exec(
        store,
        "INSERT INTO consent_records (id, business_id, position, property_id, anonymous_id,"
        " user_id, notice_id, notice_version, variant, text_hash, language, regime, country,"
        " purposes, vendors, special_features, legitimate_interest, gpc, sale_opt_out, source,"
        " recorded_at, received_at, ip, user_agent, device, tc_string, prev_hash, hash)"
        " SELECT 'cr_forged', business_id, 3, property_id, anonymous_id, user_id, notice_id,"
        " notice_version, variant, text_hash, language, regime, country, purposes, vendors,"
        " special_features, legitimate_interest, gpc, sale_opt_out, source, recorded_at,"
        " received_at, ip, user_agent, device, tc_string, hash, hash"
        " FROM consent_records WHERE position = 2",
    )


@pytest.mark.parametrize(
    ("tamper", "bad_position", "words"),
    [
        (_alter, 3, "altered"),
        (_alter_time, 3, "altered"),
        (_delete_middle, 3, "missing"),
        (_delete_last, 5, "removed from the end"),
        (_reorder, 3, "previous-record hash"),
        (_insert, 3, "altered"),
    ],
)
def test_tampering_is_detected_and_names_the_first_bad_record(
    store: Store, shop: str, tamper: Callable[[Store], None], bad_position: int, words: str
) -> None:
    for i in range(5):
        _record(store, shop, f"a{i}")
    tamper(store)
    result = _verify(store, shop)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.position == bad_position
    assert words in result.problem.reason


def test_swapping_storage_order_is_detected(store: Store, shop: str) -> None:
    for i in range(3):
        _record(store, shop, f"a{i}")
    # Moving a row to the end of the table while keeping its position and hash.
    _exec(store, "UPDATE consent_records SET seq = 1000 WHERE position = 2")
    result = _verify(store, shop)
    assert result.problem is not None and result.problem.position == 3
    assert "reordered" in result.problem.reason


def test_chains_are_per_business(store: Store, shop: str) -> None:
    other = bootstrap(store, name="Other Shop").business_id
    with store.write() as conn:
        config.create_property(conn, business_id=other, spec=PropertyIn(key="shop-web", name="O"))
    _record(store, shop, "a")
    _record(store, other, "b")
    _record(store, shop, "c")
    assert _verify(store, shop).records == 2
    assert _verify(store, other).records == 1
    _alter(store)  # touches no row: neither chain has a third record
    assert _verify(store, shop).ok and _verify(store, other).ok


@pytest.mark.slow
def test_concurrent_appends_form_one_line(store: Store, shop: str) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(8):
                _record(store, shop, f"t{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = _verify(store, shop)
    assert result.ok and result.records == 32


def test_newest_choice_wins_per_purpose_across_identifiers(store: Store, shop: str) -> None:
    _record(store, shop, "anon-1", marketing=True, statistics=True)
    with store.write() as conn:
        record_consent(
            conn,
            business_id=shop,
            property_key="shop-web",
            user_id="user-9",
            purposes={"marketing": False},
            source="form",
        )
        assert granted_purposes(
            conn, business_id=shop, anonymous_ids=["anon-1"], user_ids=["user-9"]
        ) == {"necessary": True, "marketing": False, "statistics": True}
        assert granted_purposes(conn, business_id=shop, anonymous_ids=["anon-1"])["marketing"]
        assert granted_purposes(conn, business_id=shop, anonymous_ids=["nobody"]) == {}
        state = subject_state(conn, business_id=shop, subject="user-9")
        assert state is not None and state.purposes["marketing"] is False
        assert state.sale_opt_out is True
        assert [r["source"] for r in history(conn, business_id=shop, subject="anon-1")] == [
            "banner"
        ]


def test_withdrawal_is_a_record(store: Store, shop: str) -> None:
    _record(store, shop, "anon-1", marketing=True)
    _record(store, shop, "anon-1", marketing=False)
    with store.read() as conn:
        assert (
            granted_purposes(conn, business_id=shop, anonymous_ids=["anon-1"])["marketing"] is False
        )
    assert _verify(store, shop).records == 2


def test_bad_decisions_are_refused_with_every_reason(store: Store, shop: str) -> None:
    with store.write() as conn, pytest.raises(InvalidInput) as caught:
        record_consent(
            conn,
            business_id=shop,
            property_key="shop-web",
            purposes={"necessary": False, "astrology": True},
            vendors={"not-a-vendor": True},
            source="carrier-pigeon",
            tc_string="not a tc string!",
            recorded_at=utcnow() + timedelta(days=2),
        )
    fields = {p.field for p in caught.value.problems}
    assert fields >= {
        "anonymousId",
        "source",
        "purposes.necessary",
        "purposes.astrology",
        "vendors.not-a-vendor",
        "tcString",
        "timestamp",
    }
    with store.write() as conn, pytest.raises(InvalidInput) as caught:
        record_consent(
            conn,
            business_id=shop,
            property_key="nope",
            anonymous_id="a",
            purposes={},
            source="api",
        )
    assert [p.field for p in caught.value.problems] == ["property"]
    assert _verify(store, shop).records == 0


def test_states_for_many_subjects_equal_one_by_one(store: Store, shop: str) -> None:
    _record(store, shop, "a1", marketing=True)
    _record(store, shop, "a2", statistics=True)
    with store.write() as conn:
        record_consent(
            conn,
            business_id=shop,
            property_key="shop-web",
            anonymous_id="a1",
            user_id="u1",
            purposes={"statistics": False},
            source="form",
        )
    subjects = [(["a1"], []), (["a2"], ["u1"]), ([], ["u1"]), (["zz"], []), (["a1", "a2"], [])]
    with store.read() as conn:
        many = current_states(conn, business_id=shop, subjects=subjects, chunk=1)
        single = [
            current_state(conn, business_id=shop, anonymous_ids=a, user_ids=u) for a, u in subjects
        ]
    assert many == single
    assert many[3] is None and many[1] is not None
    assert many[1].purposes == {"necessary": True, "statistics": False}


def test_item_14_gpc_received_after_an_opt_in_overrides_it_under_ccpa(
    store: Store, shop: str
) -> None:
    """CCPA regulations §7025(c)(3): GPC after an opt-in to sale or sharing wins, unless
    the person opts in again while sending GPC; the ledger, the signals and the collection
    gate agree."""
    with store.write() as conn:
        config.set_policy(
            conn,
            business_id=shop,
            spec=PolicyIn(event_purposes={"Ad Clicked": "marketing"}),
        )

    def decide(gpc: bool, purposes: dict[str, bool]) -> tuple[bool, bool]:
        with store.write() as conn:
            record_consent(
                conn,
                business_id=shop,
                property_key="shop-web",
                anonymous_id="a-ca",
                purposes=purposes,
                source="banner",
                regime="ccpa",
                gpc=gpc,
            )
        with store.read() as conn:
            state = current_state(conn, business_id=shop, anonymous_ids=["a-ca"])
        assert state is not None
        event = {"type": "track", "event": "Ad Clicked", "anonymousId": "a-ca"}
        kept = LedgerGate(store).decide(event, business_id=shop)
        return effective_purposes(state)["marketing"].granted, kept.keep and not kept.anonymise

    assert decide(False, {"marketing": True}) == (True, True)
    # GPC arrives later with another choice: the marketing opt-in no longer stands.
    assert decide(True, {"statistics": True}) == (False, False)
    # Opting in again while sending GPC (after the banner said GPC is honoured) counts.
    assert decide(True, {"marketing": True}) == (True, True)
