"""Pure pieces of configuration and hashing, checked for every input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from accord.consent.cmp_config import pick_language
from accord.consent.ledger import HASHED_FIELDS, record_hash

LANGUAGES = ["de", "en", "fr", "pt-BR"]


@given(requested=st.none() | st.text(max_size=12), accept=st.none() | st.text(max_size=60))
def test_pick_language_never_fails_and_answers_an_offered_language(
    requested: str | None, accept: str | None
) -> None:
    chosen = pick_language(LANGUAGES, requested=requested, accept_language=accept, default="en")
    assert chosen in LANGUAGES


@given(
    quality=st.lists(
        st.tuples(st.sampled_from(["de", "fr", "es", "pt-BR"]), st.integers(1, 9)), min_size=1
    )
)
def test_pick_language_takes_the_highest_quality_offered(quality: list[tuple[str, int]]) -> None:
    header = ",".join(f"{tag};q=0.{q}" for tag, q in quality)
    chosen = pick_language(LANGUAGES, requested=None, accept_language=header, default="en")
    offered = [(q, -i, tag) for i, (tag, q) in enumerate(quality) if tag in LANGUAGES]
    assert chosen == (max(offered)[2] if offered else "en")


BASE: dict[str, Any] = {name: None for name in HASHED_FIELDS} | {
    "id": "cr_1",
    "business_id": "biz_1",
    "position": 1,
    "purposes": {"marketing": True},
    "vendors": {},
    "special_features": {},
    "legitimate_interest": {"purposes": {}, "vendors": {}},
    "gpc": False,
    "sale_opt_out": False,
    "recorded_at": datetime(2026, 1, 1, tzinfo=UTC),
    "received_at": datetime(2026, 1, 1, tzinfo=UTC),
    "prev_hash": "0" * 64,
}


@given(field=st.sampled_from(HASHED_FIELDS), value=st.text(min_size=1, max_size=5))
def test_changing_any_hashed_field_changes_the_hash(field: str, value: str) -> None:
    changed = {**BASE, field: value}
    if changed[field] == BASE[field]:
        return
    assert record_hash(changed) != record_hash(BASE)


def test_hash_ignores_key_order_and_the_hash_field() -> None:
    reordered = dict(reversed(list(BASE.items())))
    assert record_hash(reordered) == record_hash(BASE)
    assert record_hash({**BASE, "hash": "anything"}) == record_hash(BASE)
